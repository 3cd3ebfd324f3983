//! Manual requests, made by annotating the flow (the kubectl plugin does it) and acknowledged
//! in `status.handledRequests`, so a request left in place is carried out once.
//!
//! - `approve.workflow.kube-zen.io/<step>: <request id>` approves a Manual step. A request made
//!   before the step waits is kept and approves it when it gets there.
//! - `reject.workflow.kube-zen.io/<step>: <request id>` rejects one the same way: the step
//!   fails (reason `Rejected`, message from `reject-message.workflow.kube-zen.io/<step>`)
//!   and what depends on it is skipped. A new rejection and approval of the same step in
//!   one pass: the rejection wins.
//! - `workflow.kube-zen.io/retry: <request id>` retries the failed and skipped steps of a
//!   finished flow; `retry.workflow.kube-zen.io/<step>: <request id>` retries that step and
//!   everything downstream, whether the flow finished or not (the named step must have ended;
//!   running steps downstream have their Jobs deleted). Request ids are opaque: any text.
//!   Succeeded steps outside that set keep their results; finally steps run again. Retried
//!   steps start new attempts (new Job names) with a fresh retry budget.

use std::collections::{BTreeMap, BTreeSet};

use super::CompiledFlow;
use super::state::Planning;
use crate::api::reasons;
use crate::api::{FlowPhase, StepPhase, StepType};
use crate::labels;

