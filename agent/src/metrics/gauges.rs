//! Snapshot gauges recomputed from the cached flows at each scrape: nothing is counted up and
//! down, so nothing drifts.

use std::collections::BTreeMap;

use jobflow::api::{FlowPhase, JobFlow, StepPhase};
use jobflow::planner;

/// The recomputed values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowGauges {
    /// Flows by (namespace, phase); flows without a status yet count as `Unknown`.
    pub flows: BTreeMap<(String, &'static str), i64>,
    /// Steps of all flows by phase.
    pub steps: BTreeMap<&'static str, i64>,
    /// Steps waiting for approval.
    pub approvals_pending: i64,
    /// Pending steps of running flows that their dependencies let start
    /// ([`planner::ready_steps`]).
    pub ready_steps: i64,
}

/// Computes the gauges over `flows`.
pub fn compute_gauges<'a>(flows: impl IntoIterator<Item = &'a JobFlow>) -> FlowGauges {
    let mut g = FlowGauges::default();
    for flow in flows {
        let status = flow.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        let namespace = flow.metadata.namespace.clone().unwrap_or_default();
        *g.flows
            .entry((namespace, phase.map_or("Unknown", FlowPhase::as_str)))
            .or_default() += 1;
        let Some(status) = status else { continue };
        for step in &status.steps {
            *g.steps.entry(step.phase.as_str()).or_default() += 1;
            if step.phase == StepPhase::PendingApproval {
                g.approvals_pending += 1;
            }
        }
        if phase == Some(FlowPhase::Running) {
            g.ready_steps +=
                i64::try_from(planner::ready_steps(&flow.spec, status)).unwrap_or(i64::MAX);
        }
    }
    g
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jobflow::api::{JobFlowSpec, JobFlowStatus, Step, StepStatus};

    fn flow(ns: &str, phase: Option<FlowPhase>, steps: &[(&str, &[&str], StepPhase)]) -> JobFlow {
        let mut f = JobFlow::new(
            "f",
            JobFlowSpec {
                steps: steps
                    .iter()
                    .map(|(n, deps, _)| Step {
                        name: (*n).to_owned(),
                        dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
                        ..Step::default()
                    })
                    .collect(),
                ..JobFlowSpec::default()
            },
        );
        f.metadata.namespace = Some(ns.to_owned());
        f.status = phase.map(|p| JobFlowStatus {
            phase: Some(p),
            steps: steps
                .iter()
                .map(|(n, _, sp)| StepStatus {
                    name: (*n).to_owned(),
                    phase: *sp,
                    ..StepStatus::default()
                })
                .collect(),
            ..JobFlowStatus::default()
        });
        f
    }

    #[test]
    fn counts_flows_steps_approvals_and_ready_steps() {
        use StepPhase::{Pending, PendingApproval, Running, Succeeded};
        let flows = [
            flow(
                "a",
                Some(FlowPhase::Running),
                &[
                    ("x", &[], Succeeded),
                    ("y", &["x"], Pending),
                    ("z", &["y"], Pending),
                ],
            ),
            flow(
                "a",
                Some(FlowPhase::Paused),
                &[("gate", &[], PendingApproval)],
            ),
            flow("b", Some(FlowPhase::Running), &[("r", &[], Running)]),
            flow("b", None, &[("n", &[], Pending)]),
        ];
        let g = compute_gauges(&flows);
        assert_eq!(g.flows.get(&("a".to_owned(), "Running")), Some(&1));
        assert_eq!(g.flows.get(&("a".to_owned(), "Paused")), Some(&1));
        assert_eq!(g.flows.get(&("b".to_owned(), "Unknown")), Some(&1));
        assert_eq!(g.steps.get("Pending"), Some(&2));
        assert_eq!(g.steps.get("PendingApproval"), Some(&1));
        assert_eq!(g.approvals_pending, 1);
        assert_eq!(g.ready_steps, 1, "only y: z waits for y");
    }

    #[test]
    fn a_step_behind_a_failed_dependency_is_not_ready() {
        let f = flow(
            "a",
            Some(FlowPhase::Running),
            &[
                ("x", &[], StepPhase::Failed),
                ("y", &["x"], StepPhase::Pending),
            ],
        );
        assert_eq!(
            compute_gauges([&f]).ready_steps,
            0,
            "y is skipped, never started"
        );
    }

    #[test]
    fn finally_steps_are_ready_once_every_regular_step_ended() {
        let mut f = flow(
            "a",
            Some(FlowPhase::Running),
            &[("x", &[], StepPhase::Succeeded)],
        );
        f.spec.finally.push(Step {
            name: "cleanup".to_owned(),
            ..Step::default()
        });
        if let Some(s) = f.status.as_mut() {
            s.steps.push(StepStatus {
                name: "cleanup".to_owned(),
                ..StepStatus::default()
            });
        }
        assert_eq!(compute_gauges([&f]).ready_steps, 1);
    }
}
