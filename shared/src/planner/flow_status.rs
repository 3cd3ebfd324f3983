//! The flow-level status: phase, the Ready condition, progress, TTL and flow events.

use jiff::SignedDuration;

use super::state::{FlowFailure, MAX_CONDITION_MESSAGE, Planning, cut};
use crate::api::conditions::{READY, STATUS_TRIMMED};
use crate::api::reasons;
use crate::api::{Condition, FlowPhase, Progress, StepPhase};

impl Planning<'_> {
    /// Settles the flow's phase, Ready condition, progress, TTL and events from its steps.
    pub fn settle_flow(&mut self) {
        if self.flow.metadata.deletion_timestamp.is_some() {
            return;
        }
        self.status.observed_generation = self.flow.metadata.generation;
        let finished_earlier = self.status.phase.filter(|phase| phase.is_terminal());
        if let (Some(phase), None) = (finished_earlier, &self.failure) {
            // Nothing changes a finished flow but a retry request, which reopened it already.
            self.status.progress = Some(self.progress());
            self.expire(phase);
            return;
        }
        let (phase, reason, message) = self.flow_phase();
        if phase.is_terminal() {
            let now = self.now_time();
            self.status.completion_time.get_or_insert(now.clone());
            // An invalid flow never started: without a startTime its spec may still be fixed
            // (the immutability rule exempts it) and the corrected generation runs.
            if !self.failure.as_ref().is_some_and(FlowFailure::is_invalid) {
                self.status.start_time.get_or_insert(now);
            }
        }
        self.status.phase = Some(phase);
        self.set_ready(phase == FlowPhase::Succeeded, reason, message);
        self.status.progress = Some(self.progress());
        self.flow_events(phase);
        self.expire(phase);
    }

    /// The phase the flow is in after this pass, with the Ready condition's reason and message.
    fn flow_phase(&self) -> (FlowPhase, &'static str, String) {
        if let Some(FlowFailure { reason, message }) = &self.failure {
            return (FlowPhase::Failed, reason, message.clone());
        }
        if let Some(message) = &self.waiting {
            return (
                FlowPhase::Pending,
                reasons::WAITING_FOR_CONCURRENCY,
                message.clone(),
            );
        }
        let steps = &self.status.steps;
        let count = |phase: StepPhase| steps.iter().filter(|step| step.phase == phase).count();
        let total = steps.len();
        if !steps.is_empty() && steps.iter().all(|step| step.phase.is_terminal()) {
            if let Some(message) = self.stopped_step_message() {
                return (FlowPhase::Failed, reasons::STOPPED, message);
            }
            let blocking = steps
                .iter()
                .enumerate()
                .find(|(index, _)| self.is_blocking_failure(*index));
            return match blocking {
                Some((_, step)) => {
                    let reason = if step.reason.as_deref() == Some(reasons::BACKOFF_LIMIT_EXCEEDED)
                    {
                        reasons::BACKOFF_LIMIT_EXCEEDED
                    } else {
                        reasons::FLOW_FAILED
                    };
                    let detail = step.message.clone().unwrap_or_default();
                    (
                        FlowPhase::Failed,
                        reason,
                        format!("step {} failed: {detail}", step.name),
                    )
                }
                None => (
                    FlowPhase::Succeeded,
                    reasons::FLOW_SUCCEEDED,
                    format!(
                        "{} of {total} steps succeeded, {} skipped, {} failed without blocking",
                        count(StepPhase::Succeeded),
                        count(StepPhase::Skipped),
                        count(StepPhase::Failed)
                    ),
                ),
            };
        }
        if self.flow.spec.suspend == Some(true) {
            return (
                FlowPhase::Suspended,
                reasons::FLOW_SUSPENDED,
                "spec.suspend is true: no new step starts".into(),
            );
        }
        let waiting: Vec<&str> = steps
            .iter()
            .filter(|step| step.phase == StepPhase::PendingApproval)
            .map(|step| step.name.as_str())
            .collect();
        if !waiting.is_empty() && count(StepPhase::Running) == 0 {
            return (
                FlowPhase::Paused,
                reasons::FLOW_PAUSED,
                format!("waiting for approval of {}", waiting.join(", ")),
            );
        }
        let done = steps.iter().filter(|step| step.phase.is_terminal()).count();
        (
            FlowPhase::Running,
            reasons::FLOW_RUNNING,
            format!(
                "{done} of {total} steps done, {} running",
                count(StepPhase::Running)
            ),
        )
    }

    /// Sets the Ready condition, keeping `lastTransitionTime` unless its status flips.
    fn set_ready(&mut self, ready: bool, reason: &'static str, message: String) {
        let status = if ready { "True" } else { "False" };
        let message = cut(message, MAX_CONDITION_MESSAGE);
        let generation = self.flow.metadata.generation;
        let now = self.now_time();
        self.status
            .conditions
            .retain(|condition| condition.type_ == READY || condition.type_ == STATUS_TRIMMED);
        match self
            .status
            .conditions
            .iter_mut()
            .find(|condition| condition.type_ == READY)
        {
            Some(condition) => {
                if condition.status != status {
                    condition.last_transition_time = now;
                }
                condition.status = status.into();
                condition.reason = reason.into();
                condition.message = message;
                condition.observed_generation = generation;
            }
            None => self.status.conditions.push(Condition {
                type_: READY.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }

    fn progress(&self) -> Progress {
        let steps = &self.status.steps;
        let count = |phase: StepPhase| {
            i32::try_from(steps.iter().filter(|step| step.phase == phase).count())
                .unwrap_or(i32::MAX)
        };
        let total = i32::try_from(steps.len()).unwrap_or(i32::MAX);
        let completed =
            count(StepPhase::Succeeded) + count(StepPhase::Failed) + count(StepPhase::Skipped);
        Progress {
            completed_steps: completed,
            total_steps: total,
            successful_steps: count(StepPhase::Succeeded),
            failed_steps: count(StepPhase::Failed),
            skipped_steps: count(StepPhase::Skipped),
            running_steps: count(StepPhase::Running),
            summary: format!("{completed}/{total}"),
        }
    }

    fn flow_events(&mut self, phase: FlowPhase) {
        if self.old_phase == Some(phase) {
            return;
        }
        let message = self
            .status
            .conditions
            .first()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        match (self.old_phase, phase) {
            (_, FlowPhase::Succeeded) => self.event(reasons::FLOW_SUCCEEDED, message),
            (_, FlowPhase::Failed) => self.warning(reasons::FLOW_FAILED, message),
            (_, FlowPhase::Suspended) => self.event(reasons::FLOW_SUSPENDED, message),
            (_, FlowPhase::Paused) => self.event(reasons::FLOW_PAUSED, message),
            (Some(FlowPhase::Suspended | FlowPhase::Paused), FlowPhase::Running) => {
                self.event(reasons::FLOW_RESUMED, message);
            }
            (None | Some(FlowPhase::Pending), FlowPhase::Running) => {
                self.event(reasons::FLOW_STARTED, message);
            }
            (_, FlowPhase::Pending) => self.event(reasons::FLOW_WAITING, message),
            _ => {}
        }
    }

    /// A finished flow is deleted `ttlSecondsAfterFinished` after it finished.
    fn expire(&mut self, phase: FlowPhase) {
        if !phase.is_terminal() {
            return;
        }
        let Some(finished) = self.status.completion_time.as_ref().map(|time| time.0) else {
            return;
        };
        let ttl = SignedDuration::from_secs(
            self.flow
                .spec
                .execution_policy
                .ttl_seconds_after_finished
                .max(0),
        );
        let expires = finished.checked_add(ttl).unwrap_or(jiff::Timestamp::MAX);
        if self.now >= expires {
            self.plan.delete_flow = true;
        } else {
            self.wake_at(expires);
        }
    }
}
