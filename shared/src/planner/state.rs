//! The working state of one planning pass: the status being built and the actions collected.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::transitions::transitions;
use super::{CompiledFlow, JobDeletion, Observed, Plan, PlannedEvent};
use crate::api::reasons;
use crate::api::{FlowPhase, JobFlow, JobFlowStatus, Step, StepPhase, StepStatus};
use crate::dag::Dag;
use crate::limits::MAX_REQUEUE;
use crate::validation::ValidationErrors;

/// The longest message kept on a step.
pub const MAX_STEP_MESSAGE: usize = 1024;
/// The longest message kept on a condition.
pub const MAX_CONDITION_MESSAGE: usize = 4096;

/// Why the flow as a whole must end now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFailure {
    /// The Ready condition's reason.
    pub reason: &'static str,
    /// The Ready condition's message.
    pub message: String,
}

impl FlowFailure {
    /// Whether the flow failed because its spec is invalid (it never started).
    pub fn is_invalid(&self) -> bool {
        matches!(self.reason, reasons::VALIDATION_FAILED | reasons::DAG_CYCLE)
    }
}

/// One planning pass.
pub struct Planning<'a> {
    pub flow: &'a JobFlow,
    pub observed: &'a Observed<'a>,
    pub now: Timestamp,
    /// The phase the flow had when planning started.
    pub old_phase: Option<FlowPhase>,
    pub status: JobFlowStatus,
    pub plan: Plan,
    /// Jobs of this flow by name.
    pub jobs: BTreeMap<&'a str, &'a Job>,
    /// The earliest time something is due.
    pub wake_at: Option<Timestamp>,
    /// Set when the flow must fail for a flow-level reason.
    pub failure: Option<FlowFailure>,
    /// Set while the flow waits for a peer (concurrency).
    pub waiting: Option<String>,
    /// Steps ready to start but held back by `parallelism`.
    pub queued: i32,
}

impl<'a> Planning<'a> {
    pub fn new(flow: &'a JobFlow, observed: &'a Observed<'a>, now: Timestamp) -> Self {
        let mut status = flow.status.clone().unwrap_or_default();
        if is_fixed_after_failing_validation(flow, &status) {
            // The spec that failed validation was corrected: the new generation starts afresh
            // (acknowledged requests stay acknowledged).
            status = JobFlowStatus {
                handled_requests: std::mem::take(&mut status.handled_requests),
                ..JobFlowStatus::default()
            };
        }
        let jobs = observed
            .jobs
            .iter()
            .filter_map(|job| Some((job.metadata.name.as_deref()?, *job)))
            .collect();
        Self {
            flow,
            observed,
            now,
            old_phase: status.phase,
            status,
            plan: Plan::default(),
            jobs,
            wake_at: None,
            failure: None,
            waiting: None,
            queued: 0,
        }
    }

    /// The current time as an API timestamp.
    pub fn now_time(&self) -> Time {
        Time(self.now)
    }

    /// Looks again no later than `at`.
    pub fn wake_at(&mut self, at: Timestamp) {
        if self.wake_at.is_none_or(|current| at < current) {
            self.wake_at = Some(at);
        }
    }

    /// `now + duration`, saturating at the far future.
    pub fn after(&self, duration: Duration) -> Timestamp {
        jiff::SignedDuration::try_from(duration)
            .ok()
            .and_then(|duration| self.now.checked_add(duration).ok())
            .unwrap_or(Timestamp::MAX)
    }

    /// Records a Normal event about the flow.
    pub fn event(&mut self, reason: &'static str, message: String) {
        self.record(false, reason, None, message);
    }

    /// Records a Warning event about the flow.
    pub fn warning(&mut self, reason: &'static str, message: String) {
        self.record(true, reason, None, message);
    }

    /// Records a Normal event about one step.
    pub fn step_event(&mut self, step: &str, reason: &'static str, message: String) {
        self.record(false, reason, Some(step), message);
    }

    /// Records a Warning event about one step.
    pub fn step_warning(&mut self, step: &str, reason: &'static str, message: String) {
        self.record(true, reason, Some(step), message);
    }

    fn record(&mut self, warning: bool, reason: &'static str, step: Option<&str>, message: String) {
        let step = step.map(str::to_owned);
        self.plan.events.push(PlannedEvent {
            warning,
            reason,
            step,
            message,
        });
    }

