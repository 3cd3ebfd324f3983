//! Builds the complete batch/v1 Job of one step attempt from the step's template.
//!
//! Parameters are substituted into string values only (never evaluated); Secret and ConfigMap
//! inputs reach every container and init container as env `valueFrom`, ahead of the
//! template's own env, so their values never enter the Job, the status or a log. The
//! template's `ttlSecondsAfterFinished` is removed (the flow's TTL governs its Jobs), and
//! fields the typed Job of Kubernetes 1.33 does not model are kept as written.

use std::collections::BTreeMap;
use std::ops::Deref;

use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicy as JobPodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyRule as JobPodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, SecretKeySelector,
};
use kube::Resource;
use serde_json::Value;

use super::naming::job_name;
use crate::api::{JobFlow, Parameter, PodFailurePolicy, Step};
use crate::labels;
use crate::references::{Reference, split_braces};
use crate::unmodeled::{restore, unmodeled_fields};

/// Why a step's Job could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildJobError {
    /// The step has no template.
    #[error("step {step:?} has no template")]
    MissingTemplate {
        /// The step.
        step: String,
    },
    /// The template is not a valid batch/v1 Job.
    #[error("step {step:?}: template is not a valid batch/v1 Job: {message}")]
    InvalidTemplate {
        /// The step.
        step: String,
        /// serde's message.
        message: String,
    },
    /// A `{{...}}` reference names nothing known.
    #[error("step {step:?}: {reference} cannot be resolved: {why}")]
    UnresolvedReference {
        /// The step.
        step: String,
        /// The reference as written.
        reference: String,
        /// What is missing.
        why: String,
    },
    /// The flow has no UID yet (it was not read from the API server).
    #[error("the flow has no metadata.uid, so its Jobs cannot be owned by it")]
    FlowWithoutUid,
}

/// Outputs of earlier steps, by step name, for `{{steps.<step>.outputs.<name>}}`.
pub type StepOutputs<'a> = BTreeMap<&'a str, &'a BTreeMap<String, String>>;

/// A step attempt's Job: the typed Job the planner reads, and the manifest the agent applies,
/// which also keeps the template's fields the typed Job does not model (newer than Kubernetes
/// 1.33, or misspelled: the API server judges them).
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltJob {
    job: Job,
    manifest: Value,
}

impl BuiltJob {
    /// The whole Job to apply.
    pub fn manifest(&self) -> &Value {
        &self.manifest
    }

    /// The typed Job, without the fields it does not model.
    pub fn into_job(self) -> Job {
        self.job
    }
}

impl Deref for BuiltJob {
    type Target = Job;

    fn deref(&self) -> &Job {
        &self.job
    }
}

