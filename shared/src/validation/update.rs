//! Updates: once a flow has started its spec is fixed, except `spec.suspend`.

use super::problems::Problems;
use crate::api::{JobFlow, JobFlowSpec};

/// Reports each top-level spec field other than `suspend` that differs, when `old` has started.
/// Returns the fields that differ, started or not.
pub(super) fn check_update(
    old: &JobFlow,
    new: &JobFlow,
    problems: &mut Problems,
) -> Vec<&'static str> {
    let changed = changed_fields(&old.spec, &new.spec);
    let started = old
        .status
        .as_ref()
        .is_some_and(|status| status.start_time.is_some());
    if !started {
        return changed;
    }
    for field in &changed {
        problems.invalid(
            format!("spec.{field}"),
            "cannot change once the flow has started (status.startTime is set); only spec.suspend may change, so create a new JobFlow to run a different spec",
        );
    }
    changed
}

/// The JSON names of the top-level fields, other than `suspend`, that differ.
fn changed_fields(old: &JobFlowSpec, new: &JobFlowSpec) -> Vec<&'static str> {
    // Destructured so that a new field cannot be forgotten here.
    let JobFlowSpec {
        steps,
        finally,
        execution_policy,
        resource_templates,
        suspend: _,
    } = old;
    let mut changed = Vec::new();
    if *steps != new.steps {
        changed.push("steps");
    }
    if *finally != new.finally {
        changed.push("finally");
    }
    if *execution_policy != new.execution_policy {
        changed.push("executionPolicy");
    }
    if *resource_templates != new.resource_templates {
        changed.push("resourceTemplates");
    }
    changed
}
