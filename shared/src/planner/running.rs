//! Running steps: their Jobs' verdicts, timeouts, deletions, and retries after a failure.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::CompiledFlow;
use super::backoff::backoff;
use super::job_builder::build_job;
use super::job_outcome::{JobOutcome, job_outcome};
use super::naming::job_name;
use super::outputs::{ReadOutputsError, read_outputs};
use super::state::Planning;
use crate::api::reasons;
use crate::api::{JobRef, StepPhase};

/// How long a succeeded step waits for its pod's termination message to reach the cache.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(30);
/// How often a step waiting for its termination message looks again.
const OUTPUT_POLL: Duration = Duration::from_secs(2);

impl Planning<'_> {
    /// Reads the verdict of every running step's Job and adopts Jobs made before a restart.
    pub fn observe_running(&mut self, compiled: &CompiledFlow) {
        for index in 0..compiled.dag.len() {
            self.adopt_next_attempt(index);
            if self.status.steps[index].phase == StepPhase::Running {
                self.observe_step(index);
            }
        }
    }

    /// A Job for the next attempt exists although status does not know it (the agent stopped
    /// between creating it and writing status): the step is running that attempt.
    fn adopt_next_attempt(&mut self, index: usize) {
        let step = &self.status.steps[index];
        if step.phase != StepPhase::Pending {
            return;
        }
        let attempt = step.attempt.saturating_add(1);
        let name = job_name(self.flow, &step.name, attempt);
        if !self.jobs.contains_key(name.as_str()) {
            return;
        }
        let now = self.now_time();
        let job_ref = Self::job_ref(name);
        let step = &mut self.status.steps[index];
        step.phase = StepPhase::Running;
        step.attempt = attempt;
        step.reason = None;
        step.message = None;
        step.next_attempt_time = None;
        step.start_time.get_or_insert(now);
        step.job_ref = Some(job_ref);
    }

    /// A reference to a Job of this flow (always batch/v1, in the flow's namespace, so only
    /// the name and, once seen, the UID are kept: status stays small).
    pub fn job_ref(name: String) -> JobRef {
        JobRef {
            name,
            ..JobRef::default()
        }
    }

    fn observe_step(&mut self, index: usize) {
        let Some(job_name) = self.status.steps[index]
            .job_ref
            .as_ref()
            .map(|job| job.name.clone())
        else {
            // Running without a Job cannot happen through the planner; start over cleanly.
            self.status.steps[index].phase = StepPhase::Pending;
            return;
        };
        let Some(job) = self.jobs.get(job_name.as_str()).copied() else {
            if let Some(refusal) = self.observed.refused.get(&job_name) {
                let message = format!("Job {job_name} was not created: {}", refusal.message);
                self.attempt_failed(index, refusal.reason, message);
            } else if self.status.steps[index]
                .job_ref
                .as_ref()
                .is_some_and(|job| job.uid.is_some())
            {
                self.attempt_failed(
                    index,
                    reasons::JOB_DELETED,
                    format!("Job {job_name} was deleted before it finished"),
                );
            } else {
                // Created but not seen yet (or the create was lost): applying it again is
                // idempotent, thanks to the deterministic name.
                self.recreate(index);
            }
            return;
        };
        if let Some(job_ref) = self.status.steps[index].job_ref.as_mut() {
            job_ref.uid.clone_from(&job.metadata.uid);
        }
        match job_outcome(job) {
            JobOutcome::Succeeded => self.step_succeeded(index, job),
            JobOutcome::Failed { reason, message } => {
                let mut message = format!("Job {job_name} failed ({reason}): {message}");
                if let Some(failure) = self.observed.pod_failures.get(&job_name) {
                    message = format!("{message}; {failure}");
                }
                self.attempt_failed(index, reasons::JOB_FAILED, message);
            }
            JobOutcome::Running => {
                self.report_stuck_pod(index, &job_name);
                self.check_timeout(index, job);
            }
        }
    }

    fn recreate(&mut self, index: usize) {
        let step = self.spec_step(index);
        let attempt = self.status.steps[index].attempt;
        let outputs = self.outputs_by_step();
        match build_job(self.flow, step, attempt, &outputs) {
            Ok(job) => self.plan.create_jobs.push(job),
            // It was built once; a template that no longer builds (outputs gone) fails the step
            // rather than leaving it Running with no Job.
            Err(error) => self.fail_step(index, reasons::JOB_NOT_BUILT, error.to_string()),
        }
    }

    /// Outputs of every step that has some, for parameter substitution.
    pub fn outputs_by_step(&self) -> BTreeMap<&str, &BTreeMap<String, String>> {
        self.status
            .steps
            .iter()
            .filter(|step| !step.outputs.is_empty())
            .map(|step| (step.name.as_str(), &step.outputs))
            .collect()
    }

    fn step_succeeded(&mut self, index: usize, job: &k8s_openapi::api::batch::v1::Job) {
        let step = self.spec_step(index);
        let declared = step
            .outputs
            .as_ref()
            .map(|outputs| outputs.parameters.as_slice())
            .unwrap_or_default();
        let job_name = job.metadata.name.clone().unwrap_or_default();
        if !declared.is_empty() {
            let message = self
                .observed
                .termination_messages
                .get(&job_name)
                .map(String::as_str);
            match read_outputs(declared, message, job) {
                Ok(values) => self.status.steps[index].outputs = values,
                Err(ReadOutputsError::MessageMissing) if self.within_output_grace(job) => {
                    let next = self.after(OUTPUT_POLL);
                    self.wake_at(next);
                    return;
                }
                Err(error) => {
                    self.attempt_failed(
                        index,
                        reasons::OUTPUTS_UNAVAILABLE,
                        format!("Job {job_name} succeeded but {error}"),
                    );
                    return;
                }
            }
        }
        // No Event: a succeeded step is routine (see `PlannedEvent`).
        self.end_step(
            index,
            StepPhase::Succeeded,
            reasons::JOB_SUCCEEDED,
            format!("Job {job_name} succeeded"),
        );
    }

    fn within_output_grace(&self, job: &k8s_openapi::api::batch::v1::Job) -> bool {
        let finished = job
            .status
            .as_ref()
            .and_then(|status| status.completion_time.as_ref())
            .map_or(self.now, |time| time.0);
        self.now.duration_since(finished)
            < SignedDuration::try_from(OUTPUT_GRACE).unwrap_or_default()
    }

    fn check_timeout(&mut self, index: usize, job: &k8s_openapi::api::batch::v1::Job) {
        let Some(seconds) = self.spec_step(index).timeout_seconds else {
            return;
        };
        let Some(started) = job.metadata.creation_timestamp.as_ref().map(|time| time.0) else {
            return;
        };
        let Ok(deadline) = started.checked_add(SignedDuration::from_secs(seconds)) else {
            return;
        };
        if self.now < deadline {
            self.wake_at(deadline);
            return;
        }
        let name = self.status.steps[index].name.clone();
        let job_name = job.metadata.name.clone().unwrap_or_default();
        self.delete_job(&job_name, reasons::TIMEOUT);
        self.step_warning(
            &name,
            reasons::STEP_TIMEOUT,
            format!("Step {name} exceeded timeoutSeconds ({seconds}s); Job {job_name} deleted"),
        );
        let mut message = format!("attempt exceeded timeoutSeconds ({seconds}s)");
        let step = &self.status.steps[index];
        if step.reason.as_deref() == Some(reasons::POD_STUCK)
            && let Some(stuck) = step.message.as_deref()
        {
            message = format!("{message} while stuck: {stuck}");
        }
        self.attempt_failed(index, reasons::TIMEOUT, message);
    }

    /// The current attempt of `index` failed: retry after the backoff if the step's retries and
    /// the flow's `backoffLimit` allow, else the step fails.
    pub fn attempt_failed(&mut self, index: usize, reason: &str, message: String) {
        let name = self.status.steps[index].name.clone();
        let Some(policy) = self.spec_step(index).retry_policy.as_ref() else {
            self.fail_step(index, reason, message);
            return;
        };
        let retries = self.status.steps[index].retry_count;
        if retries >= policy.limit {
            let message = format!(
                "{message} (no retries left: retryPolicy.limit is {})",
                policy.limit
            );
            self.fail_step(index, reason, message);
            return;
        }
        let used = self.status.steps.iter().fold(0i32, |sum, step| {
            sum.saturating_add(step.retry_count.max(0))
        });
        let limit = self.flow.spec.execution_policy.backoff_limit;
        if used >= limit {
            let message = format!(
                "{message}; not retried: the flow used all {limit} retries of executionPolicy.backoffLimit"
            );
            self.fail_step(index, reasons::BACKOFF_LIMIT_EXCEEDED, message);
            return;
        }
        let wait = backoff(policy, retries);
        let next = self.after(wait);
        let step = &mut self.status.steps[index];
        step.retry_count = retries.saturating_add(1);
        step.phase = StepPhase::Pending;
        step.reason = Some(reason.to_owned());
        step.message = Some(super::state::cut(
            format!(
                "{message}; retry {} of {} in {}s",
                retries.saturating_add(1),
                policy.limit,
                wait.as_secs()
            ),
            super::state::MAX_STEP_MESSAGE,
        ));
        step.next_attempt_time = (!wait.is_zero()).then_some(Time(next));
        self.wake_at(next);
        self.step_event(
            &name,
            reasons::STEP_RETRY,
            format!(
                "Step {name} failed ({reason}): {message}; retry {} of {} in {}s",
                retries.saturating_add(1),
                policy.limit,
                wait.as_secs()
            ),
        );
    }

    /// The step failed for good.
    pub fn fail_step(&mut self, index: usize, reason: &str, message: String) {
        let name = self.status.steps[index].name.clone();
        self.step_warning(
            &name,
            reasons::STEP_FAILED,
            format!("Step {name} failed ({reason}): {message}"),
        );
        self.end_step(index, StepPhase::Failed, reason, message);
    }
}