impl Planning<'_> {
    /// Forgets acknowledgements of requests whose annotation is gone, so `handledRequests`
    /// never outgrows the annotations (which the API server bounds).
    pub fn forget_withdrawn_requests(&mut self) {
        let annotations = self.flow.metadata.annotations.as_ref();
        self.status
            .handled_requests
            .retain(|key, _| annotations.is_some_and(|a| a.contains_key(key)));
    }

    /// Rejects, then approves, Manual steps that wait and have a new request.
    pub fn handle_approvals(&mut self, compiled: &CompiledFlow) {
        let annotations = self.flow.metadata.annotations.clone().unwrap_or_default();
        self.decide_manual_steps(
            compiled,
            &annotations,
            labels::REJECT_PREFIX,
            reasons::REJECTION_REFUSED,
            |planning, index, step_name, request| {
                let why = annotations
                    .get(&format!("{}{step_name}", labels::REJECT_MESSAGE_PREFIX))
                    .map_or_else(String::new, |message| format!(": {message}"));
                planning.end_step(
                    index,
                    StepPhase::Failed,
                    reasons::REJECTED,
                    format!("rejected (request {request:?}){why}"),
                );
                planning.step_event(
                    step_name,
                    reasons::STEP_REJECTED,
                    format!("Step {step_name} rejected (request {request:?}){why}"),
                );
            },
        );
        self.decide_manual_steps(
            compiled,
            &annotations,
            labels::APPROVE_PREFIX,
            reasons::APPROVAL_REJECTED,
            |planning, index, step_name, request| {
                planning.end_step(
                    index,
                    StepPhase::Succeeded,
                    reasons::APPROVED,
                    format!("approved (request {request:?})"),
                );
                planning.step_event(
                    step_name,
                    reasons::STEP_APPROVED,
                    format!("Step {step_name} approved (request {request:?})"),
                );
            },
        );
    }

    /// Carries out each new request `<prefix><step>: <id>` on a Manual step that waits, with
    /// `decide(planning, index, step, id)`, and records it as handled. A request naming no
    /// Manual step is recorded too, with a Warning of reason `refused`; one for a step that
    /// does not wait yet is kept for when it does.
    fn decide_manual_steps(
        &mut self,
        compiled: &CompiledFlow,
        annotations: &BTreeMap<String, String>,
        prefix: &str,
        refused: &'static str,
        mut decide: impl FnMut(&mut Self, usize, &str, &str),
    ) {
        for (key, request) in annotations {
            let Some(step_name) = key.strip_prefix(prefix) else {
                continue;
            };
            if self.status.handled_requests.get(key) == Some(request) {
                continue;
            }
            let index = compiled
                .dag
                .index_of(step_name)
                .filter(|&index| self.spec_step(index).step_type == StepType::Manual);
            let Some(index) = index else {
                self.status
                    .handled_requests
                    .insert(key.clone(), request.clone());
                self.warning(
                    refused,
                    format!("{key}: the flow has no Manual step {step_name:?}"),
                );
                continue;
            };
            if self.status.steps[index].phase != StepPhase::PendingApproval {
                continue;
            }
            self.status
                .handled_requests
                .insert(key.clone(), request.clone());
            decide(self, index, step_name, request);
        }
    }

    /// Carries out new retry requests: the flow-wide one and the named ones, together. A
    /// finished flow they reopen waits for its turn again (concurrency) and then starts a
    /// fresh run; a running step they reset has its Job deleted first, so no attempt is left
    /// running untracked beside the new one.
    pub fn handle_retry_request(&mut self, compiled: &CompiledFlow) {
        let annotations = self.flow.metadata.annotations.clone().unwrap_or_default();
        let finished = self.status.phase.is_some_and(FlowPhase::is_terminal);
        let mut targets = BTreeSet::new();
        let mut requests = Vec::new();
        for (key, request) in &annotations {
            let named = key.strip_prefix(labels::RETRY_PREFIX);
            if (named.is_none() && key != labels::RETRY)
                || self.status.handled_requests.get(key) == Some(request)
            {
                continue;
            }
            self.status
                .handled_requests
                .insert(key.clone(), request.clone());
            let found = match named {
                Some(step) => self.named_retry_targets(compiled, step),
                None => self.failed_part(compiled, finished),
            };
            match found {
                Ok(found) => {
                    targets.extend(found);
                    requests.push(format!("{key}={request:?}"));
                }
                Err(why) => self.warning(
                    reasons::RETRY_REJECTED,
                    format!("retry request {key}={request:?} not carried out: {why}"),
                ),
            }
        }
        if targets.is_empty() {
            return;
        }
        let dag = &compiled.dag;
        // Finally steps run once every other step has ended, so they run again after a retry.
        targets.extend(dag.regular_count()..dag.len());
        let names: Vec<&str> = targets.iter().map(|index| dag.name(*index)).collect();
        let requests = requests.join(", ");
        self.event(
            reasons::STEP_RETRY,
            format!("Retrying {} (request {requests})", names.join(", ")),
        );
        for &index in &targets {
            let step = &self.status.steps[index];
            if step.phase == StepPhase::Running
                && let Some(job) = step.job_ref.as_ref().map(|job| job.name.clone())
            {
                self.delete_job(&job, reasons::RETRY_RESET);
            }
            let step = &mut self.status.steps[index];
            step.phase = StepPhase::Pending;
            step.reason = Some(reasons::RETRY_REQUESTED.into());
            step.message = Some(format!("retry requested ({requests})"));
            step.retry_count = 0;
            step.completion_time = None;
            step.next_attempt_time = None;
            step.job_ref = None;
            step.outputs.clear();
        }
        if finished {
            // A reopened flow waits for its turn like a new one; its run (and its deadline)
            // starts again when it gets it.
            self.status.phase = Some(FlowPhase::Pending);
            self.status.completion_time = None;
        }
    }

    /// Step `name` and everything downstream, or why it cannot be retried.
    fn named_retry_targets(
        &self,
        compiled: &CompiledFlow,
        name: &str,
    ) -> Result<Vec<usize>, String> {
        let dag = &compiled.dag;
        let index = dag
            .index_of(name)
            .ok_or_else(|| format!("the flow has no step {name:?}"))?;
        if !self.status.steps[index].phase.is_terminal() {
            return Err(format!("step {name:?} has not ended yet"));
        }
        let mut targets = vec![index];
        targets.extend(dag.downstream(index));
        Ok(targets)
    }

    /// The failed and skipped regular steps of a finished flow and everything downstream, or
    /// why there are none.
    fn failed_part(&self, compiled: &CompiledFlow, finished: bool) -> Result<Vec<usize>, String> {
        if !finished {
            return Err(format!(
                "the flow is still running; name the steps to retry with {}<step>",
                labels::RETRY_PREFIX
            ));
        }
        let dag = &compiled.dag;
        let mut targets = BTreeSet::new();
        for index in 0..dag.regular_count() {
            if matches!(
                self.status.steps[index].phase,
                StepPhase::Failed | StepPhase::Skipped
            ) {
                targets.insert(index);
                targets.extend(dag.downstream(index));
            }
        }
        if targets.is_empty() {
            return Err("no step failed or was skipped".into());
        }
        Ok(targets.into_iter().collect())
    }
}
