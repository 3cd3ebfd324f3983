//! Tests of `validate` and `validate_update`: one per rule, and all problems at once.

use serde_json::json;

use super::*;
use crate::api::{
    Artifact, Backoff, BackoffType, ExecutionPolicy, ExitCodeOperator, JobFlowSpec, JobFlowStatus,
    KeyRef, Parameter, ParameterSource, PodFailurePolicy, PodFailurePolicyAction,
    PodFailurePolicyOnExitCodes, PodFailurePolicyRule, RetryPolicy, Step, StepInputs, StepOutputs,
    StepType,
};

pub(super) fn template() -> serde_json::Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {
            "containers": [{"name": "main", "image": "busybox:latest"}],
            "restartPolicy": "Never"
        }}}
    })
}

pub(super) fn job(name: &str, dependencies: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        dependencies: dependencies.iter().map(|&d| d.to_owned()).collect(),
        template: Some(template()),
        ..Step::default()
    }
}

pub(super) fn flow(steps: Vec<Step>, finally: Vec<Step>) -> JobFlow {
    JobFlow::new(
        "demo",
        JobFlowSpec {
            steps,
            finally,
            ..JobFlowSpec::default()
        },
    )
}

pub(super) fn problems_of(flow: &JobFlow) -> Vec<String> {
    match validate(flow) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.problems.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn problems_of_step(step: Step) -> Vec<String> {
    problems_of(&flow(vec![step], vec![]))
}

/// Asserts exactly one problem, at `path`, whose message contains `words`.
#[track_caller]
pub(super) fn assert_one_problem(problems: &[String], path: &str, words: &str) {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let prefix = format!("{path}: ");
    assert!(problems[0].starts_with(&prefix), "{problems:#?}");
    assert!(problems[0].contains(words), "{problems:#?}");
}

#[test]
fn a_valid_flow_passes() {
    let mut manual = job("approve", &["a"]);
    manual.step_type = StepType::Manual;
    manual.template = None;
    manual.message = Some("Approve?".into());
    let mut cleanup = job("cleanup", &["b", "report"]);
    cleanup.when = Some(r#"flow.phase == "Failed""#.into());
    assert_eq!(
        validate(&flow(
            vec![job("a", &[]), manual, job("b", &["approve", "a"])],
            vec![job("report", &["a"]), cleanup],
        )),
        Ok(())
    );
}

#[test]
fn a_flow_needs_a_step() {
    assert_one_problem(
        &problems_of(&flow(vec![], vec![])),
        "spec.steps",
        "at least one step",
    );
}

#[test]
fn names_must_be_short_dns_labels() {
    assert_one_problem(
        &problems_of_step(job("Build_It", &[])),
        "spec.steps[0].name",
        "not a DNS-1123 label",
    );
    assert_one_problem(
        &problems_of_step(job(&"x".repeat(49), &[])),
        "spec.steps[0].name",
        "use at most 48",
    );
}

#[test]
fn names_are_unique_across_steps_and_finally() {
    let problems = problems_of(&flow(vec![job("a", &[])], vec![job("a", &[])]));
    assert_one_problem(
        &problems,
        "spec.finally[0].name",
        "step name \"a\" is already used by spec.steps[0]",
    );
}

#[test]
fn an_unknown_dependency_suggests_the_closest_name() {
    let problems = problems_of(&flow(
        vec![
            job("extract", &[]),
            job("transform", &["extract"]),
            job("load", &["transfrom"]),
        ],
        vec![],
    ));
    assert_eq!(
        problems,
        ["spec.steps[2].dependencies[0]: unknown step \"transfrom\" (did you mean \"transform\"?)"]
    );
    let problems = problems_of(&flow(vec![job("a", &["zzz"])], vec![]));
    assert_one_problem(
        &problems,
        "spec.steps[0].dependencies[0]",
        "unknown step \"zzz\"; name one of this flow's steps (a) or remove it",
    );
}

#[test]
fn a_step_cannot_depend_on_itself() {
    assert_one_problem(
        &problems_of_step(job("a", &["a"])),
        "spec.steps[0].dependencies[0]",
        "depends on itself; remove this dependency",
    );
}

#[test]
fn a_dependency_is_listed_once() {
    let problems = problems_of(&flow(vec![job("a", &[]), job("b", &["a", "a"])], vec![]));
    assert_one_problem(
        &problems,
        "spec.steps[1].dependencies[1]",
        "\"a\" is already listed at dependencies[0]; remove this entry",
    );
}

#[test]
fn a_cycle_is_reported_once_at_its_first_step() {
    let errors = validate(&flow(
        vec![job("a", &["c"]), job("b", &["a"]), job("c", &["b"])],
        vec![],
    ))
    .unwrap_err();
    assert!(errors.has_cycle());
    assert_eq!(
        errors.problems,
        [FieldProblem {
            path: "spec.steps[0].dependencies".into(),
            message: "dependency cycle a -> c -> b -> a; remove one of these dependencies so the steps can run in order".into(),
            kind: ProblemKind::Cycle,
        }]
    );
}

#[test]
fn a_cycle_among_finally_steps_has_a_finally_path() {
    let problems = problems_of(&flow(
        vec![job("a", &[])],
        vec![job("x", &["y"]), job("y", &["x"])],
    ));
    assert_one_problem(
        &problems,
        "spec.finally[0].dependencies",
        "dependency cycle x -> y -> x",
    );
}

#[test]
fn a_regular_step_cannot_depend_on_a_finally_step() {
    let problems = problems_of(&flow(
        vec![job("a", &["cleanup"])],
        vec![job("cleanup", &["a"])],
    ));
    assert_one_problem(
        &problems,
        "spec.steps[0].dependencies[0]",
        "cannot depend on finally step \"cleanup\"",
    );
}

#[test]
fn when_must_parse() {
    let mut step = job("a", &[]);
    step.when = Some("{{ eq .Steps.a.Phase \"Succeeded\" }}".into());
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].when",
        "write CEL instead: steps.a.phase == \"Succeeded\"",
    );
}

