//! The status as a whole stays under [`MAX_STATUS_BYTES`].
//!
//! Per-step caps (a 1 KiB message, 4 KiB of outputs) do not bound the object: a few hundred
//! steps with full outputs would pass etcd's limit and every later status write would fail.
//! When the serialized status is over budget, the messages and then the outputs of the steps
//! that finished first are dropped until it fits, and the `StatusTrimmed` condition says so.
//! A later step that reads a dropped output fails with a message naming it.

use super::state::Planning;
use crate::api::conditions::STATUS_TRIMMED;
use crate::api::reasons;
use crate::api::{Condition, JobFlowStatus, StepStatus};

/// The most bytes the serialized status may take (etcd refuses objects over 1.5 MiB, and the
/// spec needs room too).
pub const MAX_STATUS_BYTES: usize = 512 * 1024;

impl Planning<'_> {
    /// Trims the status to the budget, oldest finished steps first.
    pub fn keep_status_in_budget(&mut self) {
        if upper_bound(&self.status) <= MAX_STATUS_BYTES {
            // Serializing costs more than planning a small flow: skip it when it cannot matter.
            return;
        }
        let Some(mut over) = serialized_len(&self.status).checked_sub(MAX_STATUS_BYTES) else {
            return;
        };
        let mut finished: Vec<usize> = (0..self.status.steps.len())
            .filter(|&index| self.status.steps[index].phase.is_terminal())
            .collect();
        finished.sort_by_key(|&index| {
            let step = &self.status.steps[index];
            (step.completion_time.as_ref().map(|time| time.0), index)
        });
        let mut trimmed = 0usize;
        // Messages first (nothing reads them), then outputs.
        for drop_outputs in [false, true] {
            for &index in &finished {
                if over == 0 {
                    break;
                }
                let step = &mut self.status.steps[index];
                let freed = if drop_outputs {
                    take_outputs(step)
                } else {
                    take_message(step)
                };
                if freed > 0 {
                    trimmed += 1;
                    over = over.saturating_sub(freed);
                }
            }
        }
        let message = format!(
            "the status was over {} KiB: the messages or outputs of {trimmed} of the earliest finished steps were dropped",
            MAX_STATUS_BYTES / 1024
        );
        let now = self.now_time();
        let generation = self.flow.metadata.generation;
        let conditions = &mut self.status.conditions;
        match conditions.iter_mut().find(|c| c.type_ == STATUS_TRIMMED) {
            Some(condition) => {
                condition.message = message;
                condition.observed_generation = generation;
            }
            None => conditions.push(Condition {
                type_: STATUS_TRIMMED.into(),
                status: "True".into(),
                reason: reasons::STATUS_BUDGET_EXCEEDED.into(),
                message,
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }
}

/// More bytes than `status` can take serialized: generous fixed sizes for the small fields
/// (names are at most 63 bytes, times and numbers short), exact lengths for the free text.
fn upper_bound(status: &JobFlowStatus) -> usize {
    const FLOW_FIELDS: usize = 2048;
    const STEP_FIELDS: usize = 512;
    const ENTRY: usize = 8;
    let conditions: usize = status
        .conditions
        .iter()
        .map(|c| 512 + text(&c.type_) + text(&c.reason) + text(&c.message))
        .sum();
    let requests: usize = status
        .handled_requests
        .iter()
        .map(|(key, value)| text(key) + text(value) + ENTRY)
        .sum();
    let steps: usize = status
        .steps
        .iter()
        .map(|step| {
            STEP_FIELDS
                + text(&step.name)
                + step.reason.as_deref().map_or(0, text)
                + step.message.as_deref().map_or(0, text)
                + step.job_ref.as_ref().map_or(0, |job| {
                    text(&job.name) + job.uid.as_deref().map_or(0, text)
                })
                + step
                    .outputs
                    .iter()
                    .map(|(key, value)| text(key) + text(value) + ENTRY)
                    .sum::<usize>()
        })
        .sum();
    FLOW_FIELDS + conditions + requests + steps
}

/// The most bytes `value` takes as a JSON string's contents: escaped characters take up to 6.
fn text(value: &str) -> usize {
    value.len()
        + 5 * value
            .bytes()
            .filter(|byte| matches!(byte, b'"' | b'\\') || *byte < 0x20)
            .count()
}

fn serialized_len(status: &JobFlowStatus) -> usize {
    serde_json::to_vec(status).map_or(0, |bytes| bytes.len())
}

/// Drops the step's message; the bytes it took in the serialized status.
fn take_message(step: &mut StepStatus) -> usize {
    // `"message":"…",` around the text.
    step.message.take().map_or(0, |message| message.len() + 13)
}

/// Drops the step's outputs; the bytes they took in the serialized status.
fn take_outputs(step: &mut StepStatus) -> usize {
    std::mem::take(&mut step.outputs)
        .iter()
        .map(|(key, value)| key.len() + value.len() + 6)
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::api::{JobRef, StepPhase};

    proptest! {
        /// The cheap bound is never below the real size, or a status over budget would pass.
        #[test]
        fn the_upper_bound_is_never_below_the_serialized_size(
            steps in proptest::collection::vec(
                ("[a-z0-9-]{1,63}", proptest::option::of("(\\PC|[\"\\\\\\x00-\\x1f]){0,256}"), proptest::collection::btree_map("[a-z]{1,8}", "(\\PC|[\"\\\\]){0,64}", 0..4)),
                0..20,
            ),
            requests in proptest::collection::btree_map("\\PC{1,40}", "\\PC{0,40}", 0..4),
        ) {
            let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::MAX);
            let status = JobFlowStatus {
                steps: steps
                    .into_iter()
                    .map(|(name, message, outputs)| StepStatus {
                        job_ref: Some(JobRef {
                            api_version: Some("batch/v1".into()),
                            kind: Some("Job".into()),
                            namespace: Some("n".repeat(63)),
                            name: format!("{name}-2147483647-abcdef"),
                            uid: Some("0b9f6c1e-0000-0000-0000-000000000000".into()),
                        }),
                        name,
                        phase: StepPhase::PendingApproval,
                        reason: Some("OutputsUnavailable".into()),
                        message,
                        attempt: i32::MIN,
                        retry_count: i32::MIN,
                        start_time: Some(time.clone()),
                        completion_time: Some(time.clone()),
                        next_attempt_time: Some(time.clone()),
                        outputs,
                    })
                    .collect(),
                handled_requests: requests,
                start_time: Some(time.clone()),
                completion_time: Some(time),
                ..JobFlowStatus::default()
            };
            prop_assert!(serialized_len(&status) <= upper_bound(&status));
        }
    }
}
