//! Every manifest in `examples/` is a valid `JobFlow`, and broken variants of them are
//! rejected with the precise problems.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use jobflow::api::JobFlow;
use jobflow::dag::Dag;
use jobflow::validation::{FieldProblem, ProblemKind, validate};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn read_example(name: &str) -> JobFlow {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).expect("example is readable");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|error| {
        panic!("{} is not a JobFlow: {error}", path.display());
    })
}

#[test]
fn every_example_is_a_valid_flow() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for expected in [
        "dag-flow.yaml",
        "linear-flow.yaml",
        "manual-approval-flow.yaml",
        "retry-timeout-flow.yaml",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} is missing"
        );
    }
    for name in &names {
        let flow = read_example(name);
        if let Err(errors) = validate(&flow) {
            panic!("{name} is invalid:\n{errors}");
        }
    }
}

#[test]
fn the_dag_example_fans_out_and_in() {
    let flow = read_example("dag-flow.yaml");
    let dag = Dag::build(&flow.spec).unwrap();
    let order: Vec<&str> = dag
        .topological_order()
        .iter()
        .map(|&i| dag.name(i))
        .collect();
    assert_eq!(
        order,
        [
            "extract-a",
            "extract-b",
            "transform-a",
            "transform-b",
            "merge",
            "load"
        ]
    );
    let merge = dag.index_of("merge").unwrap();
    let dependencies: Vec<&str> = dag
        .dependencies(merge)
        .iter()
        .map(|&i| dag.name(i))
        .collect();
    assert_eq!(dependencies, ["transform-a", "transform-b"]);
}

#[test]
fn a_cyclic_flow_is_reported_as_a_cycle() {
    let mut flow = read_example("linear-flow.yaml");
    flow.spec.steps[0].dependencies = vec!["publish".to_owned()];
    let errors = validate(&flow).unwrap_err();
    assert!(errors.has_cycle());
    assert_eq!(
        errors.problems,
        [FieldProblem {
            path: "spec.steps[0].dependencies".to_owned(),
            message: "dependency cycle prepare -> publish -> process -> prepare; remove one of these dependencies so the steps can run in order".to_owned(),
            kind: ProblemKind::Cycle,
        }]
    );
}

#[test]
fn a_misspelled_dependency_gets_a_suggestion() {
    let mut flow = read_example("dag-flow.yaml");
    flow.spec.steps[4].dependencies[1] = "transfrom-b".to_owned();
    let errors = validate(&flow).unwrap_err();
    assert!(!errors.has_cycle());
    assert_eq!(
        errors.to_string(),
        "spec.steps[4].dependencies[1]: unknown step \"transfrom-b\" (did you mean \"transform-b\"?)"
    );
}

#[test]
fn a_go_template_condition_in_an_example_gets_the_cel_equivalent() {
    let mut flow = read_example("retry-timeout-flow.yaml");
    flow.spec.finally[0].when = Some("{{ eq .Steps.fetch.Phase \"Failed\" }}".to_owned());
    assert_eq!(
        validate(&flow).unwrap_err().to_string(),
        "spec.finally[0].when: Go-template conditions are not supported; write CEL instead: steps.fetch.phase == \"Failed\""
    );
}

#[test]
fn the_retry_example_reads_its_policies() {
    let flow = read_example("retry-timeout-flow.yaml");
    let fetch = &flow.spec.steps[0];
    let retry = fetch.retry_policy.as_ref().unwrap();
    assert_eq!(retry.limit, 3);
    let backoff = retry.backoff.as_ref().unwrap();
    assert_eq!(
        jobflow::validation::parse_duration(&backoff.duration),
        Ok(std::time::Duration::from_secs(10))
    );
    assert_eq!(fetch.timeout_seconds, Some(120));
    assert_eq!(
        flow.spec.execution_policy.active_deadline_seconds,
        Some(1800)
    );
    assert_eq!(
        flow.spec.finally[0].when.as_deref(),
        Some(r#"flow.phase == "Failed""#)
    );
    let manual = read_example("manual-approval-flow.yaml");
    assert_eq!(
        manual.spec.steps[1].step_type,
        jobflow::api::StepType::Manual
    );
    assert!(manual.spec.steps[1].message.is_some());
}
