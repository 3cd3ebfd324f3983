//! Validation of a `JobFlow`: every problem at once, each with a field path and a fix.
//!
//! The one entry point for the webhook, the agent and the kubectl plugin: [`validate`] for a
//! flow, [`validate_update`] for a change to one.

mod conditions;
mod duration;
mod execution_policy;
mod graph;
mod job_template;
mod metadata;
mod names;
mod parameters;
mod pod_failure;
mod problems;
mod references;
mod resources;
mod step;
mod update;

#[cfg(test)]
mod graph_tests;
#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;

pub use duration::{ParseDurationError, parse_duration};
pub use graph::BuildDagError;
pub use problems::{FieldProblem, ProblemKind, ValidationErrors, ValidationReport};

use crate::api::{JobFlow, JobFlowSpec, Step};
use crate::dag::Ordered;
use crate::when::When;
use problems::Problems;

/// Checks a flow and returns every problem found.
pub fn validate(flow: &JobFlow) -> Result<(), ValidationErrors> {
    report(flow).into_result()
}

/// Checks a flow and returns every problem and every warning found.
pub fn report(flow: &JobFlow) -> ValidationReport {
    let mut problems = Problems::default();
    check_flow(flow, &mut problems);
    problems.into_report()
}

/// What checking a valid flow resolved on the way, for the planner to keep rather than
/// resolve again: its step graph ordered, and each step's parsed `when`, by DAG index.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) ordered: Ordered,
    pub(crate) whens: Vec<Option<When>>,
}

/// [`validate`], keeping what the checks resolved.
pub(crate) fn check(flow: &JobFlow) -> Result<Checked, ValidationErrors> {
    let mut problems = Problems::default();
    let checked = check_flow(flow, &mut problems);
    problems.into_report().into_result().map(|()| checked)
}

/// Checks an update: once `old` has started (`status.startTime` is set) its spec may change
/// only in `spec.suspend`, and a changed spec must be valid. A spec that changed only in
/// `suspend` (or not at all) is not checked again, so flows accepted by an older release can
/// still be suspended, labelled or have their status written.
pub fn validate_update(old: &JobFlow, new: &JobFlow) -> Result<(), ValidationErrors> {
    report_update(old, new).into_result()
}

/// [`validate_update`] with the warnings of a changed spec.
pub fn report_update(old: &JobFlow, new: &JobFlow) -> ValidationReport {
    let mut problems = Problems::default();
    let changed = update::check_update(old, new, &mut problems);
    if !changed.is_empty() {
        check_spec(&new.spec, &mut problems);
    }
    problems.into_report()
}

/// A step with the path of its entry, e.g. `spec.finally[1]`.
struct LocatedStep<'a> {
    path: String,
    step: &'a Step,
    finally: bool,
}

/// Checks the flow's name, then its spec.
fn check_flow(flow: &JobFlow, problems: &mut Problems) -> Checked {
    metadata::check_flow_name(flow.metadata.name.as_deref(), problems);
    check_spec(&flow.spec, problems)
}

fn check_spec(spec: &JobFlowSpec, problems: &mut Problems) -> Checked {
    if spec.steps.is_empty() {
        problems.invalid(
            "spec.steps",
            "a flow needs at least one step; add one under spec.steps",
        );
    }
    let steps = locate_steps(spec);
    let (index_by_name, ordered) = graph::check_graph(&steps, problems);
    // One pass over the steps runs every per-step check while the step's template is in the
    // cache (a flow of thousands of steps does not fit); each check reports into its own list
    // so the problems keep their order: all conditions, all references, all steps' fields,
    // the execution policy, then all pod failure policies.
    let mut conditions = Problems::default();
    let mut references = Problems::default();
    let mut fields = Problems::default();
    let mut pod_failures = Problems::default();
    let mut whens = Vec::with_capacity(steps.len());
    for located in &steps {
        whens.push(conditions::check_condition(
            located,
            &steps,
            &index_by_name,
            &mut conditions,
        ));
        references::check_references(located, &steps, &index_by_name, &mut references);
        step::check_step(located, &mut fields);
        pod_failure::check_pod_failure_policy(spec, located, &mut pod_failures);
    }
    problems.append(conditions);
    problems.append(references);
    problems.append(fields);
    execution_policy::check_execution_policy(&spec.execution_policy, problems);
    problems.append(pod_failures);
    resources::check_resource_templates(spec.resource_templates.as_ref(), problems);
    Checked { ordered, whens }
}

/// The regular steps then the finally steps, in DAG index order.
fn locate_steps(spec: &JobFlowSpec) -> Vec<LocatedStep<'_>> {
    let regular = spec
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| LocatedStep {
            path: format!("spec.steps[{index}]"),
            step,
            finally: false,
        });
    let finally = spec
        .finally
        .iter()
        .enumerate()
        .map(|(index, step)| LocatedStep {
            path: format!("spec.finally[{index}]"),
            step,
            finally: true,
        });
    regular.chain(finally).collect()
}
