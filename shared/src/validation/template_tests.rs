//! Tests of what a step's template may hold (issue 7): metadata Kubernetes accepts, references
//! that resolve, env inputs that do not clash, and warnings for fields Kubernetes 1.33 does not
//! know. Each test failed on 44744f3 unless it says otherwise.

use std::collections::BTreeMap;

use serde_json::json;

use super::tests::{assert_one_problem, flow, job, problems_of, problems_of_step};
use super::*;
use crate::api::{KeyRef, Parameter, ParameterSource, StepInputs, StepMetadata, StepOutputs};

fn output(name: &str) -> Parameter {
    Parameter {
        name: name.into(),
        value_from: Some(ParameterSource {
            json_path: Some(format!(".{name}")),
            ..ParameterSource::default()
        }),
        ..Parameter::default()
    }
}

fn with_args(mut step: Step, args: &[&str]) -> Step {
    step.template.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(args);
    step
}

/// Rule 1: labels and annotations the API server would refuse.
#[test]
fn step_metadata_follows_kubernetes_rules() {
    let mut step = job("a", &[]);
    step.metadata = Some(StepMetadata {
        labels: BTreeMap::from([
            ("team".into(), "data".into()),
            ("bad key".into(), "ok".into()),
            ("note".into(), "has spaces".into()),
            ("Example.com/x".into(), "v".repeat(64)),
        ]),
        annotations: BTreeMap::from([
            ("fine/free-text".into(), "any text at all: ok".into()),
            ("-bad".into(), String::new()),
        ]),
    });
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let expected = [
        r#"spec.steps[0].metadata.labels["Example.com/x"]: label key "Example.com/x" has prefix "Example.com""#,
        r#"spec.steps[0].metadata.labels["Example.com/x"]: label value "vvvv"#,
        r#"spec.steps[0].metadata.labels["bad key"]: label key "bad key" is not a qualified name"#,
        r#"spec.steps[0].metadata.labels["note"]: label value "has spaces" is not a valid label value"#,
        r#"spec.steps[0].metadata.annotations["-bad"]: annotation key "-bad" is not a qualified name"#,
    ];
    for (problem, start) in problems.iter().zip(expected) {
        assert!(problem.starts_with(start), "{problem}");
    }
}

/// Rule 1: the template's own metadata reaches the Job too; annotations have a total size.
#[test]
fn template_metadata_follows_kubernetes_rules() {
    let mut step = job("a", &[]);
    let template = step.template.as_mut().unwrap();
    template["metadata"] = json!({"labels": {"a/b/c": "x"}});
    template["spec"]["template"]["metadata"] =
        json!({"annotations": {"big": "x".repeat(300 * 1024)}});
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(r#"spec.steps[0].template.metadata.labels["a/b/c"]: label key"#)
    );
    assert!(problems[1].starts_with(
        "spec.steps[0].template.spec.template.metadata.annotations: annotations take 307203 bytes"
    ));
}

