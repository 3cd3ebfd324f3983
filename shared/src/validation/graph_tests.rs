//! Why a flow's steps do not form a DAG: [`Dag::build`] reports validation's graph problems.

use super::BuildDagError;
use crate::api::{JobFlowSpec, Step};
use crate::dag::Dag;

fn step(name: &str, dependencies: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        dependencies: dependencies.iter().map(|&d| d.to_owned()).collect(),
        ..Step::default()
    }
}

fn build(steps: Vec<Step>, finally: Vec<Step>) -> Result<Dag, BuildDagError> {
    Dag::build(&JobFlowSpec {
        steps,
        finally,
        ..JobFlowSpec::default()
    })
}

#[test]
fn rejects_a_repeated_dependency() {
    let error = build(
        vec![step("a", &[]), step("b", &[]), step("c", &["b", "a", "b"])],
        vec![],
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.steps[2].dependencies[2]: \"b\" is already listed at dependencies[0]; remove this entry"
    );
}

/// The one problem `Dag::build` reports, as `path: message`.
fn only_problem(error: &BuildDagError) -> String {
    assert_eq!(error.problems.problems.len(), 1, "{error}");
    error.to_string()
}

#[test]
fn rejects_a_duplicate_name_across_steps_and_finally() {
    let error = build(vec![step("a", &[])], vec![step("a", &[])]).unwrap_err();
    assert!(
        only_problem(&error)
            .starts_with("spec.finally[0].name: step name \"a\" is already used by spec.steps[0]"),
        "{error}"
    );
}

#[test]
fn rejects_an_unknown_dependency() {
    let error = build(vec![step("a", &["ghost"])], vec![]).unwrap_err();
    assert!(
        only_problem(&error).starts_with("spec.steps[0].dependencies[0]: unknown step \"ghost\""),
        "{error}"
    );
}

#[test]
fn rejects_a_regular_step_depending_on_a_finally_step() {
    let error = build(vec![step("a", &["cleanup"])], vec![step("cleanup", &[])]).unwrap_err();
    let problem = only_problem(&error);
    assert!(
        problem.starts_with(
            "spec.steps[0].dependencies[0]: step \"a\" cannot depend on finally step \"cleanup\""
        ),
        "{problem}"
    );
    assert!(problem.contains("move \"a\" to finally"));
}

#[test]
fn reports_a_cycle_from_its_lowest_index_step() {
    let error = build(
        vec![
            step("start", &[]),
            step("c", &["a"]),
            step("a", &["b", "start"]),
            step("b", &["c"]),
        ],
        vec![],
    )
    .unwrap_err();
    assert!(error.problems.has_cycle());
    assert!(
        only_problem(&error).starts_with(
            "spec.steps[1].dependencies: dependency cycle c -> a -> b -> c; remove one of these dependencies"
        ),
        "{error}"
    );
}

#[test]
fn rejects_a_self_dependency() {
    let error = build(vec![step("a", &["a"])], vec![]).unwrap_err();
    assert_eq!(
        only_problem(&error),
        "spec.steps[0].dependencies[0]: step \"a\" depends on itself; remove this dependency"
    );
}

#[test]
fn reports_a_cycle_among_finally_steps() {
    let error = build(
        vec![step("a", &[])],
        vec![step("x", &["y"]), step("y", &["x"])],
    )
    .unwrap_err();
    assert!(
        only_problem(&error)
            .starts_with("spec.finally[0].dependencies: dependency cycle x -> y -> x"),
        "{error}"
    );
}
