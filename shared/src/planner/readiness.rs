//! When a pending step may start: the one rule the planner schedules by and the agent's
//! ready-steps gauge counts by.

use std::collections::HashMap;

use crate::api::reasons;
use crate::api::{JobFlowSpec, JobFlowStatus, StepPhase, StepStatus};

/// Whether a pending step can start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Every dependency ended as allowed.
    Ready,
    /// A dependency (or, for a finally step, a regular step) has not ended yet.
    Waiting,
    /// A dependency ended in a way that blocks this step; the message names the root cause.
    Blocked(String),
}

/// The readiness of a step from its dependencies, each as its status and whether it has
/// `continueOnFailure`. `waits_for_regular_steps` is true for a finally step while a regular
/// step has not ended. A dependency that succeeded, was skipped by its `when`, or failed with
/// `continueOnFailure` lets the step run; any other failure or skip blocks it.
pub(super) fn readiness<'a>(
    waits_for_regular_steps: bool,
    dependencies: impl IntoIterator<Item = (&'a StepStatus, bool)>,
) -> Readiness {
    if waits_for_regular_steps {
        return Readiness::Waiting;
    }
    let mut waiting = false;
    for (status, continue_on_failure) in dependencies {
        match status.phase {
            StepPhase::Succeeded => {}
            StepPhase::Skipped if status.reason.as_deref() == Some(reasons::WHEN_FALSE) => {}
            StepPhase::Failed if continue_on_failure => {}
            StepPhase::Failed => {
                return Readiness::Blocked(format!("not run: dependency {} failed", status.name));
            }
            StepPhase::Skipped => {
                let root = status.message.clone().unwrap_or_default();
                return Readiness::Blocked(if root.starts_with("not run:") {
                    root
                } else {
                    format!("not run: dependency {} was skipped ({root})", status.name)
                });
            }
            StepPhase::Pending | StepPhase::Running | StepPhase::PendingApproval => {
                waiting = true;
            }
        }
    }
    if waiting {
        Readiness::Waiting
    } else {
        Readiness::Ready
    }
}

/// How many Pending steps of a flow may start by the rule the scheduler uses (this module's
/// `readiness`), from its spec and status alone (no compiled DAG, no step templates). A step whose own status or a dependency's is missing
/// is not counted. Neither are backoff waits, `when`, failFast, suspension nor parallelism:
/// the count is of steps whose dependencies allow them to run.
pub fn ready_steps(spec: &JobFlowSpec, status: &JobFlowStatus) -> usize {
    let by_name: HashMap<&str, &StepStatus> = status
        .steps
        .iter()
        .map(|step| (step.name.as_str(), step))
        .collect();
    let continues: HashMap<&str, bool> = spec
        .all_steps()
        .map(|step| (step.name.as_str(), step.continue_on_failure))
        .collect();
    let ended = |name: &str| by_name.get(name).is_some_and(|s| s.phase.is_terminal());
    let regular_ended = spec.steps.iter().all(|step| ended(&step.name));
    let finally = spec.finally.iter().map(|step| (step, !regular_ended));
    spec.steps
        .iter()
        .map(|step| (step, false))
        .chain(finally)
        .filter(|(step, waits)| {
            if by_name.get(step.name.as_str()).map(|s| s.phase) != Some(StepPhase::Pending) {
                return false;
            }
            let dependencies: Option<Vec<(&StepStatus, bool)>> = step
                .dependencies
                .iter()
                .map(|name| Some((*by_name.get(name.as_str())?, *continues.get(name.as_str())?)))
                .collect();
            dependencies
                .is_some_and(|dependencies| readiness(*waits, dependencies) == Readiness::Ready)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Step;

    fn spec(steps: &[(&str, &[&str], bool)], finally: &[&str]) -> JobFlowSpec {
        let step = |name: &str, dependencies: &[&str], continue_on_failure| Step {
            name: name.to_owned(),
            dependencies: dependencies.iter().map(|&d| d.to_owned()).collect(),
            continue_on_failure,
            ..Step::default()
        };
        JobFlowSpec {
            steps: steps.iter().map(|&(n, d, c)| step(n, d, c)).collect(),
            finally: finally.iter().map(|&n| step(n, &[], false)).collect(),
            ..JobFlowSpec::default()
        }
    }

    fn status(steps: &[(&str, StepPhase, Option<&str>)]) -> JobFlowStatus {
        JobFlowStatus {
            steps: steps
                .iter()
                .map(|&(name, phase, reason)| StepStatus {
                    name: name.to_owned(),
                    phase,
                    reason: reason.map(str::to_owned),
                    ..StepStatus::default()
                })
                .collect(),
            ..JobFlowStatus::default()
        }
    }

    #[test]
    fn a_failed_dependency_blocks_unless_it_continues_on_failure() {
        use StepPhase::{Failed, Pending};
        let flow = status(&[("x", Failed, None), ("y", Pending, None)]);
        assert_eq!(
            ready_steps(
                &spec(&[("x", &[], false), ("y", &["x"], false)], &[]),
                &flow
            ),
            0
        );
        assert_eq!(
            ready_steps(&spec(&[("x", &[], true), ("y", &["x"], false)], &[]), &flow),
            1
        );
    }

    #[test]
    fn only_a_when_false_skip_lets_dependents_run() {
        use StepPhase::{Pending, Skipped};
        let flow = spec(&[("x", &[], false), ("y", &["x"], false)], &[]);
        let when_false = status(&[
            ("x", Skipped, Some(reasons::WHEN_FALSE)),
            ("y", Pending, None),
        ]);
        assert_eq!(ready_steps(&flow, &when_false), 1);
        let upstream = status(&[
            ("x", Skipped, Some(reasons::UPSTREAM_FAILED)),
            ("y", Pending, None),
        ]);
        assert_eq!(ready_steps(&flow, &upstream), 0);
    }

    #[test]
    fn finally_steps_wait_for_every_regular_step() {
        use StepPhase::{Failed, Pending, Running};
        let flow = spec(&[("a", &[], false), ("b", &[], false)], &["cleanup"]);
        let running = status(&[
            ("a", Failed, None),
            ("b", Running, None),
            ("cleanup", Pending, None),
        ]);
        assert_eq!(ready_steps(&flow, &running), 0);
        let ended = status(&[
            ("a", Failed, None),
            ("b", Failed, None),
            ("cleanup", Pending, None),
        ]);
        assert_eq!(ready_steps(&flow, &ended), 1);
    }

    #[test]
    fn a_step_without_a_status_is_not_counted() {
        let flow = spec(&[("x", &[], false), ("y", &["x"], false)], &[]);
        assert_eq!(
            ready_steps(&flow, &status(&[("y", StepPhase::Pending, None)])),
            0
        );
    }
}