    /// Deletes a Job unless it is already being deleted.
    pub fn delete_job(&mut self, name: &str, reason: &'static str) {
        let already = self
            .jobs
            .get(name)
            .is_some_and(|job| job.metadata.deletion_timestamp.is_some());
        if !already
            && !self
                .plan
                .delete_jobs
                .iter()
                .any(|deletion| deletion.name == name)
        {
            self.plan.delete_jobs.push(JobDeletion {
                name: name.to_owned(),
                reason,
            });
        }
    }

    /// Lines `status.steps` up with the DAG: one entry per step, in declaration order, keeping
    /// what is known of each step by name.
    pub fn align_steps(&mut self, dag: &Dag) {
        // After the first pass the entries already line up: keep them where they are.
        let steps = &self.status.steps;
        if steps.len() == dag.len()
            && steps
                .iter()
                .enumerate()
                .all(|(i, step)| step.name == dag.name(i))
        {
            return;
        }
        let mut known: BTreeMap<String, StepStatus> = std::mem::take(&mut self.status.steps)
            .into_iter()
            .map(|step| (step.name.clone(), step))
            .collect();
        self.status.steps = (0..dag.len())
            .map(|index| {
                let name = dag.name(index);
                known.remove(name).unwrap_or_else(|| StepStatus {
                    name: name.to_owned(),
                    ..StepStatus::default()
                })
            })
            .collect();
    }

    /// The spec of step `index` (regular steps, then finally steps).
    pub fn spec_step(&self, index: usize) -> &'a Step {
        let regular = &self.flow.spec.steps;
        if index < regular.len() {
            &regular[index]
        } else {
            &self.flow.spec.finally[index - regular.len()]
        }
    }

    /// Ends a step in `phase` (Succeeded, Failed or Skipped) with a reason and message.
    pub fn end_step(&mut self, index: usize, phase: StepPhase, reason: &str, message: String) {
        let now = self.now_time();
        let step = &mut self.status.steps[index];
        step.phase = phase;
        step.reason = Some(reason.to_owned());
        step.message = Some(cut(message, MAX_STEP_MESSAGE));
        step.next_attempt_time = None;
        step.completion_time.get_or_insert(now);
    }

    /// Whether `index` failed in a way that blocks its dependents and fails the flow.
    pub fn is_blocking_failure(&self, index: usize) -> bool {
        self.status.steps[index].phase == StepPhase::Failed
            && !self.spec_step(index).continue_on_failure
    }

    /// The first regular step whose failure blocks the flow, if any.
    pub fn first_blocking_failure(&self, compiled: &CompiledFlow) -> Option<usize> {
        (0..compiled.dag.regular_count()).find(|index| self.is_blocking_failure(*index))
    }

    /// Fails the flow because it is invalid; no step runs.
    pub fn fail_invalid(&mut self, errors: &ValidationErrors) {
        let reason = if errors.has_cycle() {
            reasons::DAG_CYCLE
        } else {
            reasons::VALIDATION_FAILED
        };
        let message = errors
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        self.failure = Some(FlowFailure {
            reason,
            message: cut(message, MAX_CONDITION_MESSAGE),
        });
    }

    /// Completes the plan: flow phase, conditions, progress, TTL and when to look again.
    pub fn finish(mut self) -> Plan {
        self.settle_flow();
        self.keep_status_in_budget();
        if let Some(at) = self.wake_at {
            let wait = self.now.duration_until(at).unsigned_abs();
            // Round up so the next pass never comes a moment too early.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            // Something due days away is still looked at hourly: no timer is ever set for
            // years, and a change nobody announced is noticed within the hour.
            self.plan.requeue_after = Some(Duration::from_secs(seconds.max(1)).min(MAX_REQUEUE));
        }
        let before = self.flow.status.clone().unwrap_or_default();
        self.plan.transitions = transitions(&before, &self.status, self.now);
        self.plan.status = self.status;
        self.plan
    }
}

/// Whether `status` is that of an earlier generation of `flow` that failed without starting
/// (only an invalid flow does) and the spec has changed since.
fn is_fixed_after_failing_validation(flow: &JobFlow, status: &JobFlowStatus) -> bool {
    status.start_time.is_none()
        && status.phase == Some(FlowPhase::Failed)
        && status.observed_generation.is_some()
        && status.observed_generation != flow.metadata.generation
}

/// Cuts `message` to at most `max` bytes on a character boundary, marking the cut.
pub fn cut(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let marker = " …";
    let keep = (0..=max - marker.len())
        .rev()
        .find(|index| message.is_char_boundary(*index))
        .unwrap_or(0);
    message.truncate(keep);
    message.push_str(marker);
    message
}
