//! Starting steps: dependencies, failFast, `when`, suspend, parallelism, Manual steps.

use super::CompiledFlow;
use super::job_builder::{build_job, literal_inputs};
use super::readiness::{Readiness, readiness};
use super::state::Planning;
use crate::api::reasons;
use crate::api::{FlowPhase, StepPhase, StepType};
use crate::when::WhenScope;

impl Planning<'_> {
    /// Walks the steps in topological order, skipping, starting or holding each pending one.
    pub fn schedule(&mut self, compiled: &CompiledFlow) {
        let dag = &compiled.dag;
        let cap = self
            .flow
            .spec
            .execution_policy
            .parallelism
            .and_then(|cap| usize::try_from(cap).ok());
        let suspended = self.flow.spec.suspend == Some(true);
        let mut running = self
            .status
            .steps
            .iter()
            .filter(|step| step.phase == StepPhase::Running)
            .count();
        for &index in dag.topological_order() {
            let step = &self.status.steps[index];
            if step.phase != StepPhase::Pending {
                continue;
            }
            // A step waiting for an automatic retry already passed failFast and `when`; a step
            // reset by a retry request (retryCount back to 0) goes through them again.
            let is_automatic_retry = step.attempt > 0 && step.retry_count > 0;
            if let Some(next) = step.next_attempt_time.as_ref().map(|time| time.0)
                && next > self.now
            {
                self.wake_at(next);
                continue;
            }
            match self.readiness(compiled, index) {
                Readiness::Waiting => continue,
                Readiness::Blocked(message) => {
                    self.skip(index, reasons::UPSTREAM_FAILED, message);
                    continue;
                }
                Readiness::Ready => {}
            }
            if !is_automatic_retry && !self.may_start_new_step(compiled, index) {
                continue;
            }
            if suspended {
                continue;
            }
            if cap.is_some_and(|cap| running >= cap) {
                self.queued += 1;
                continue;
            }
            if self.start(index) {
                running += 1;
            }
        }
    }

    /// Applies failFast and `when` to a step that is about to start for the first time; returns
    /// false when the step was skipped or failed instead.
    fn may_start_new_step(&mut self, compiled: &CompiledFlow, index: usize) -> bool {
        let dag = &compiled.dag;
        if !dag.is_finally(index)
            && self.flow.spec.execution_policy.fail_fast
            && let Some(failed) = self.first_blocking_failure(compiled)
        {
            let message = format!(
                "not started: step {} failed and executionPolicy.failFast is on",
                dag.name(failed)
            );
            self.skip(index, reasons::FAIL_FAST, message);
            return false;
        }
        let Some(when) = &compiled.whens[index] else {
            return true;
        };
        let flow_phase = dag
            .is_finally(index)
            .then(|| self.regular_outcome(compiled));
        let outputs = self.outputs_by_step();
        let parameters = match literal_inputs(self.flow, self.spec_step(index), &outputs) {
            Ok(parameters) => parameters,
            Err(error) => {
                self.fail_step(
                    index,
                    reasons::WHEN_ERROR,
                    format!("when could not be evaluated: {error}"),
                );
                return false;
            }
        };
        let scope = WhenScope {
            steps: &self.status.steps,
            flow_phase,
            parameters: &parameters,
        };
        match when.evaluate(&scope) {
            Ok(true) => true,
            Ok(false) => {
                self.skip(index, reasons::WHEN_FALSE, "when evaluated to false".into());
                false
            }
            Err(error) => {
                self.fail_step(
                    index,
                    reasons::WHEN_ERROR,
                    format!("when could not be evaluated: {error}"),
                );
                false
            }
        }
    }

    /// Whether step `index` may start, by [`readiness`], from its dependencies (and, for
    /// finally steps, from every regular step having ended).
    fn readiness(&self, compiled: &CompiledFlow, index: usize) -> Readiness {
        let dag = &compiled.dag;
        let waits_for_regular_steps = dag.is_finally(index)
            && (0..dag.regular_count())
                .any(|regular| !self.status.steps[regular].phase.is_terminal());
        let dependencies = dag.dependencies(index).iter().map(|&dependency| {
            (
                &self.status.steps[dependency],
                self.spec_step(dependency).continue_on_failure,
            )
        });
        readiness(waits_for_regular_steps, dependencies)
    }

    /// The outcome of the regular steps, for finally steps' `flow.phase`.
    pub fn regular_outcome(&self, compiled: &CompiledFlow) -> FlowPhase {
        if self.first_blocking_failure(compiled).is_some() {
            FlowPhase::Failed
        } else {
            FlowPhase::Succeeded
        }
    }

    fn skip(&mut self, index: usize, reason: &str, message: String) {
        let name = self.status.steps[index].name.clone();
        self.step_event(
            &name,
            reasons::STEP_SKIPPED,
            format!("Step {name} skipped: {message}"),
        );
        self.end_step(index, StepPhase::Skipped, reason, message);
    }

    /// Starts step `index`: a Manual step waits for approval, a Job step gets its next attempt's
    /// Job. Returns whether a Job now runs.
    fn start(&mut self, index: usize) -> bool {
        let spec = self.spec_step(index);
        let now = self.now_time();
        let name = spec.name.clone();
        if spec.step_type == StepType::Manual {
            let step = &mut self.status.steps[index];
            step.phase = StepPhase::PendingApproval;
            step.start_time.get_or_insert(now);
            step.reason = Some(reasons::WAITING_FOR_APPROVAL.into());
            step.message = Some(spec.message.clone().unwrap_or_else(|| {
                let namespace = self.flow.metadata.namespace.as_deref().unwrap_or("default");
                let flow = self.flow.metadata.name.as_deref().unwrap_or_default();
                format!(
                    "approve with: kubectl jobflow approve -n {namespace} {flow} {name} \
                     (or: kubectl -n {namespace} annotate jobflow {flow} {}{name}=$(date +%s))",
                    crate::labels::APPROVE_PREFIX,
                )
            }));
            self.step_event(
                &name,
                reasons::STEP_PENDING_APPROVAL,
                format!("Step {name} waits for approval"),
            );
            return false;
        }
        let attempt = self.status.steps[index].attempt.saturating_add(1);
        let outputs = self.outputs_by_step();
        match build_job(self.flow, spec, attempt, &outputs) {
            Ok(job) => {
                let job_name = job.metadata.name.clone().unwrap_or_default();
                self.plan.create_jobs.push(job);
                let job_ref = Self::job_ref(job_name.clone());
                let step = &mut self.status.steps[index];
                step.phase = StepPhase::Running;
                step.attempt = attempt;
                step.job_ref = Some(job_ref);
                step.start_time.get_or_insert(now);
                step.next_attempt_time = None;
                step.reason = None;
                step.message = None;
                // No Event: a started step is routine (see `PlannedEvent`).
                true
            }
            Err(error) => {
                self.fail_step(index, reasons::JOB_NOT_BUILT, error.to_string());
                false
            }
        }
    }
}
