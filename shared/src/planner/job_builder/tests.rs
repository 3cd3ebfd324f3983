use std::collections::BTreeMap;

use super::*;
use crate::api::{
    ExitCodeOperator, PodFailurePolicyAction, PodFailurePolicyOnExitCodes, PodFailurePolicyRule,
    StepMetadata,
};
use crate::planner::testing::{flow, job_step};

#[test]
fn step_metadata_is_merged_but_our_labels_win() {
    let mut step = job_step("a", &[]);
    step.metadata = Some(StepMetadata {
        labels: BTreeMap::from([
            ("team".into(), "data".into()),
            (labels::STEP.into(), "spoofed".into()),
        ]),
        annotations: BTreeMap::from([("note".into(), "hi".into())]),
    });
    let job = build_job(&flow(vec![step.clone()]), &step, 1, &BTreeMap::new()).unwrap();
    let labels = job.metadata.labels.unwrap();
    assert_eq!(labels["team"], "data");
    assert_eq!(labels[labels::STEP], "a");
    assert_eq!(job.metadata.annotations.unwrap()["note"], "hi");
    assert_eq!(job.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn the_flow_pod_failure_policy_applies_unless_the_template_has_one() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: PodFailurePolicyAction::FailJob,
            on_exit_codes: Some(PodFailurePolicyOnExitCodes {
                container_name: Some("main".into()),
                operator: ExitCodeOperator::In,
                values: vec![3],
            }),
        }],
    });
    let step = spec.spec.steps[0].clone();
    let job = build_job(&spec, &step, 1, &BTreeMap::new()).unwrap();
    let rule = &job.spec.unwrap().pod_failure_policy.unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    assert_eq!(rule.on_exit_codes.as_ref().unwrap().operator, "In");

    let mut own = step.clone();
    own.template.as_mut().unwrap()["spec"]["podFailurePolicy"] = serde_json::json!({"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]});
    let job = build_job(&spec, &own, 1, &BTreeMap::new()).unwrap();
    assert_eq!(
        job.spec.unwrap().pod_failure_policy.unwrap().rules[0].action,
        "Ignore"
    );
}

#[test]
fn unresolved_references_are_errors_and_foreign_braces_stay() {
    let mut step = job_step("a", &[]);
    step.template.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["args"] =
        serde_json::json!(["{{steps.x.outputs.y}}"]);
    let error = build_job(&flow(vec![step.clone()]), &step, 1, &BTreeMap::new()).unwrap_err();
    assert!(
        error.to_string().contains("{{steps.x.outputs.y}}"),
        "{error}"
    );

    step.template.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["args"] =
        serde_json::json!(["echo '{{ .Values.x }}' {{flow.name}}-{{step.attempt}}"]);
    let job = build_job(&flow(vec![step.clone()]), &step, 2, &BTreeMap::new()).unwrap();
    let args = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(args[0], "echo '{{ .Values.x }}' etl-2");
}

#[test]
fn a_flow_without_uid_cannot_own_jobs() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.metadata.uid = None;
    let step = spec.spec.steps[0].clone();
    assert_eq!(
        build_job(&spec, &step, 1, &BTreeMap::new()),
        Err(BuildJobError::FlowWithoutUid)
    );
}
