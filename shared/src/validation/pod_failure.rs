//! Pod failure policies: Kubernetes accepts one only on Jobs whose pods use `restartPolicy: Never`.

use super::LocatedStep;
use super::problems::Problems;
use crate::api::{JobFlowSpec, StepType};

/// Checks that the step's Job, if it will carry a pod failure policy (the step's own, or the
/// flow's `executionPolicy.podFailurePolicy`), restarts its pods `Never`.
pub(super) fn check_pod_failure_policy(
    spec: &JobFlowSpec,
    located: &LocatedStep<'_>,
    problems: &mut Problems,
) {
    let flow_policy = spec.execution_policy.pod_failure_policy.is_some();
    if located.step.step_type != StepType::Job {
        return;
    }
    let Some(job_spec) = located
        .step
        .template
        .as_ref()
        .and_then(|template| template.get("spec"))
    else {
        return;
    };
    let own_policy = job_spec
        .get("podFailurePolicy")
        .is_some_and(|policy| !policy.is_null());
    if !own_policy && !flow_policy {
        return;
    }
    let restart = job_spec
        .pointer("/template/spec/restartPolicy")
        .and_then(|value| value.as_str());
    if restart == Some("Never") {
        return;
    }
    let source = if own_policy {
        "the step's template.spec.podFailurePolicy"
    } else {
        "spec.executionPolicy.podFailurePolicy"
    };
    problems.invalid(
        format!("{}.template.spec.template.spec.restartPolicy", located.path),
        format!(
            "is {}, but {source} applies to this step's Job and Kubernetes allows a pod failure \
             policy only with restartPolicy: Never; set restartPolicy: Never",
            restart.map_or_else(|| "unset".to_owned(), |policy| format!("{policy:?}"))
        ),
    );
}