#[test]
fn when_must_read_existing_steps() {
    let mut cleanup = job("cleanup", &[]);
    cleanup.when = Some(r#"steps.biuld.phase == "Failed""#.into());
    let problems = problems_of(&flow(vec![job("build", &[])], vec![cleanup]));
    assert_one_problem(
        &problems,
        "spec.finally[0].when",
        "the condition reads unknown step \"biuld\" (did you mean \"build\"?)",
    );
}

#[test]
fn retry_limit_is_not_negative() {
    let mut step = job("a", &[]);
    step.retry_policy = Some(RetryPolicy {
        limit: -1,
        backoff: None,
    });
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].retryPolicy.limit",
        "must be from 0 to 100",
    );
}

#[test]
fn backoff_duration_parses_and_factor_is_at_least_one() {
    let mut step = job("a", &[]);
    step.retry_policy = Some(RetryPolicy {
        limit: 2,
        backoff: Some(Backoff {
            backoff_type: BackoffType::Exponential,
            duration: "10 seconds".into(),
            factor: Some(0.5),
        }),
    });
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("spec.steps[0].retryPolicy.backoff.duration: \"10 seconds\""));
    assert!(
        problems[1]
            .starts_with("spec.steps[0].retryPolicy.backoff.factor: must be a number from 1 to 10")
    );
}

