use std::collections::BTreeMap;

use super::*;
use serde_json::json;

use crate::api::{
    ExitCodeOperator, KeyRef, ParameterSource, PodFailurePolicyAction, PodFailurePolicyOnExitCodes,
    PodFailurePolicyRule, StepInputs, StepMetadata,
};
use crate::planner::testing::{flow, job_step, pod_spec};

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
    let job = build_job(&flow(vec![step.clone()]), &step, 1, &BTreeMap::new())
        .unwrap()
        .into_job();
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
    let job = build_job(&spec, &step, 1, &BTreeMap::new())
        .unwrap()
        .into_job();
    let rule = &job.spec.unwrap().pod_failure_policy.unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    assert_eq!(rule.on_exit_codes.as_ref().unwrap().operator, "In");

    let mut own = step.clone();
    own.template.as_mut().unwrap()["spec"]["podFailurePolicy"] = serde_json::json!({"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]});
    let job = build_job(&spec, &own, 1, &BTreeMap::new())
        .unwrap()
        .into_job();
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
    let job = build_job(&flow(vec![step.clone()]), &step, 2, &BTreeMap::new())
        .unwrap()
        .into_job();
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

fn secret_input(name: &str) -> Parameter {
    Parameter {
        name: name.into(),
        value_from: Some(ParameterSource {
            secret_key_ref: Some(KeyRef {
                name: "creds".into(),
                key: "token".into(),
                optional: None,
            }),
            ..ParameterSource::default()
        }),
        ..Parameter::default()
    }
}

/// Issue 7 rule 6: the Job controller would delete a finished Job at the template's TTL, before
/// the flow recorded it, turning a success into JobDeleted. Failed on 44744f3 (the TTL was kept).
#[test]
fn a_template_ttl_is_stripped() {
    let mut step = job_step("a", &[]);
    step.template.as_mut().unwrap()["spec"]["ttlSecondsAfterFinished"] = json!(0);
    let built = build_job(&flow(vec![step.clone()]), &step, 1, &BTreeMap::new()).unwrap();
    assert_eq!(
        built.spec.as_ref().unwrap().ttl_seconds_after_finished,
        None
    );
    assert!(
        built.manifest()["spec"]
            .get("ttlSecondsAfterFinished")
            .is_none()
    );
}

/// Issue 7 rule 8: Secret inputs reach init containers too, ahead of the template's own env so
/// `$(TOKEN)` in a later value expands. Failed on 44744f3 (appended, containers only).
#[test]
fn env_inputs_reach_init_containers_ahead_of_the_template_env() {
    let mut step = job_step("a", &[]);
    step.inputs = Some(StepInputs {
        parameters: vec![secret_input("TOKEN")],
        artifacts: vec![],
    });
    let pod = &mut step.template.as_mut().unwrap()["spec"]["template"]["spec"];
    pod["containers"][0]["env"] = json!([{"name": "AUTH", "value": "Bearer $(TOKEN)"}]);
    pod["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    let built = build_job(&flow(vec![step.clone()]), &step, 1, &BTreeMap::new()).unwrap();
    let pod = pod_spec(&built);
    let names = |env: &Option<Vec<EnvVar>>| -> Vec<String> {
        env.iter().flatten().map(|var| var.name.clone()).collect()
    };
    assert_eq!(names(&pod.containers[0].env), ["TOKEN", "AUTH"]);
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(names(&init.env), ["TOKEN"]);
    let secret = init.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
    assert_eq!(secret.secret_key_ref.as_ref().unwrap().name, "creds");
}

/// Issue 7 rule 8: an upstream output substituted where the kubelet expands `$(VAR)` (command,
/// args, env values) is escaped, so `$(TOKEN)` in an output cannot read the step's Secret.
/// Failed on 44744f3 (substituted as is).
#[test]
fn upstream_outputs_are_escaped_where_the_kubelet_expands() {
    let mut step = job_step("b", &["a"]);
    step.inputs = Some(StepInputs {
        parameters: vec![
            secret_input("TOKEN"),
            Parameter {
                name: "note".into(),
                value: Some("$(HOME) {{steps.a.outputs.out}}".into()),
                ..Parameter::default()
            },
        ],
        artifacts: vec![],
    });
    let template = step.template.as_mut().unwrap();
    template["metadata"] = json!({"annotations": {"out": "{{steps.a.outputs.out}}"}});
    let container = &mut template["spec"]["template"]["spec"]["containers"][0];
    container["command"] = json!(["sh", "-c", "echo {{steps.a.outputs.out}}"]);
    container["args"] = json!(["{{inputs.parameters.note}}", "{{inputs.parameters.TOKEN}}"]);
    container["env"] = json!([{"name": "OUT", "value": "{{steps.a.outputs.out}}"}]);
    let values = BTreeMap::from([("out".to_owned(), "$(TOKEN)".to_owned())]);
    let outputs = BTreeMap::from([("a", &values)]);
    let built = build_job(&flow(vec![step.clone()]), &step, 1, &outputs).unwrap();
    let container = &pod_spec(&built).containers[0];
    assert_eq!(container.command.as_ref().unwrap()[2], "echo $$(TOKEN)");
    // The step's own literal text still expands; the Secret input still reads as $(TOKEN).
    assert_eq!(
        container.args.as_ref().unwrap(),
        &["$(HOME) $$(TOKEN)", "$(TOKEN)"]
    );
    let env = container.env.as_ref().unwrap();
    assert_eq!(env[1].value.as_deref(), Some("$$(TOKEN)"));
    // Where the kubelet does not expand, the output is kept as produced.
    assert_eq!(
        built.metadata.annotations.as_ref().unwrap()["out"],
        "$(TOKEN)"
    );
    // And `when` sees the input as produced too.
    let inputs = literal_inputs(&flow(vec![step.clone()]), &step, &outputs).unwrap();
    assert_eq!(inputs["note"], "$(HOME) $(TOKEN)");
}

/// Issue 7 rule 12: fields the typed 1.33 Job does not model are kept in the manifest the agent
/// applies (the API server judges them), with our fields merged in. Failed on 44744f3 (the
/// built Job was the typed one: both fields vanished).
#[test]
fn fields_newer_than_the_typed_job_survive_into_the_manifest() {
    let mut step = job_step("a", &[]);
    step.inputs = Some(StepInputs {
        parameters: vec![secret_input("TOKEN")],
        artifacts: vec![],
    });
    let pod = &mut step.template.as_mut().unwrap()["spec"]["template"]["spec"];
    pod["hostnameOverride"] = json!("worker-{{step.attempt}}");
    pod["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    pod["containers"][0]["restartPolicyRules"] =
        json!([{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]);
    let built = build_job(&flow(vec![step.clone()]), &step, 3, &BTreeMap::new()).unwrap();
    let manifest = built.manifest();
    let pod = &manifest["spec"]["template"]["spec"];
    assert_eq!(pod["hostnameOverride"], "worker-3");
    assert_eq!(
        pod["containers"][0]["restartPolicyRules"][0]["exitCodes"]["values"][0],
        42
    );
    // Ours are there too: name, owner, labels, the Secret env first.
    assert_eq!(manifest["metadata"]["name"], json!(built.metadata.name));
    assert_eq!(
        manifest["metadata"]["ownerReferences"][0]["kind"],
        "JobFlow"
    );
    assert_eq!(manifest["metadata"]["labels"][labels::STEP], "a");
    assert_eq!(pod["containers"][0]["env"][0]["name"], "TOKEN");
    assert_eq!(pod["containers"][0]["env"][1]["name"], "A");
    // The typed view has no trace of them.
    assert!(
        serde_json::to_value(pod_spec(&built))
            .unwrap()
            .get("hostnameOverride")
            .is_none()
    );
}
