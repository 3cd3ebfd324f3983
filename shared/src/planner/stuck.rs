//! A running step whose pod is stuck says why, once, and stops saying so when the pod starts.

use super::state::{MAX_STEP_MESSAGE, Planning, cut};
use crate::api::reasons;

impl Planning<'_> {
    /// Tells, in step `index`'s status, why the pod of its running Job `job_name` is stuck, with
    /// one Warning Event each time the cause first appears or changes; clears the message once
    /// the pod is no longer stuck. The step keeps running: the cause may be fixed, and only its
    /// `timeoutSeconds` or the flow's deadline end the wait.
    pub fn report_stuck_pod(&mut self, index: usize, job_name: &str) {
        let trouble = self.observed.pod_trouble.get(job_name);
        let step = &mut self.status.steps[index];
        let told = step.reason.as_deref() == Some(reasons::POD_STUCK);
        let Some(trouble) = trouble else {
            if told {
                step.reason = None;
                step.message = None;
            }
            return;
        };
        let same_cause = told
            && step
                .message
                .as_deref()
                .is_some_and(|message| trouble.is_told_by(message));
        let message = cut(trouble.message.clone(), MAX_STEP_MESSAGE);
        step.reason = Some(reasons::POD_STUCK.to_owned());
        step.message = Some(message.clone());
        if !same_cause {
            let name = step.name.clone();
            self.step_warning(
                &name,
                reasons::STEP_STUCK,
                format!("Step {name} is stuck: {message}"),
            );
        }
    }
}