#[test]
fn retries_backoffs_and_ttl_are_bounded() {
    let mut step = job("a", &[]);
    step.retry_policy = Some(RetryPolicy {
        limit: 1_000_000,
        backoff: Some(Backoff {
            backoff_type: BackoffType::Fixed,
            duration: "1000000h".into(),
            factor: Some(1e300),
        }),
    });
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("spec.steps[0].retryPolicy.limit: must be from 0 to 100"));
    assert!(problems[1].starts_with(
        "spec.steps[0].retryPolicy.backoff.duration: \"1000000h\" is longer than the longest wait between attempts, 24h"
    ));
    assert!(
        problems[2]
            .starts_with("spec.steps[0].retryPolicy.backoff.factor: must be a number from 1 to 10")
    );

    let problems = with_policy(ExecutionPolicy {
        backoff_limit: i32::MAX,
        ttl_seconds_after_finished: i64::MAX,
        ..ExecutionPolicy::default()
    });
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("spec.executionPolicy.backoffLimit: must be from 0 to 10000"));
    assert!(problems[1].starts_with(
        "spec.executionPolicy.ttlSecondsAfterFinished: must be from 0 to 31536000 (365 days"
    ));
    let fine = with_policy(ExecutionPolicy {
        backoff_limit: 10_000,
        ttl_seconds_after_finished: 31_536_000,
        ..ExecutionPolicy::default()
    });
    assert!(fine.is_empty(), "{fine:#?}");
}

#[test]
fn timeout_is_one_second_to_thirty_days() {
    for (seconds, valid) in [(0, false), (1, true), (2_592_000, true), (2_592_001, false)] {
        let mut step = job("a", &[]);
        step.timeout_seconds = Some(seconds);
        let problems = problems_of_step(step);
        if valid {
            assert!(problems.is_empty(), "{seconds}: {problems:#?}");
        } else {
            assert_one_problem(
                &problems,
                "spec.steps[0].timeoutSeconds",
                "from 1 to 2592000 (30 days)",
            );
        }
    }
}

#[test]
fn a_job_step_needs_a_template_and_a_manual_step_has_none() {
    let mut step = job("a", &[]);
    step.template = None;
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template",
        "set type: Manual",
    );
    let mut step = job("a", &[]);
    step.step_type = StepType::Manual;
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template",
        "remove the template",
    );
}

#[test]
fn the_template_is_a_batch_v1_job() {
    let mut step = job("a", &[]);
    step.template = Some(
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}}),
    );
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("spec.steps[0].template.kind: must be \"Job\""));
    assert!(problems[1].starts_with("spec.steps[0].template.apiVersion: must be \"batch/v1\""));
}

#[test]
fn template_type_errors_name_the_field() {
    let mut step = job("a", &[]);
    step.template =
        Some(json!({"spec": {"backoffLimit": "six", "template": {"spec": {"containers": []}}}}));
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template.spec.backoffLimit",
        "invalid type: string \"six\", expected i32",
    );
    let mut step = job("a", &[]);
    step.template = Some(json!("a job"));
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template",
        "must be an object",
    );
}

#[test]
fn the_template_needs_containers_with_names_and_images() {
    let mut step = job("a", &[]);
    step.template =
        Some(json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}}));
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template.spec.template.spec.containers",
        "at least one container",
    );
    let mut step = job("a", &[]);
    step.template = Some(
        json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": ""}]}}}}),
    );
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with(
        "spec.steps[0].template.spec.template.spec.containers[0].name: a container needs a name"
    ));
    assert!(problems[1].starts_with(
        "spec.steps[0].template.spec.template.spec.containers[0].image: a container needs an image"
    ));
    let mut step = job("a", &[]);
    step.template = Some(json!({"kind": "Job"}));
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template.spec.template.spec",
        "is missing",
    );
}

#[test]
fn the_template_restart_policy_suits_a_job() {
    let mut step = job("a", &[]);
    step.template = Some(
        json!({"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "m", "image": "i"}]}}}}),
    );
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template.spec.template.spec.restartPolicy",
        "use OnFailure or Never",
    );
}

/// Rule 1: Kubernetes refuses a Job whose pods lack restartPolicy (their default is Always).
/// Failed on 44744f3 (no problem was reported).
#[test]
fn the_template_must_set_a_restart_policy() {
    let mut step = job("a", &[]);
    step.template = Some(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}}),
    );
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].template.spec.template.spec.restartPolicy",
        "is missing; Kubernetes refuses a Job whose pods do not set restartPolicy OnFailure or Never",
    );
}

