//! The stop request, `workflow.kube-zen.io/stop: <request id>`: the running Jobs of regular
//! steps are deleted (those steps fail), the steps that have not started are skipped, both
//! with reason `Stopped`; the finally steps still run, and the flow ends Failed with reason
//! `Stopped`. A flow that has not had its turn yet ends at once (there is nothing to run
//! finally steps after). A stop of a finished flow is acknowledged and does nothing.

use super::CompiledFlow;
use super::concurrency::has_turn;
use super::state::{FlowFailure, Planning};
use crate::api::reasons;
use crate::api::{FlowPhase, StepPhase};
use crate::labels;

impl Planning<'_> {
    /// Carries out a new stop request. Returns true when the flow ended at once (it had not
    /// started), so the pass has nothing more to do.
    pub fn handle_stop_request(&mut self, compiled: &CompiledFlow) -> bool {
        let Some(request) = self
            .flow
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(labels::STOP))
            .cloned()
        else {
            return false;
        };
        if self.status.handled_requests.get(labels::STOP) == Some(&request) {
            return false;
        }
        self.status
            .handled_requests
            .insert(labels::STOP.to_owned(), request.clone());
        if self.status.phase.is_some_and(FlowPhase::is_terminal) {
            return false;
        }
        let message = format!("stopped (request {request:?})");
        self.event(
            reasons::FLOW_STOPPED,
            format!("Flow stopped (request {request:?})"),
        );
        if !has_turn(&self.status) {
            self.stop(
                compiled,
                FlowFailure {
                    reason: reasons::STOPPED,
                    message,
                },
            );
            return true;
        }
        for index in 0..compiled.dag.regular_count() {
            let step = &self.status.steps[index];
            match step.phase {
                StepPhase::Running => {
                    if let Some(job) = step.job_ref.as_ref().map(|job| job.name.clone()) {
                        self.delete_job(&job, reasons::STOPPED);
                    }
                    self.end_step(index, StepPhase::Failed, reasons::STOPPED, message.clone());
                }
                phase if !phase.is_terminal() => {
                    self.end_step(index, StepPhase::Skipped, reasons::STOPPED, message.clone());
                }
                _ => {}
            }
        }
        false
    }

    /// The message of the stop that ended a regular step, if one did: once every step has
    /// ended the flow fails with reason `Stopped`, whatever the finally steps did.
    pub fn stopped_step_message(&self) -> Option<String> {
        self.status
            .steps
            .iter()
            .take(self.flow.spec.steps.len())
            .find(|step| step.reason.as_deref() == Some(reasons::STOPPED))
            .map(|step| step.message.clone().unwrap_or_default())
    }
}
