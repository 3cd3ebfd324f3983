//! `spec.executionPolicy`: deadlines, limits, concurrency and the pod failure policy.

use super::problems::Problems;
use super::step::check_seconds;
use crate::api::{ExecutionPolicy, ExitCodeOperator, PodFailurePolicy};
use crate::limits::{MAX_BACKOFF_LIMIT, MAX_TTL_SECONDS};

const PATH: &str = "spec.executionPolicy";
const MAX_CONCURRENCY_KEY_LENGTH: usize = 63;

/// Checks the flow's execution policy.
pub(super) fn check_execution_policy(policy: &ExecutionPolicy, problems: &mut Problems) {
    if let Some(seconds) = policy.active_deadline_seconds {
        check_seconds(
            seconds,
            &format!("{PATH}.activeDeadlineSeconds"),
            "the flow may run",
            problems,
        );
    }
    if !(0..=MAX_BACKOFF_LIMIT).contains(&policy.backoff_limit) {
        problems.invalid(
            format!("{PATH}.backoffLimit"),
            format!(
                "must be from 0 to {MAX_BACKOFF_LIMIT} (the most retries across all steps), got {}; use 0 for no retry",
                policy.backoff_limit
            ),
        );
    }
    if !(0..=MAX_TTL_SECONDS).contains(&policy.ttl_seconds_after_finished) {
        problems.invalid(
            format!("{PATH}.ttlSecondsAfterFinished"),
            format!(
                "must be from 0 to {MAX_TTL_SECONDS} (365 days; 0 deletes the flow as soon as it finishes), got {}",
                policy.ttl_seconds_after_finished
            ),
        );
    }
    if let Some(parallelism) = policy.parallelism
        && parallelism < 1
    {
        problems.invalid(
            format!("{PATH}.parallelism"),
            format!("must be at least 1 (the most steps running at once), got {parallelism}; leave it out for no cap"),
        );
    }
    if let Some(key) = &policy.concurrency_key {
        let path = format!("{PATH}.concurrencyKey");
        let length = key.chars().count();
        if key.trim().is_empty() {
            problems.invalid(
                path,
                "is empty; set a key shared by the flows that must take turns, or leave it out",
            );
        } else if length > MAX_CONCURRENCY_KEY_LENGTH {
            problems.invalid(
                path,
                format!("is {length} characters long; use at most {MAX_CONCURRENCY_KEY_LENGTH}"),
            );
        }
    }
    if let Some(pod_failure_policy) = &policy.pod_failure_policy {
        check_pod_failure_policy(pod_failure_policy, problems);
    }
}

fn check_pod_failure_policy(policy: &PodFailurePolicy, problems: &mut Problems) {
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(on_exit_codes) = &rule.on_exit_codes else {
            continue;
        };
        let path = format!("{PATH}.podFailurePolicy.rules[{index}].onExitCodes.values");
        let values = &on_exit_codes.values;
        if values.is_empty() {
            problems.invalid(
                path.clone(),
                "lists no exit code; add at least one, e.g. [1]",
            );
        }
        for (position, &code) in values.iter().enumerate() {
            let value_path = format!("{path}[{position}]");
            if !(0..=255).contains(&code) {
                problems.invalid(
                    value_path,
                    format!("{code} is not an exit code; use a number from 0 to 255"),
                );
            } else if code == 0 && on_exit_codes.operator == ExitCodeOperator::In {
                problems.invalid(
                    value_path,
                    "0 means success and cannot be matched with operator In; remove it",
                );
            } else if values[..position].contains(&code) {
                problems.invalid(
                    value_path,
                    format!("{code} is listed twice; remove this one"),
                );
            }
        }
    }
}