fn literal(name: &str, value: &str) -> Parameter {
    Parameter {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_json_path(name: &str, json_path: &str) -> Parameter {
    Parameter {
        name: name.into(),
        value: None,
        value_from: Some(ParameterSource {
            json_path: Some(json_path.into()),
            ..ParameterSource::default()
        }),
    }
}

#[test]
fn a_parameter_has_exactly_one_source() {
    let key = KeyRef {
        name: "settings".into(),
        key: "env".into(),
        optional: None,
    };
    let mut both = literal("both", "1");
    both.value_from = Some(ParameterSource {
        config_map_key_ref: Some(key.clone()),
        ..ParameterSource::default()
    });
    let two_refs = Parameter {
        name: "refs".into(),
        value: None,
        value_from: Some(ParameterSource {
            config_map_key_ref: Some(key.clone()),
            secret_key_ref: Some(key),
            json_path: None,
        }),
    };
    let none = Parameter {
        name: "none".into(),
        ..Parameter::default()
    };
    let empty = Parameter {
        name: "empty".into(),
        value: None,
        value_from: Some(ParameterSource::default()),
    };
    let mut step = job("a", &[]);
    step.inputs = Some(StepInputs {
        parameters: vec![literal("ok", "1"), both, two_refs, none, empty],
        artifacts: vec![],
    });
    let problems = problems_of_step(step);
    assert_eq!(
        problems,
        [
            "spec.steps[0].inputs.parameters[1]: parameter \"both\" sets value and valueFrom.configMapKeyRef; keep exactly one source",
            "spec.steps[0].inputs.parameters[2]: parameter \"refs\" sets valueFrom.configMapKeyRef and valueFrom.secretKeyRef; keep exactly one source",
            "spec.steps[0].inputs.parameters[3]: parameter \"none\" has no value; set value, or valueFrom with one of jsonPath, configMapKeyRef or secretKeyRef",
            "spec.steps[0].inputs.parameters[4].valueFrom: parameter \"empty\" has an empty valueFrom; set exactly one of jsonPath, configMapKeyRef or secretKeyRef",
        ]
    );
}

#[test]
fn parameter_names_are_present_and_unique() {
    let mut step = job("a", &[]);
    step.inputs = Some(StepInputs {
        parameters: vec![literal("x", "1"), literal("x", "2"), literal("", "3")],
        artifacts: vec![],
    });
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with(
        "spec.steps[0].inputs.parameters[1].name: parameter \"x\" is already defined"
    ));
    assert!(
        problems[1]
            .starts_with("spec.steps[0].inputs.parameters[2].name: a parameter needs a name")
    );
}

#[test]
fn output_parameters_need_a_json_path() {
    let mut step = job("a", &[]);
    step.outputs = Some(StepOutputs {
        parameters: vec![from_json_path("count", ".count"), literal("fixed", "1")],
        artifacts: vec![],
    });
    assert_one_problem(
        &problems_of_step(step),
        "spec.steps[0].outputs.parameters[1].valueFrom.jsonPath",
        "set valueFrom.jsonPath",
    );
}

/// Rule 13: artifacts were accepted, path-checked and then ignored. Failed on 44744f3 (a
/// valid path passed).
#[test]
fn artifacts_are_refused_with_what_to_use_instead() {
    let artifact = |name: &str| Artifact {
        name: name.into(),
        path: Some("/data/out.csv".into()),
        ..Artifact::default()
    };
    let mut step = job("a", &[]);
    step.outputs = Some(StepOutputs {
        parameters: vec![],
        artifacts: vec![artifact("report"), artifact("data")],
    });
    step.inputs = Some(StepInputs {
        parameters: vec![],
        artifacts: vec![artifact("seed")],
    });
    let problems = problems_of_step(step);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0]
            .starts_with("spec.steps[0].inputs.artifacts: artifacts (seed) are not supported yet")
    );
    assert!(problems[1].starts_with(
        "spec.steps[0].outputs.artifacts: artifacts (report, data) are not supported yet"
    ));
    assert!(problems[1].contains("spec.resourceTemplates.volumeClaimTemplates"));
}

