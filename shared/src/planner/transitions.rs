//! The transitions a plan decided, for the agent's counters and histograms: what changed
//! between the status the flow had and the status the plan gives it (the flow's phase, steps
//! that ended, new attempts and their backoff, timeouts, approvals). The planner records them
//! in [`super::Plan::transitions`]; the agent counts them once the status is written and never
//! works them out again.

use std::collections::BTreeMap;

use crate::api::reasons;
use crate::api::{FlowPhase, JobFlowStatus, StepPhase, StepStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The longest step reason used as a label as is; longer ones count as `Other`.
const MAX_REASON_LEN: usize = 48;

/// The transitions of one plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transitions {
    /// The flow's phase change, `None` written as `"None"`.
    pub flow_transition: Option<(&'static str, &'static str)>,
    /// Steps that reached Succeeded, Failed or Skipped: (result, seconds run), for steps that ran.
    pub step_durations: Vec<(&'static str, f64)>,
    /// The reasons of steps that reached Failed (bounded: CamelCase or `Other`).
    pub step_failures: Vec<String>,
    /// New attempts made.
    pub retries: u64,
    /// Seconds until each newly scheduled retry.
    pub retry_backoffs: Vec<f64>,
    /// Attempts that newly ended with reason `Timeout`.
    pub timeouts: u64,
    /// Seconds each newly approved Manual step waited.
    pub approval_latencies: Vec<f64>,
}

/// The transitions from status `old` to status `new` at `now`.
pub fn transitions(old: &JobFlowStatus, new: &JobFlowStatus, now: Timestamp) -> Transitions {
    let mut delta = Transitions {
        flow_transition: (old.phase != new.phase)
            .then(|| (phase_label(old.phase), phase_label(new.phase))),
        ..Transitions::default()
    };
    let before: BTreeMap<&str, &StepStatus> =
        old.steps.iter().map(|s| (s.name.as_str(), s)).collect();
    for step in &new.steps {
        let was = before.get(step.name.as_str()).copied();
        step_delta(was, step, now, &mut delta);
    }
    delta
}

fn step_delta(
    was: Option<&StepStatus>,
    now_step: &StepStatus,
    now: Timestamp,
    delta: &mut Transitions,
) {
    let was_phase = was.map(|s| s.phase);
    let phase = now_step.phase;

    if phase.is_terminal() && !was_phase.is_some_and(StepPhase::is_terminal) {
        if let Some(start) = &now_step.start_time {
            let end = now_step.completion_time.as_ref().map_or(now, |t| t.0);
            delta
                .step_durations
                .push((phase.as_str(), seconds_between(start.0, end)));
        }
        if phase == StepPhase::Failed {
            delta
                .step_failures
                .push(reason_label(now_step.reason.as_deref()));
        }
    }

    let old_retries = was.map_or(0, |s| s.retry_count);
    if now_step.retry_count > old_retries {
        delta.retries += u64::try_from(now_step.retry_count - old_retries).unwrap_or(0);
    }
    if let Some(next) = &now_step.next_attempt_time
        && was.and_then(|s| s.next_attempt_time.as_ref()) != Some(next)
    {
        delta.retry_backoffs.push(seconds_between(now, next.0));
    }

    let was_timeout = was.is_some_and(|s| {
        s.reason.as_deref() == Some(reasons::TIMEOUT) && s.attempt == now_step.attempt
    });
    if now_step.reason.as_deref() == Some(reasons::TIMEOUT) && !was_timeout {
        delta.timeouts += 1;
    }

    let approved = was_phase == Some(StepPhase::PendingApproval)
        && !matches!(phase, StepPhase::PendingApproval | StepPhase::Skipped);
    if approved && let Some(Time(waiting_since)) = was.and_then(|s| s.start_time.as_ref()) {
        delta
            .approval_latencies
            .push(seconds_between(*waiting_since, now));
    }
}

/// Seconds from `from` to `to`, never negative.
fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

fn phase_label(phase: Option<FlowPhase>) -> &'static str {
    phase.map_or("None", FlowPhase::as_str)
}

