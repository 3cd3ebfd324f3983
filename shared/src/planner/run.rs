//! The order of one planning pass over a valid flow.

use super::CompiledFlow;
use super::concurrency::Gate;
use super::state::{FlowFailure, Planning};
use crate::api::FlowPhase;
use crate::api::reasons;

impl Planning<'_> {
    /// Plans a valid flow: requests, concurrency, running steps, deadline, then new steps.
    pub fn run(&mut self, compiled: &CompiledFlow) {
        self.align_steps(&compiled.dag);
        self.forget_withdrawn_requests();
        self.handle_retry_request(compiled);
        if self.handle_stop_request(compiled) {
            return;
        }
        if self.status.phase.is_some_and(FlowPhase::is_terminal) {
            return;
        }
        if self.flow.spec.suspend == Some(true) && !super::concurrency::has_turn(&self.status) {
            // Suspended before it started, it has not started: no startTime (its spec may still
            // change), no resource templates, no turn under its concurrencyKey.
            return;
        }
        match self.concurrency_gate() {
            Gate::Proceed => {}
            Gate::Wait(message) => {
                if !super::concurrency::has_turn(&self.status) {
                    self.waiting = Some(message);
                    return;
                }
            }
            Gate::Stop(message) => {
                self.stop(
                    compiled,
                    FlowFailure {
                        reason: reasons::REPLACED,
                        message,
                    },
                );
                return;
            }
        }
        if !super::concurrency::has_turn(&self.status) {
            // The flow (re)starts now, and its deadline counts from now. On its first start
            // its resource templates are applied once, before any Job that mounts them.
            let first = self.status.start_time.is_none();
            self.status.start_time = Some(self.now_time());
            self.status.phase = Some(FlowPhase::Running);
            if first {
                let resources = super::resources::resource_objects(self.flow);
                if let Some(failure) = self.refused_resource(&resources) {
                    self.stop(compiled, failure);
                    return;
                }
                self.plan.create_resources = resources;
            }
        }
        self.handle_approvals(compiled);
        self.observe_running(compiled);
        if let Some(failure) = self.deadline_exceeded() {
            self.stop(compiled, failure);
            return;
        }
        self.schedule(compiled);
    }

    /// The API server refused one of the flow's resource templates: the flow cannot run.
    fn refused_resource(&self, resources: &[serde_json::Value]) -> Option<FlowFailure> {
        resources.iter().find_map(|object| {
            let name = object.pointer("/metadata/name")?.as_str()?;
            let kind = object.get("kind")?.as_str()?;
            let refusal = self.observed.refused.get(name)?;
            Some(FlowFailure {
                reason: reasons::RESOURCE_REJECTED,
                message: format!("{kind} {name} was not created: {}", refusal.message),
            })
        })
    }

    /// The flow's `activeDeadlineSeconds` has passed, or when it will.
    fn deadline_exceeded(&mut self) -> Option<FlowFailure> {
        let seconds = self.flow.spec.execution_policy.active_deadline_seconds?;
        let started = self.status.start_time.as_ref()?.0;
        let deadline = started
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()?;
        if self.now < deadline {
            self.wake_at(deadline);
            return None;
        }
        Some(FlowFailure {
            reason: reasons::ACTIVE_DEADLINE_EXCEEDED,
            message: format!("the flow ran longer than activeDeadlineSeconds ({seconds}s)"),
        })
    }

    /// Ends the flow now: running Jobs are deleted, running steps fail and the rest are skipped.
    pub fn stop(&mut self, compiled: &CompiledFlow, failure: FlowFailure) {
        use crate::api::StepPhase;
        for index in 0..compiled.dag.len() {
            let step = &self.status.steps[index];
            match step.phase {
                StepPhase::Running => {
                    if let Some(job) = step.job_ref.as_ref().map(|job| job.name.clone()) {
                        self.delete_job(&job, failure.reason);
                    }
                    self.end_step(
                        index,
                        StepPhase::Failed,
                        failure.reason,
                        failure.message.clone(),
                    );
                }
                phase if !phase.is_terminal() => {
                    self.end_step(
                        index,
                        StepPhase::Skipped,
                        failure.reason,
                        failure.message.clone(),
                    );
                }
                _ => {}
            }
        }
        self.failure = Some(failure);
    }
}