fn with_policy(policy: ExecutionPolicy) -> Vec<String> {
    let mut flow = flow(vec![job("a", &[])], vec![]);
    flow.spec.execution_policy = policy;
    problems_of(&flow)
}

#[test]
fn execution_policy_numbers_are_in_range() {
    let problems = with_policy(ExecutionPolicy {
        active_deadline_seconds: Some(0),
        backoff_limit: -1,
        ttl_seconds_after_finished: -1,
        parallelism: Some(0),
        ..ExecutionPolicy::default()
    });
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "spec.executionPolicy.activeDeadlineSeconds",
            "spec.executionPolicy.backoffLimit",
            "spec.executionPolicy.ttlSecondsAfterFinished",
            "spec.executionPolicy.parallelism",
        ]
    );
    let fine = with_policy(ExecutionPolicy {
        active_deadline_seconds: Some(2_592_000),
        backoff_limit: 0,
        ttl_seconds_after_finished: 0,
        parallelism: Some(1),
        ..ExecutionPolicy::default()
    });
    assert!(fine.is_empty(), "{fine:#?}");
    let too_long = with_policy(ExecutionPolicy {
        active_deadline_seconds: Some(2_592_001),
        ..ExecutionPolicy::default()
    });
    assert_one_problem(
        &too_long,
        "spec.executionPolicy.activeDeadlineSeconds",
        "30 days",
    );
}

#[test]
fn concurrency_key_is_non_empty_and_at_most_63_characters() {
    for (key, problem) in [
        ("nightly", None),
        ("", Some("is empty")),
        (&"k".repeat(64) as &str, Some("is 64 characters long")),
    ] {
        let problems = with_policy(ExecutionPolicy {
            concurrency_key: Some(key.to_owned()),
            ..ExecutionPolicy::default()
        });
        match problem {
            None => assert!(problems.is_empty(), "{problems:#?}"),
            Some(words) => {
                assert_one_problem(&problems, "spec.executionPolicy.concurrencyKey", words);
            }
        }
    }
}

#[test]
fn pod_failure_exit_codes_are_listed_and_in_range() {
    let rule = |operator, values: Vec<i32>| PodFailurePolicyRule {
        action: PodFailurePolicyAction::FailJob,
        on_exit_codes: Some(PodFailurePolicyOnExitCodes {
            container_name: None,
            operator,
            values,
        }),
    };
    let problems = with_policy(ExecutionPolicy {
        pod_failure_policy: Some(PodFailurePolicy {
            rules: vec![
                rule(ExitCodeOperator::In, vec![1, 42]),
                rule(ExitCodeOperator::In, vec![]),
                rule(ExitCodeOperator::NotIn, vec![0, 256, -1, 0]),
                rule(ExitCodeOperator::In, vec![0]),
            ],
        }),
        ..ExecutionPolicy::default()
    });
    let base = "spec.executionPolicy.podFailurePolicy.rules";
    assert_eq!(
        problems,
        [
            format!("{base}[1].onExitCodes.values: lists no exit code; add at least one, e.g. [1]"),
            format!(
                "{base}[2].onExitCodes.values[1]: 256 is not an exit code; use a number from 0 to 255"
            ),
            format!(
                "{base}[2].onExitCodes.values[2]: -1 is not an exit code; use a number from 0 to 255"
            ),
            format!("{base}[2].onExitCodes.values[3]: 0 is listed twice; remove this one"),
            format!(
                "{base}[3].onExitCodes.values[0]: 0 means success and cannot be matched with operator In; remove it"
            ),
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut bad_when = job("Bad_Name", &["missing", "Bad_Name"]);
    bad_when.when = Some("steps.x.phase ==".into());
    bad_when.timeout_seconds = Some(0);
    let mut flow = flow(
        vec![bad_when, job("a", &["b"]), job("b", &["a"])],
        vec![job("a", &[])],
    );
    flow.spec.execution_policy.parallelism = Some(0);
    let errors = validate(&flow).unwrap_err();
    let paths: Vec<&str> = errors.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.steps[0].name",
            "spec.finally[0].name",
            "spec.steps[0].dependencies[0]",
            "spec.steps[0].dependencies[1]",
            "spec.steps[1].dependencies",
            "spec.steps[0].when",
            "spec.steps[0].timeoutSeconds",
            "spec.executionPolicy.parallelism",
        ],
        "{errors}"
    );
    assert!(errors.has_cycle());
    assert_eq!(errors.to_string().lines().count(), 8);
}