/// Rule 7: reading `steps` whole is a validation error, not a run-time surprise.
#[test]
fn when_may_not_read_steps_whole() {
    let mut step = job("b", &["a"]);
    step.when = Some(r#"steps.exists(s, steps[s].phase == "Failed")"#.into());
    let problems = problems_of(&flow(vec![job("a", &[]), step], vec![]));
    assert_one_problem(&problems, "spec.steps[1].when", "reads `steps` as a whole");
}

/// Rule 7: `{{steps.X.outputs.Y}}` names an upstream step and an output it declares.
#[test]
fn output_references_name_an_upstream_declared_output() {
    let mut producer = job("extract", &[]);
    producer.outputs = Some(StepOutputs {
        parameters: vec![output("rows")],
        artifacts: vec![],
    });
    let other = job("other", &[]);
    let consumer = |args: &[&str]| with_args(job("load", &["extract"]), args);
    let check =
        |step: Step| problems_of(&flow(vec![producer.clone(), other.clone(), step], vec![]));
    assert_eq!(
        check(consumer(&["{{steps.extract.outputs.rows}}"])),
        Vec::<String>::new()
    );
    assert_eq!(
        check(consumer(&["{{ steps.extract.outputs.parameters.rows }}"])),
        Vec::<String>::new()
    );
    let path = "spec.steps[2].template";
    assert_one_problem(
        &check(consumer(&["{{steps.extract.outputs.row}}"])),
        path,
        r#"{{steps.extract.outputs.row}} reads output "row" of step "extract", which declares only rows"#,
    );
    assert_one_problem(
        &check(consumer(&["{{steps.other.outputs.rows}}"])),
        path,
        r#"reads step "other", which may not have ended when this step starts; add "other" to this step's dependencies"#,
    );
    assert_one_problem(
        &check(consumer(&["x {{steps.extrct.outputs.rows}}"])),
        path,
        r#"reads unknown step "extrct" (did you mean "extract"?)"#,
    );
    // Transitively upstream is enough; an input value is checked too.
    let mut later = job("report", &["load"]);
    later.inputs = Some(StepInputs {
        parameters: vec![Parameter {
            name: "n".into(),
            value: Some("{{steps.extract.outputs.nope}}".into()),
            ..Parameter::default()
        }],
        artifacts: vec![],
    });
    let problems = problems_of(&flow(vec![producer.clone(), consumer(&[]), later], vec![]));
    assert_one_problem(
        &problems,
        "spec.steps[2].inputs.parameters[0].value",
        r#"reads output "nope" of step "extract""#,
    );
}

/// `{{inputs.parameters.X}}` names an input the step declares (passed on 44744f3 only at
/// build time, where it failed the step).
#[test]
fn input_references_name_a_declared_input() {
    assert_one_problem(
        &problems_of_step(with_args(job("a", &[]), &["{{inputs.parameters.missing}}"])),
        "spec.steps[0].template",
        r#"names input parameter "missing", which this step does not declare"#,
    );
    // Other braces are not ours and stay as written.
    assert_eq!(
        problems_of_step(with_args(
            job("a", &[]),
            &["{{ .Values.x }}", "{{flow.name}}"]
        )),
        Vec::<String>::new()
    );
}

/// Rule 8: a Secret input is an env var of every container; a template env var of the same
/// name would silently shadow or be shadowed.
#[test]
fn an_env_input_may_not_share_a_name_with_the_template_env() {
    let mut step = job("a", &[]);
    step.inputs = Some(StepInputs {
        parameters: vec![Parameter {
            name: "TOKEN".into(),
            value_from: Some(ParameterSource {
                secret_key_ref: Some(KeyRef {
                    name: "creds".into(),
                    key: "token".into(),
                    optional: None,
                }),
                ..ParameterSource::default()
            }),
            ..Parameter::default()
        }],
        artifacts: vec![],
    });
    let pod = &mut step.template.as_mut().unwrap()["spec"]["template"]["spec"];
    pod["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "TOKEN", "value": "x"}]);
    pod["initContainers"] =
        json!([{"name": "init", "image": "busybox", "env": [{"name": "TOKEN", "value": "y"}]}]);
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with(
        r#"spec.steps[0].template.spec.template.spec.containers[0].env[1].name: env "TOKEN" clashes with the input parameter"#
    ));
    assert!(
        problems[1]
            .starts_with("spec.steps[0].template.spec.template.spec.initContainers[0].env[0].name")
    );
}

/// Rule 12: fields the typed Job of Kubernetes 1.33 does not know are warnings with their path;
/// the flow stays valid. Rule 6: a template TTL is reported as ignored.
#[test]
fn unknown_template_fields_are_warnings_with_their_path() {
    let mut step = job("a", &[]);
    let template = step.template.as_mut().unwrap();
    template["spec"]["ttlSecondsAfterFinished"] = json!(10);
    let pod = &mut template["spec"]["template"]["spec"];
    pod["containers"][0]["imagePullPolcy"] = json!("Always");
    pod["hostnameOverride"] = json!("worker");
    let report = report(&flow(vec![step], vec![]));
    assert_eq!(report.problems, Vec::new());
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("spec.steps[0].template.spec.ttlSecondsAfterFinished: is ignored")
    );
    assert!(warnings[1].starts_with(
        "spec.steps[0].template.spec.template.spec.containers[0].imagePullPolcy: is not a field of a batch/v1 Job in Kubernetes 1.33"
    ));
    assert!(
        warnings[2].starts_with(
            "spec.steps[0].template.spec.template.spec.hostnameOverride: is not a field"
        )
    );
    assert!(
        report
            .warnings
            .iter()
            .all(|warning| warning.kind == ProblemKind::Warning)
    );
}