/// Builds the Job of `attempt` (from 1) of `step`.
pub fn build_job(
    flow: &JobFlow,
    step: &Step,
    attempt: i32,
    outputs: &StepOutputs<'_>,
) -> Result<BuiltJob, BuildJobError> {
    let flow_name = flow.metadata.name.clone().unwrap_or_default();
    let mut template = step
        .template
        .clone()
        .ok_or_else(|| BuildJobError::MissingTemplate {
            step: step.name.clone(),
        })?;
    let resolver = Resolver::new(flow, step, attempt, outputs)?;
    substitute_strings(&mut template, &resolver, &mut Vec::new())?;
    let invalid = |error: serde_json::Error| BuildJobError::InvalidTemplate {
        step: step.name.clone(),
        message: error.to_string(),
    };
    let mut job: Job = serde_json::from_value(template.clone()).map_err(invalid)?;
    let unmodeled = unmodeled_fields(&template, &serde_json::to_value(&job).map_err(invalid)?);
    let owner = flow
        .controller_owner_ref(&())
        .ok_or(BuildJobError::FlowWithoutUid)?;

    let our_labels = BTreeMap::from([
        (labels::FLOW.to_owned(), flow_name.clone()),
        (labels::STEP.to_owned(), step.name.clone()),
        (labels::ATTEMPT.to_owned(), attempt.to_string()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
    ]);
    let step_labels = step
        .metadata
        .as_ref()
        .map(|meta| meta.labels.clone())
        .unwrap_or_default();
    let step_annotations = step
        .metadata
        .as_ref()
        .map(|meta| meta.annotations.clone())
        .unwrap_or_default();

    let meta = &mut job.metadata;
    meta.name = Some(job_name(flow, &step.name, attempt));
    meta.namespace.clone_from(&flow.metadata.namespace);
    meta.generate_name = None;
    meta.resource_version = None;
    meta.uid = None;
    meta.managed_fields = None;
    meta.creation_timestamp = None;
    meta.owner_references = Some(vec![owner]);
    merge(&mut meta.labels, &step_labels, &our_labels);
    merge(&mut meta.annotations, &step_annotations, &BTreeMap::new());

    let spec = job.spec.get_or_insert_with(Default::default);
    // The Job controller would delete a finished Job before the flow records its outcome
    // (it would read as JobDeleted); the flow's TTL deletes its Jobs with it.
    spec.ttl_seconds_after_finished = None;
    let pod_meta = spec.template.metadata.get_or_insert_with(Default::default);
    merge(&mut pod_meta.labels, &step_labels, &our_labels);
    merge(
        &mut pod_meta.annotations,
        &step_annotations,
        &BTreeMap::new(),
    );
    if spec.pod_failure_policy.is_none() {
        spec.pod_failure_policy = flow
            .spec
            .execution_policy
            .pod_failure_policy
            .as_ref()
            .map(native_pod_failure_policy);
    }
    if let Some(pod_spec) = spec.template.spec.as_mut() {
        let init_containers = pod_spec.init_containers.iter_mut().flatten();
        for container in pod_spec.containers.iter_mut().chain(init_containers) {
            add_env(container, &resolver.env);
        }
    }
    super::resources::point_volumes_at_resources(&mut job, flow);
    let mut manifest = serde_json::to_value(&job).map_err(invalid)?;
    restore(&mut manifest, &unmodeled);
    Ok(BuiltJob { job, manifest })
}

/// The step's literal input parameters, with references to earlier steps' outputs resolved,
/// for its `when` (`parameters.<name>`). Secret and ConfigMap inputs are not known to the
/// agent and are left out.
pub fn literal_inputs(
    flow: &JobFlow,
    step: &Step,
    outputs: &StepOutputs<'_>,
) -> Result<BTreeMap<String, String>, BuildJobError> {
    let resolver = Resolver::new(flow, step, 0, outputs)?;
    let literal = |name: &String| {
        step.inputs
            .iter()
            .flat_map(|inputs| &inputs.parameters)
            .any(|parameter| &parameter.name == name && parameter.value.is_some())
    };
    Ok(resolver
        .parameters
        .into_iter()
        .filter(|(name, _)| literal(name))
        .collect())
}

/// Adds `extra` then `ours` to `target` (ours win over everything).
fn merge(
    target: &mut Option<BTreeMap<String, String>>,
    extra: &BTreeMap<String, String>,
    ours: &BTreeMap<String, String>,
) {
    if extra.is_empty() && ours.is_empty() {
        return;
    }
    let map = target.get_or_insert_with(BTreeMap::new);
    map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    map.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// Puts `env` ahead of the container's own env, so `$(NAME)` in its values expands (the
/// kubelet expands only names defined earlier). A name the container defines itself is
/// skipped (validation rejects such a clash).
fn add_env(container: &mut Container, env: &[EnvVar]) {
    if env.is_empty() {
        return;
    }
    let vars = container.env.get_or_insert_with(Vec::new);
    let ours: Vec<EnvVar> = env
        .iter()
        .filter(|var| !vars.iter().any(|existing| existing.name == var.name))
        .cloned()
        .collect();
    vars.splice(0..0, ours);
}

fn native_pod_failure_policy(policy: &PodFailurePolicy) -> JobPodFailurePolicy {
    JobPodFailurePolicy {
        rules: policy
            .rules
            .iter()
            .map(|rule| JobPodFailurePolicyRule {
                action: serde_json::to_value(rule.action)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                on_exit_codes: rule.on_exit_codes.as_ref().map(|codes| {
                    PodFailurePolicyOnExitCodesRequirement {
                        container_name: codes.container_name.clone(),
                        operator: serde_json::to_value(codes.operator)
                            .ok()
                            .and_then(|value| value.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        values: codes.values.clone(),
                    }
                }),
                on_pod_conditions: None,
            })
            .collect(),
    }
}

/// Resolves `{{...}}` references for one step attempt.
struct Resolver<'a> {
    step: &'a Step,
    flow_name: String,
    flow_namespace: String,
    attempt: i32,
    /// Input parameter values, with upstream outputs substituted as they are.
    parameters: BTreeMap<String, String>,
    /// The same, with `$(` in upstream outputs escaped for where the kubelet expands `$(VAR)`.
    escaped_parameters: BTreeMap<String, String>,
    outputs: &'a StepOutputs<'a>,
    env: Vec<EnvVar>,
}

impl<'a> Resolver<'a> {
    fn new(
        flow: &JobFlow,
        step: &'a Step,
        attempt: i32,
        outputs: &'a StepOutputs<'a>,
    ) -> Result<Self, BuildJobError> {
        let mut resolver = Self {
            step,
            flow_name: flow.metadata.name.clone().unwrap_or_default(),
            flow_namespace: flow.metadata.namespace.clone().unwrap_or_default(),
            attempt,
            parameters: BTreeMap::new(),
            escaped_parameters: BTreeMap::new(),
            outputs,
            env: Vec::new(),
        };
        let inputs = step
            .inputs
            .as_ref()
            .map(|inputs| inputs.parameters.as_slice())
            .unwrap_or_default();
        for parameter in inputs {
            let (value, escaped) = if let Some(value) = &parameter.value {
                // A literal may itself name an earlier step's output.
                (
                    substitute(value, &resolver, Expansion::Literal)?,
                    substitute(value, &resolver, Expansion::Kubelet)?,
                )
            } else if let Some(env_source) = env_source(parameter) {
                resolver.env.push(EnvVar {
                    name: parameter.name.clone(),
                    value: None,
                    value_from: Some(env_source),
                });
                let reference = format!("$({})", parameter.name);
                (reference.clone(), reference)
            } else {
                return Err(BuildJobError::UnresolvedReference {
                    step: step.name.clone(),
                    reference: format!("inputs.parameters {:?}", parameter.name),
                    why:
                        "an input needs value, valueFrom.secretKeyRef or valueFrom.configMapKeyRef"
                            .into(),
                });
            };
            resolver.parameters.insert(parameter.name.clone(), value);
            resolver
                .escaped_parameters
                .insert(parameter.name.clone(), escaped);
        }
        Ok(resolver)
    }

    fn unresolved(&self, reference: &str, why: impl Into<String>) -> BuildJobError {
        BuildJobError::UnresolvedReference {
            step: self.step.name.clone(),
            reference: format!("{{{{{reference}}}}}"),
            why: why.into(),
        }
    }

    /// The value of `reference` (the text between the braces, trimmed) for a string the kubelet
    /// expands or not, or None when the reference is not one of ours and stays as written.
    fn resolve(
        &self,
        reference: &str,
        expansion: Expansion,
    ) -> Option<Result<String, BuildJobError>> {
        Some(match Reference::parse(reference)? {
            Reference::Input(name) => {
                let parameters = match expansion {
                    Expansion::Literal => &self.parameters,
                    Expansion::Kubelet => &self.escaped_parameters,
                };
                parameters.get(name).cloned().ok_or_else(|| {
                    self.unresolved(
                        reference,
                        format!("the step declares no input parameter {name:?}"),
                    )
                })
            }
            Reference::StepOutput { step, name } => match self.outputs.get(step) {
                None => Err(self.unresolved(
                    reference,
                    format!("step {step:?} has no outputs (did it succeed?)"),
                )),
                Some(values) => values
                    .get(name)
                    .map(|value| expansion.protect(value))
                    .ok_or_else(|| {
                        self.unresolved(reference, format!("step {step:?} has no output {name:?}"))
                    }),
            },
            Reference::FlowName => Ok(self.flow_name.clone()),
            Reference::FlowNamespace => Ok(self.flow_namespace.clone()),
            Reference::StepName => Ok(self.step.name.clone()),
            Reference::StepAttempt => Ok(self.attempt.to_string()),
        })
    }
}

/// The env source of a Secret or ConfigMap input.
fn env_source(parameter: &Parameter) -> Option<EnvVarSource> {
    if !parameter.is_env_input() {
        return None;
    }
    let source = parameter.value_from.as_ref()?;
    if let Some(key) = &source.secret_key_ref {
        return Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                optional: key.optional,
            }),
            ..EnvVarSource::default()
        });
    }
    source.config_map_key_ref.as_ref().map(|key| EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: key.name.clone(),
            key: key.key.clone(),
            optional: key.optional,
        }),
        ..EnvVarSource::default()
    })
}