fn started(mut flow: JobFlow) -> JobFlow {
    flow.status = Some(JobFlowStatus {
        start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        )),
        ..JobFlowStatus::default()
    });
    flow
}

#[test]
fn a_started_flow_may_only_change_suspend() {
    let old = started(flow(vec![job("a", &[])], vec![]));
    let mut new = old.clone();
    new.spec.suspend = Some(true);
    assert_eq!(validate_update(&old, &new), Ok(()));

    new.spec.steps.push(job("b", &["a"]));
    new.spec.execution_policy.backoff_limit = 1;
    let errors = validate_update(&old, &new).unwrap_err();
    let paths: Vec<&str> = errors.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["spec.steps", "spec.executionPolicy"]);
    assert!(
        errors.problems[0]
            .message
            .contains("only spec.suspend may change")
    );
}

#[test]
fn a_flow_that_has_not_started_may_change() {
    let old = flow(vec![job("a", &[])], vec![]);
    let mut new = old.clone();
    new.spec.finally.push(job("cleanup", &[]));
    assert_eq!(validate_update(&old, &new), Ok(()));
}

#[test]
fn an_unchanged_spec_is_not_checked_again() {
    // Accepted by an older release whose rules were looser: suspending it still works.
    let old = started(flow(vec![job("Legacy_Name", &[])], vec![]));
    let mut new = old.clone();
    new.spec.suspend = Some(true);
    assert_eq!(validate_update(&old, &new), Ok(()));
}

#[test]
fn an_update_must_also_be_valid() {
    let old = flow(vec![job("a", &[])], vec![]);
    let new = flow(vec![job("a", &["ghost"])], vec![]);
    assert_one_problem(
        &validate_update(&old, &new)
            .unwrap_err()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        "spec.steps[0].dependencies[0]",
        "unknown step \"ghost\"",
    );
}

mod agrees_with_the_dag {
    use proptest::prelude::*;

    use super::*;
    use crate::dag::Dag;

    const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    /// Up to eight steps, now and then one named like the first or depending on a step that
    /// does not exist; the first `regular` are regular steps, the rest finally steps.
    fn random_spec() -> impl Strategy<Value = JobFlowSpec> {
        (1..=NAMES.len(), 1..=NAMES.len())
            .prop_flat_map(|(count, regular)| {
                let step = (
                    proptest::bool::weighted(0.05),
                    proptest::collection::btree_set(0..count, 0..3),
                    proptest::bool::weighted(0.05),
                );
                (proptest::collection::vec(step, count), Just(regular))
            })
            .prop_map(|(steps, regular)| {
                let mut steps: Vec<Step> = steps
                    .into_iter()
                    .enumerate()
                    .map(|(index, (repeats_a_name, dependencies, needs_a_ghost))| {
                        let name = if repeats_a_name {
                            NAMES[0]
                        } else {
                            NAMES[index]
                        };
                        let mut dependencies: Vec<&str> =
                            dependencies.into_iter().map(|d| NAMES[d]).collect();
                        if needs_a_ghost {
                            dependencies.push("ghost");
                        }
                        job(name, &dependencies)
                    })
                    .collect();
                let finally = steps.split_off(regular.min(steps.len()));
                JobFlowSpec {
                    steps,
                    finally,
                    ..JobFlowSpec::default()
                }
            })
    }

