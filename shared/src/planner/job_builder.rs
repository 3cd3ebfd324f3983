//! Builds the complete batch/v1 Job of one step attempt from the step's template.
//!
//! Parameters are substituted into string values only (never evaluated); Secret and ConfigMap
//! inputs reach the containers as env `valueFrom`, so their values never enter the Job, the
//! status or a log.

use std::collections::BTreeMap;

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
use crate::api::{JobFlow, PodFailurePolicy, Step};
use crate::labels;

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

/// Builds the Job of `attempt` (from 1) of `step`.
pub fn build_job(
    flow: &JobFlow,
    step: &Step,
    attempt: i32,
    outputs: &StepOutputs<'_>,
) -> Result<Job, BuildJobError> {
    let flow_name = flow.metadata.name.clone().unwrap_or_default();
    let mut template = step
        .template
        .clone()
        .ok_or_else(|| BuildJobError::MissingTemplate {
            step: step.name.clone(),
        })?;
    let resolver = Resolver::new(flow, step, attempt, outputs)?;
    substitute_strings(&mut template, &resolver)?;
    let mut job: Job =
        serde_json::from_value(template).map_err(|error| BuildJobError::InvalidTemplate {
            step: step.name.clone(),
            message: error.to_string(),
        })?;
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
        for container in &mut pod_spec.containers {
            add_env(container, &resolver.env);
        }
    }
    super::resources::point_volumes_at_resources(&mut job, flow);
    Ok(job)
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

fn add_env(container: &mut Container, env: &[EnvVar]) {
    if env.is_empty() {
        return;
    }
    let vars = container.env.get_or_insert_with(Vec::new);
    for var in env {
        if !vars.iter().any(|existing| existing.name == var.name) {
            vars.push(var.clone());
        }
    }
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
    parameters: BTreeMap<String, String>,
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
            outputs,
            env: Vec::new(),
        };
        let inputs = step
            .inputs
            .as_ref()
            .map(|inputs| inputs.parameters.as_slice())
            .unwrap_or_default();
        for parameter in inputs {
            let source = parameter.value_from.as_ref();
            let value = if let Some(value) = &parameter.value {
                // A literal may itself name an earlier step's output.
                substitute(value, &resolver)?
            } else if let Some(key) = source.and_then(|s| s.secret_key_ref.as_ref()) {
                resolver.env.push(env_from(
                    &parameter.name,
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: key.name.clone(),
                            key: key.key.clone(),
                            optional: key.optional,
                        }),
                        ..EnvVarSource::default()
                    },
                ));
                format!("$({})", parameter.name)
            } else if let Some(key) = source.and_then(|s| s.config_map_key_ref.as_ref()) {
                resolver.env.push(env_from(
                    &parameter.name,
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: key.name.clone(),
                            key: key.key.clone(),
                            optional: key.optional,
                        }),
                        ..EnvVarSource::default()
                    },
                ));
                format!("$({})", parameter.name)
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

    /// The value of `reference` (the text between the braces, trimmed), or None when the
    /// reference is not one of ours and stays as written.
    fn resolve(&self, reference: &str) -> Option<Result<String, BuildJobError>> {
        let parts: Vec<&str> = reference.split('.').collect();
        match parts.as_slice() {
            ["inputs", "parameters", name] => {
                Some(self.parameters.get(*name).cloned().ok_or_else(|| {
                    self.unresolved(
                        reference,
                        format!("the step declares no input parameter {name:?}"),
                    )
                }))
            }
            ["steps", step, "outputs", name] | ["steps", step, "outputs", "parameters", name] => {
                Some(match self.outputs.get(step) {
                    None => Err(self.unresolved(
                        reference,
                        format!("step {step:?} has no outputs (did it succeed?)"),
                    )),
                    Some(values) => values.get(*name).cloned().ok_or_else(|| {
                        self.unresolved(reference, format!("step {step:?} has no output {name:?}"))
                    }),
                })
            }
            ["flow" | "workflow", "name"] => Some(Ok(self.flow_name.clone())),
            ["flow" | "workflow", "namespace"] => Some(Ok(self.flow_namespace.clone())),
            ["step", "name"] => Some(Ok(self.step.name.clone())),
            ["step", "attempt"] => Some(Ok(self.attempt.to_string())),
            _ => None,
        }
    }
}

fn env_from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(source),
    }
}

/// Replaces our `{{...}}` references in one string.
fn substitute(text: &str, resolver: &Resolver<'_>) -> Result<String, BuildJobError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let reference = rest[start + 2..start + 2 + len].trim();
        out.push_str(&rest[..start]);
        match resolver.resolve(reference) {
            Some(value) => out.push_str(&value?),
            None => out.push_str(&rest[start..start + 2 + len + 2]),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes references in every string value of `value` (keys are left alone).
fn substitute_strings(value: &mut Value, resolver: &Resolver<'_>) -> Result<(), BuildJobError> {
    match value {
        Value::String(text) if text.contains("{{") => *text = substitute(text, resolver)?,
        Value::Array(items) => {
            for item in items {
                substitute_strings(item, resolver)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                substitute_strings(item, resolver)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