/// Whether the kubelet expands `$(VAR)` in a string: container `command`, `args` and env
/// values do. There an upstream output's `$(` is written `$$(`, so the output reads as it was
/// produced and never names one of the step's env vars (a Secret input, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expansion {
    /// Taken as written.
    Literal,
    /// `$(VAR)` is expanded by the kubelet.
    Kubelet,
}

impl Expansion {
    /// The place a string at `path` (object keys, `[]` for array elements) in a Job is.
    fn at(path: &[&str]) -> Self {
        const POD: [&str; 3] = ["spec", "template", "spec"];
        let Some(rest) = path.strip_prefix(POD.as_slice()) else {
            return Self::Literal;
        };
        match rest {
            [
                "containers" | "initContainers",
                "[]",
                "command" | "args",
                "[]",
            ]
            | ["containers" | "initContainers", "[]", "env", "[]", "value"] => Self::Kubelet,
            _ => Self::Literal,
        }
    }

    fn protect(self, output: &str) -> String {
        match self {
            Self::Literal => output.to_owned(),
            Self::Kubelet => output.replace("$(", "$$("),
        }
    }
}

/// Replaces our `{{...}}` references in one string.
fn substitute(
    text: &str,
    resolver: &Resolver<'_>,
    expansion: Expansion,
) -> Result<String, BuildJobError> {
    let (braces, rest) = split_braces(text);
    let mut out = String::with_capacity(text.len());
    for found in braces {
        out.push_str(found.before);
        match resolver.resolve(found.inner, expansion) {
            Some(value) => out.push_str(&value?),
            None => out.push_str(found.whole),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes references in every string value of `value` (keys are left alone); `path` is
/// where `value` is in the Job.
fn substitute_strings<'k>(
    value: &'k mut Value,
    resolver: &Resolver<'_>,
    path: &mut Vec<&'k str>,
) -> Result<(), BuildJobError> {
    match value {
        Value::String(text) if text.contains("{{") => {
            *text = substitute(text, resolver, Expansion::at(path))?;
        }
        Value::Array(items) => {
            path.push("[]");
            for item in items {
                substitute_strings(item, resolver, path)?;
            }
            path.pop();
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.as_str());
                substitute_strings(item, resolver, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