    proptest! {
        /// The planner builds the DAG of every flow that validates, so the two must agree.
        #[test]
        fn a_flow_validates_exactly_when_its_dag_builds(spec in random_spec()) {
            let flow = JobFlow::new("demo", spec);
            let validated = validate(&flow);
            let built = Dag::build(&flow.spec);
            prop_assert_eq!(validated.is_ok(), built.is_ok(), "{:?} / {:?}", validated, built);
            if let Err(errors) = &validated
                && errors.has_cycle()
            {
                prop_assert!(built.is_err());
            }
        }
    }
}

#[test]
fn a_pod_failure_policy_needs_restart_policy_never() {
    let mut flow = flow(vec![job("a", &[])], vec![]);
    flow.spec.steps[0].template.as_mut().unwrap()["spec"]["template"]["spec"]["restartPolicy"] =
        serde_json::json!("OnFailure");
    assert!(
        validate(&flow).is_ok(),
        "OnFailure is fine without a pod failure policy"
    );
    flow.spec.execution_policy.pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: PodFailurePolicyAction::FailJob,
            on_exit_codes: Some(PodFailurePolicyOnExitCodes {
                container_name: None,
                operator: ExitCodeOperator::In,
                values: vec![3],
            }),
        }],
    });
    let problems = problems_of(&flow);
    assert_one_problem(
        &problems,
        "spec.steps[0].template.spec.template.spec.restartPolicy",
        "set restartPolicy: Never",
    );
}

#[test]
fn when_may_read_only_steps_that_have_ended() {
    let mut b = job("b", &[]);
    b.when = Some("steps.a.phase == 'Succeeded'".into());
    let problems = problems_of(&flow(vec![job("a", &[]), b.clone()], vec![]));
    assert_one_problem(
        &problems,
        "spec.steps[1].when",
        "add \"a\" to this step's dependencies",
    );

    b.dependencies = vec!["mid".into()];
    let transitive = flow(vec![job("a", &[]), job("mid", &["a"]), b], vec![]);
    assert!(
        validate(&transitive).is_ok(),
        "{:?}",
        problems_of(&transitive)
    );
}

#[test]
fn resource_templates_need_unique_dns_names() {
    let mut flow = flow(vec![job("a", &[])], vec![]);
    flow.spec.resource_templates = Some(crate::api::ResourceTemplates {
        volume_claim_templates: vec![
            serde_json::json!({"metadata": {"name": "scratch"}}),
            serde_json::json!({"metadata": {"name": "scratch"}}),
            serde_json::json!({"spec": {}}),
        ],
        config_map_templates: vec![serde_json::json!({"metadata": {"name": "Bad_Name"}})],
    });
    let problems = problems_of(&flow);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with(
        "spec.resourceTemplates.volumeClaimTemplates[1].metadata.name: \"scratch\" is used twice"
    ));
    assert!(
        problems[1].starts_with(
            "spec.resourceTemplates.volumeClaimTemplates[2].metadata.name: is missing"
        )
    );
    assert!(
        problems[2]
            .contains("configMapTemplates[0].metadata.name: \"Bad_Name\" is not a DNS-1123 label")
    );
}

#[test]
fn a_flow_name_must_fit_a_label_value() {
    let mut long = flow(vec![job("a", &[])], vec![]);
    long.metadata.name = Some("n".repeat(70));
    let problems = problems_of(&long);
    assert_one_problem(
        &problems,
        "metadata.name",
        "is 70 characters long; use a name of at most 63 characters",
    );
    assert!(
        problems[0].contains("label workflow.kube-zen.io/flow on every Job and pod"),
        "{problems:#?}"
    );

    long.metadata.name = Some("n".repeat(63));
    assert!(validate(&long).is_ok(), "{:?}", problems_of(&long));
}