/// The unknown fields validation warns about are those the planner keeps aside
/// (`unmodeled_fields`: the template against the typed Job written back), in the same order:
/// unknown keys at every depth, inside array elements, null ones left out.
#[test]
fn unknown_fields_are_those_the_typed_job_drops() {
    use k8s_openapi::api::batch::v1::Job;

    let mut step = job("a", &[]);
    let template = step.template.as_mut().unwrap();
    template["zzTop"] = json!({"nested": 1});
    template["metadata"] = json!({"labels": {"a": "b"}, "nope": [1], "gone": null});
    template["spec"]["backoffLimitPerIndex"] = json!(1);
    template["spec"]["aNewField"] = json!(null);
    template["spec"]["anotherNewField"] = json!("x");
    let pod = &mut template["spec"]["template"]["spec"];
    pod["containers"][0]["env"] = json!([{"name": "X", "value": "1", "typo": true}]);
    pod["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}, "claimz": []});
    pod["volumes"] = json!([{"name": "v", "emptyDir": {}, "image2": {"reference": "r"}}]);
    let expected: Vec<String> = {
        let template = step.template.as_ref().unwrap();
        let typed: Job = serde_json::from_value(template.clone()).unwrap();
        crate::unmodeled::unmodeled_fields(template, &serde_json::to_value(&typed).unwrap())
            .iter()
            .map(|field| format!("spec.steps[0].template{}", field.dotted_path()))
            .collect()
    };
    let report = report(&flow(vec![step], vec![]));
    let warned: Vec<&str> = report
        .warnings
        .iter()
        .filter(|warning| warning.message.starts_with("is not a field"))
        .map(|warning| warning.path.as_str())
        .collect();
    assert_eq!(warned, expected);
    assert_eq!(warned.len(), 6, "{warned:#?}");
    assert!(
        warned
            .iter()
            .all(|path| !path.ends_with("gone") && !path.ends_with("aNewField"))
    );
}

/// Problems come grouped by check, each group in step order: conditions, references, the
/// steps' own fields, then pod failure policies (the checks run in one pass over the steps).
#[test]
fn problems_are_grouped_by_check_then_step() {
    let broken = |name: &str| {
        let mut step = with_args(job(name, &[]), &["{{inputs.parameters.nope}}"]);
        step.when = Some("(((".into());
        let template = step.template.as_mut().unwrap();
        template["spec"]["podFailurePolicy"] = json!({"rules": []});
        let pod = &mut template["spec"]["template"]["spec"];
        pod["restartPolicy"] = json!("OnFailure");
        pod["containers"][0]["image"] = json!("");
        step
    };
    let paths: Vec<String> = validate(&flow(vec![broken("a"), broken("b")], vec![]))
        .unwrap_err()
        .problems
        .into_iter()
        .map(|problem| problem.path)
        .collect();
    let pod = "template.spec.template.spec";
    assert_eq!(
        paths,
        [
            "spec.steps[0].when".to_owned(),
            "spec.steps[1].when".to_owned(),
            "spec.steps[0].template".to_owned(),
            "spec.steps[1].template".to_owned(),
            format!("spec.steps[0].{pod}.containers[0].image"),
            format!("spec.steps[1].{pod}.containers[0].image"),
            format!("spec.steps[0].{pod}.restartPolicy"),
            format!("spec.steps[1].{pod}.restartPolicy"),
        ]
    );
}
