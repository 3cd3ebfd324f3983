//! The `JobFlow` custom resource: `workflow.kube-zen.io/v1alpha1`, kind `JobFlow`.
//!
//! Field names follow the original zen-flow API so its manifests keep working unchanged.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;
use super::status::JobFlowStatus;

/// A DAG of Kubernetes Jobs: each step is a Job template, `dependencies` order them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "workflow.kube-zen.io",
    version = "v1alpha1",
    kind = "JobFlow",
    namespaced,
    status = "JobFlowStatus",
    shortname = "jf",
    shortname = "flow",
    category = "all",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","priority":1,"jsonPath":".status.progress.runningSteps"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","priority":1,"jsonPath":".status.progress.failedSteps"}"#,
    printcolumn = r#"{"name":"Started","type":"date","priority":1,"jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"Completed","type":"date","priority":1,"jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct JobFlowSpec {
    /// The steps of the flow. A step starts once its `dependencies` have ended as allowed.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,

    /// Steps that run once every step in `steps` has ended, whatever the outcome.
    /// Their `when` can read the flow's outcome as `flow.phase` ("Succeeded" or "Failed").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<Step>,

    /// How the flow runs: concurrency, retries budget, deadlines, TTL.
    #[serde(default)]
    pub execution_policy: ExecutionPolicy,

    /// Objects created once for the flow, owned by it and named `<flow>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_templates: Option<ResourceTemplates>,

    /// When true no new step starts (phase Suspended); running Jobs finish. The only field that
    /// may change once the flow has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// How the flow as a whole is executed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPolicy {
    /// What to do when another flow in the namespace with the same `concurrencyKey` is running:
    /// Allow, Forbid (wait) or Replace (stop the older one). Without a `concurrencyKey` this has
    /// no effect.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// Flows in one namespace sharing this key follow `concurrencyPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,

    /// Seconds after the flow finished at which it is deleted with its Jobs. 0 deletes at once.
    #[serde(default = "default_ttl_seconds_after_finished")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: i64,

    /// The most retries the flow may make across all of its steps.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0))]
    pub backoff_limit: i32,

    /// Seconds the flow may run, counted from its start; then it fails with ActiveDeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// The most steps running at once. Unset means no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub parallelism: Option<i32>,

    /// After a failure that blocks the flow, start no new step (running ones finish).
    #[serde(default = "default_true")]
    pub fail_fast: bool,

    /// Becomes each step Job's native `podFailurePolicy` unless its template sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
}

impl Default for ExecutionPolicy {
    fn default() -> Self {
        Self {
            concurrency_policy: ConcurrencyPolicy::default(),
            concurrency_key: None,
            ttl_seconds_after_finished: default_ttl_seconds_after_finished(),
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: None,
            parallelism: None,
            fail_fast: true,
            pod_failure_policy: None,
        }
    }
}

impl ExecutionPolicy {
    /// The `concurrencyKey`, if set and not empty (an empty key groups no flows).
    pub fn concurrency_key(&self) -> Option<&str> {
        self.concurrency_key
            .as_deref()
            .filter(|key| !key.is_empty())
    }
}

fn default_ttl_seconds_after_finished() -> i64 {
    86_400
}

fn default_backoff_limit() -> i32 {
    6
}

fn default_true() -> bool {
    true
}

/// How flows sharing a `concurrencyKey` are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Flows run side by side.
    Allow,
    /// A newer flow waits (Pending) until the older one has finished.
    #[default]
    Forbid,
    /// The older flow is stopped (Failed, reason Replaced) and the newer one runs.
    Replace,
}

/// Rules that become the step Jobs' `podFailurePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PodFailurePolicy {
    /// Rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<PodFailurePolicyRule>,
}

/// One pod failure rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyRule {
    /// What to do when the rule matches.
    pub action: PodFailurePolicyAction,
    /// Exit codes that make the rule match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<PodFailurePolicyOnExitCodes>,
}

/// The action of a pod failure rule (as batch/v1 defines it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PodFailurePolicyAction {
    /// Fail the whole Job at once.
    FailJob,
    /// Do not count the failure against the Job's backoffLimit.
    Ignore,
    /// Count the failure (the default handling).
    Count,
}

/// Exit codes a pod failure rule matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyOnExitCodes {
    /// The container whose exit code is checked; all containers when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// In or NotIn.
    pub operator: ExitCodeOperator,
    /// Exit codes, 0 to 255.
    pub values: Vec<i32>,
}

/// How exit codes are matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExitCodeOperator {
    /// The exit code is one of `values`.
    In,
    /// The exit code is none of `values`.
    NotIn,
}

/// Objects the flow creates once and owns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplates {
    /// PersistentVolumeClaims, created as `<flow>-<metadata.name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_object_list")]
    pub volume_claim_templates: Vec<serde_json::Value>,
    /// ConfigMaps, created as `<flow>-<metadata.name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_object_list")]
    pub config_map_templates: Vec<serde_json::Value>,
}

