//! Manual requests, made by annotating the flow (the kubectl plugin does it) and acknowledged
//! in `status.handledRequests`, so a request left in place is carried out once.
//!
//! - `approve.workflow.kube-zen.io/<step>: <request id>` approves a Manual step. A request made
//!   before the step waits is kept and approves it when it gets there.
//! - `workflow.kube-zen.io/retry: <request id>` retries the failed and skipped steps of a
//!   finished flow; `<request id>:<step>,<step>` retries those steps and everything downstream,
//!   whether the flow finished or not (the named steps must have ended). Succeeded steps outside
//!   that set keep their results; finally steps run again. Retried steps start new attempts
//!   (new Job names) with a fresh retry budget.

use std::collections::BTreeSet;

use super::CompiledFlow;
use super::state::Planning;
use crate::api::reasons;
use crate::api::{FlowPhase, StepPhase};
use crate::labels;

impl Planning<'_> {
    /// Approves Manual steps that wait and have a new approval request.
    pub fn handle_approvals(&mut self, compiled: &CompiledFlow) {
        let annotations = self.flow.metadata.annotations.clone().unwrap_or_default();
        for (key, request) in &annotations {
            let Some(step_name) = key.strip_prefix(labels::APPROVE_PREFIX) else {
                continue;
            };
            if self.status.handled_requests.get(key) == Some(request) {
                continue;
            }
            let Some(index) = compiled.dag.index_of(step_name) else {
                self.status
                    .handled_requests
                    .insert(key.clone(), request.clone());
                self.warning(
                    reasons::APPROVAL_REJECTED,
                    format!("{key}: the flow has no step {step_name:?}"),
                );
                continue;
            };
            if self.status.steps[index].phase != StepPhase::PendingApproval {
                continue;
            }
            self.status
                .handled_requests
                .insert(key.clone(), request.clone());
            self.end_step(
                index,
                StepPhase::Succeeded,
                reasons::APPROVED,
                format!("approved (request {request:?})"),
            );
            self.step_event(
                step_name,
                reasons::STEP_APPROVED,
                format!("Step {step_name} approved (request {request:?})"),
            );
        }
    }

    /// Carries out a new retry request; a finished flow it reopens runs again.
    pub fn handle_retry_request(&mut self, compiled: &CompiledFlow) {
        let Some(request) = self
            .flow
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::RETRY))
        else {
            return;
        };
        if self.status.handled_requests.get(labels::RETRY) == Some(request) {
            return;
        }
        self.status
            .handled_requests
            .insert(labels::RETRY.to_owned(), request.clone());
        let finished = self.status.phase.is_some_and(FlowPhase::is_terminal);
        let targets = match self.retry_targets(compiled, request, finished) {
            Ok(targets) => targets,
            Err(why) => {
                self.warning(
                    reasons::RETRY_REJECTED,
                    format!("retry request {request:?} not carried out: {why}"),
                );
                return;
            }
        };
        let dag = &compiled.dag;
        let names: Vec<&str> = targets.iter().map(|index| dag.name(*index)).collect();
        self.event(
            reasons::STEP_RETRY,
            format!("Retrying {} (request {request:?})", names.join(", ")),
        );
        for &index in &targets {
            let step = &mut self.status.steps[index];
            step.phase = StepPhase::Pending;
            step.reason = Some(reasons::RETRY_REQUESTED.into());
            step.message = Some(format!("retry requested ({request:?})"));
            step.retry_count = 0;
            step.completion_time = None;
            step.next_attempt_time = None;
            step.job_ref = None;
            step.outputs.clear();
        }
        if finished {
            // A retried flow runs again: it is no longer finished.
            self.status.phase = Some(FlowPhase::Running);
            self.status.completion_time = None;
        }
    }

    /// The steps a retry request resets, in DAG order, or why it cannot be done.
    fn retry_targets(
        &self,
        compiled: &CompiledFlow,
        request: &str,
        finished: bool,
    ) -> Result<Vec<usize>, String> {
        let dag = &compiled.dag;
        let mut targets = BTreeSet::new();
        if let Some((_, names)) = request.split_once(':') {
            for name in names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
            {
                let index = dag
                    .index_of(name)
                    .ok_or_else(|| format!("the flow has no step {name:?}"))?;
                if !self.status.steps[index].phase.is_terminal() {
                    return Err(format!("step {name:?} has not ended yet"));
                }
                targets.insert(index);
                targets.extend(dag.downstream(index));
            }
            if targets.is_empty() {
                return Err("no step named after ':'".into());
            }
        } else {
            if !finished {
                return Err(
                    "the flow is still running; name the steps to retry as <id>:<step>,<step>"
                        .into(),
                );
            }
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
        }
        // Finally steps run once every other step has ended, so they run again after a retry.
        targets.extend(dag.regular_count()..dag.len());
        Ok(targets.into_iter().collect())
    }
}
