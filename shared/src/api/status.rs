//! The observed state of a `JobFlow`, written only by the agent.
//!
//! Every field has a schema so the API server prunes nothing the agent writes, and lists are
//! list-maps keyed by `type` (conditions) or `name` (steps) so server-side apply merges them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The status of a `JobFlow`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFlowStatus {
    /// Pending, Running, Succeeded, Failed, Suspended or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<FlowPhase>,

    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions; `Ready` says why the flow is where it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// When the first step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the flow reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Step counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// One entry per step (regular and finally), in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub steps: Vec<StepStatus>,

    /// Manual requests (annotation key to request value) the agent has carried out, so a
    /// request left in place is not carried out twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handled_requests: BTreeMap<String, String>,
}

/// The phase of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FlowPhase {
    /// Not started yet (waiting for its turn or for the agent).
    Pending,
    /// Steps are running or ready to run.
    Running,
    /// Every step ended without a blocking failure.
    Succeeded,
    /// A step failed without `continueOnFailure`, or a deadline, limit or validation failed.
    Failed,
    /// `spec.suspend` is true: no new step starts.
    Suspended,
    /// A Manual step waits for approval and nothing else can run.
    Paused,
}

impl FlowPhase {
    /// Succeeded or Failed: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The phase as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
            Self::Paused => "Paused",
        }
    }
}

/// The phase of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StepPhase {
    /// Waiting for its dependencies, its backoff, a slot or the flow.
    #[default]
    Pending,
    /// Its Job exists and has not finished.
    Running,
    /// Its Job completed (or a Manual step was approved).
    Succeeded,
    /// Its last attempt failed and no retry is left.
    Failed,
    /// Not run: `when` was false, or a dependency failed, or the flow stopped.
    Skipped,
    /// A Manual step waiting for approval.
    PendingApproval,
}

impl StepPhase {
    /// Succeeded, Failed or Skipped.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }

    /// The phase as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
            Self::PendingApproval => "PendingApproval",
        }
    }
}

/// A condition of the flow, in the usual Kubernetes shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// A CamelCase reason, e.g. `FlowSucceeded`.
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: Time,
    /// The generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Step counts. Every step is in exactly one of the counted states or pending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Steps that ended: Succeeded, Failed or Skipped.
    pub completed_steps: i32,
    /// All steps, finally steps included.
    pub total_steps: i32,
    /// Steps that Succeeded.
    pub successful_steps: i32,
    /// Steps that Failed.
    pub failed_steps: i32,
    /// Steps that were Skipped.
    pub skipped_steps: i32,
    /// Steps whose Job is running.
    pub running_steps: i32,
    /// `completed/total`, for `kubectl get`.
    pub summary: String,
}

/// The state of one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// The step's phase.
    pub phase: StepPhase,
    /// A CamelCase reason for the phase, e.g. `Timeout`, `JobDeleted`, `WhenFalse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The current attempt, from 1; 0 before the first.
    #[serde(default)]
    pub attempt: i32,
    /// Retries made: attempts after the first.
    #[serde(default)]
    pub retry_count: i32,
    /// The Job of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_ref: Option<JobRef>,
    /// When the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the step reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The earliest time the next attempt may start (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// A sentence for people, at most 1 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Output parameters, at most 4 KiB in all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

/// A reference to a step's Job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    /// `batch/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Job's name.
    pub name: String,
    /// The Job's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Job's UID once observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}