/// One step of the flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Unique name within the flow; a DNS-1123 label.
    pub name: String,

    /// Job (default) runs `template`; Manual waits for approval.
    #[serde(default, rename = "type")]
    pub step_type: StepType,

    /// Shown while a Manual step waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Labels and annotations added to the step's Job and its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<StepMetadata>,

    /// Steps that must end before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,

    /// A CEL expression (or always/never/true/false); when false the step is Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,

    /// When true a failure of this step does not block its dependents or fail the flow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,

    /// New attempts after a failed attempt (including one past `timeoutSeconds`): up to `limit`
    /// more, each after the `backoff` wait, while the flow's `executionPolicy.backoffLimit` has
    /// retries left. Unset means the first failure is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,

    /// Seconds an attempt may run; then its Job is deleted and the attempt fails with Timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i64>,

    /// A whole batch/v1 Job (apiVersion, kind, metadata, spec). Required for Job steps. Kept as
    /// written apart from the fields the agent sets; its `spec.ttlSecondsAfterFinished` is
    /// removed (the flow's TTL governs its Jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserved_object")]
    pub template: Option<serde_json::Value>,

    /// Parameters and artifacts the step consumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<StepInputs>,

    /// Parameters and artifacts the step produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<StepOutputs>,
}

/// The kind of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StepType {
    /// Runs a batch/v1 Job from `template`.
    #[default]
    Job,
    /// Waits for approval: the annotation `approve.workflow.kube-zen.io/<step>` releases it.
    Manual,
}

/// Labels and annotations for a step's Job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepMetadata {
    /// Labels added to the Job and its pod template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Job and its pod template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How a failed step is tried again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryPolicy {
    /// The most new attempts after the first.
    #[serde(default = "default_retry_limit")]
    #[schemars(range(min = 0))]
    pub limit: i32,
    /// The wait before each new attempt. No wait when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

fn default_retry_limit() -> i32 {
    3
}

/// The wait before attempt n+1 (n = retries made so far).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Backoff {
    /// Exponential `duration * factor^n`, Linear `duration * (n+1)`, Fixed `duration`.
    #[serde(rename = "type")]
    pub backoff_type: BackoffType,
    /// The base wait, a duration such as `10s`, `1m30s` or `2h`.
    pub duration: String,
    /// The growth factor for Exponential (default 2, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
}

/// How the backoff grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackoffType {
    /// `duration * factor^n`.
    Exponential,
    /// `duration * (n+1)`.
    Linear,
    /// `duration`.
    Fixed,
}

/// What a step consumes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepInputs {
    /// Parameters substituted as `{{inputs.parameters.<name>}}` into the template's strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Not supported yet (refused by validation): share files through
    /// `spec.resourceTemplates.volumeClaimTemplates` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// What a step produces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepOutputs {
    /// Parameters read from the succeeded pod's termination message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Not supported yet (refused by validation): share files through
    /// `spec.resourceTemplates.volumeClaimTemplates` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

/// A named value: exactly one of `value` or `valueFrom`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The parameter's name.
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ParameterSource>,
}

/// The source of a parameter's value: exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSource {
    /// For outputs: a JSONPath into the pod's termination message (a JSON object), or into the
    /// Job (`.status...`) for old manifests. For inputs: `steps.<step>.outputs.<name>` style
    /// references are written as `{{steps.<step>.outputs.<name>}}` in `value` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// A key of a ConfigMap in the flow's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    /// A key of a Secret in the flow's namespace; it reaches containers as an env `valueFrom`
    /// and never appears in status or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
}

/// A key in a ConfigMap or Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRef {
    /// The object's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// When true a missing object or key is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// An artifact: a named file path in the step's containers. Not supported yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct Artifact {
    /// The artifact's name.
    pub name: String,
    /// An absolute path without `..`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For inputs: the producing `<step>/<artifact>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For outputs: when true a missing artifact is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// Fields of the original API kept as given (http, s3, archive).
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Parameter {
    /// Whether the input reaches the step's containers as an env var (`valueFrom` a Secret or
    /// ConfigMap key, no literal `value`), named after the parameter.
    pub fn is_env_input(&self) -> bool {
        self.value.is_none()
            && self.value_from.as_ref().is_some_and(|source| {
                source.secret_key_ref.is_some() || source.config_map_key_ref.is_some()
            })
    }
}

impl JobFlowSpec {
    /// Every step, regular steps first, then finally steps (the DAG's index order).
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> + Clone {
        self.steps.iter().chain(&self.finally)
    }
}

impl JobFlow {
    /// Every step of the flow, regular steps first, then finally steps.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> + Clone {
        self.spec.all_steps()
    }
}