/// A step reason as a label: CamelCase reasons as they are, anything else `Other`, so a
/// free-text reason can never blow up the series count.
fn reason_label(reason: Option<&str>) -> String {
    match reason {
        None | Some("") => "Failed".to_owned(),
        Some(r) if r.len() <= MAX_REASON_LEN && r.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            r.to_owned()
        }
        Some(_) => "Other".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn step(name: &str, phase: StepPhase) -> StepStatus {
        StepStatus {
            name: name.to_owned(),
            phase,
            attempt: 1,
            ..StepStatus::default()
        }
    }

    fn status(phase: Option<FlowPhase>, steps: Vec<StepStatus>) -> JobFlowStatus {
        JobFlowStatus {
            phase,
            steps,
            ..JobFlowStatus::default()
        }
    }

    #[test]
    fn no_change_observes_nothing() {
        let s = status(
            Some(FlowPhase::Running),
            vec![step("a", StepPhase::Running)],
        );
        assert_eq!(transitions(&s, &s, at(0)), Transitions::default());
    }

    #[test]
    fn flow_phase_transition_from_nothing() {
        let old = JobFlowStatus::default();
        let new = status(Some(FlowPhase::Running), vec![]);
        assert_eq!(
            transitions(&old, &new, at(0)).flow_transition,
            Some(("None", "Running"))
        );
    }

    #[test]
    fn finished_steps_report_duration_and_result() {
        let mut running = step("a", StepPhase::Running);
        running.start_time = Some(Time(at(0)));
        let mut done = running.clone();
        done.phase = StepPhase::Succeeded;
        done.completion_time = Some(Time(at(42)));
        let mut skipped_new = step("b", StepPhase::Skipped);
        skipped_new.attempt = 0;
        let old = status(
            Some(FlowPhase::Running),
            vec![running, step("b", StepPhase::Pending)],
        );
        let new = status(Some(FlowPhase::Succeeded), vec![done.clone(), skipped_new]);
        let d = transitions(&old, &new, at(50));
        assert_eq!(d.step_durations, vec![("Succeeded", 42.0)]);
        assert_eq!(d.flow_transition, Some(("Running", "Succeeded")));
        assert!(d.step_failures.is_empty());
        // Written again unchanged: nothing more is observed.
        assert!(transitions(&new, &new, at(60)).step_durations.is_empty());
    }

    #[test]
    fn failures_count_by_bounded_reason() {
        let mut failed = step("a", StepPhase::Failed);
        failed.reason = Some(reasons::BACKOFF_LIMIT_EXCEEDED.to_owned());
        let mut odd = step("b", StepPhase::Failed);
        odd.reason = Some("the pod said: no space left on device".to_owned());
        let plain = step("c", StepPhase::Failed);
        let old = status(
            None,
            vec![
                step("a", StepPhase::Running),
                step("b", StepPhase::Running),
                step("c", StepPhase::Running),
            ],
        );
        let d = transitions(&old, &status(None, vec![failed, odd, plain]), at(0));
        assert_eq!(
            d.step_failures,
            [reasons::BACKOFF_LIMIT_EXCEEDED, "Other", "Failed"]
        );
    }

    #[test]
    fn retries_and_their_backoff() {
        let mut old = step("a", StepPhase::Running);
        old.retry_count = 1;
        let mut new = step("a", StepPhase::Pending);
        new.retry_count = 2;
        new.next_attempt_time = Some(Time(at(30)));
        let d = transitions(
            &status(None, vec![old]),
            &status(None, vec![new.clone()]),
            at(10),
        );
        assert_eq!(d.retries, 1);
        assert_eq!(d.retry_backoffs, vec![20.0]);
        // The same backoff written again is not observed twice.
        let again = transitions(
            &status(None, vec![new.clone()]),
            &status(None, vec![new]),
            at(11),
        );
        assert_eq!((again.retries, again.retry_backoffs.len()), (0, 0));
    }

    #[test]
    fn timeouts_count_once_per_attempt() {
        let mut timed_out = step("a", StepPhase::Pending);
        timed_out.reason = Some(reasons::TIMEOUT.to_owned());
        let old = status(None, vec![step("a", StepPhase::Running)]);
        let new = status(None, vec![timed_out.clone()]);
        assert_eq!(transitions(&old, &new, at(0)).timeouts, 1);
        assert_eq!(transitions(&new, &new, at(1)).timeouts, 0);
        let mut second = timed_out.clone();
        second.attempt = 2;
        assert_eq!(
            transitions(&new, &status(None, vec![second]), at(2)).timeouts,
            1
        );
    }

    #[test]
    fn approval_latency_from_the_wait_start() {
        let mut waiting = step("gate", StepPhase::PendingApproval);
        waiting.start_time = Some(Time(at(0)));
        let mut approved = waiting.clone();
        approved.phase = StepPhase::Succeeded;
        approved.completion_time = Some(Time(at(90)));
        let d = transitions(
            &status(None, vec![waiting]),
            &status(None, vec![approved]),
            at(90),
        );
        assert_eq!(d.approval_latencies, vec![90.0]);
    }

    #[test]
    fn new_steps_without_history_count_too() {
        let mut failed = step("a", StepPhase::Failed);
        failed.retry_count = 2;
        let d = transitions(
            &JobFlowStatus::default(),
            &status(None, vec![failed]),
            at(0),
        );
        assert_eq!((d.retries, d.step_failures.len()), (2, 1));
    }
}
