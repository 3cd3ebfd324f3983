//! The fields of one step other than its name, dependencies, condition and references.

use super::LocatedStep;
use super::duration::parse_duration;
use super::job_template::check_job_template;
use super::metadata::{check_annotations, check_labels};
use super::parameters::{check_env_clashes, check_inputs_and_outputs};
use super::problems::Problems;
use crate::api::{RetryPolicy, StepType};
use crate::limits::{MAX_BACKOFF, MAX_BACKOFF_FACTOR, MAX_SECONDS, MAX_STEP_RETRIES};

/// Checks a step's type and template, retries, timeout, inputs and outputs.
pub(super) fn check_step(located: &LocatedStep<'_>, problems: &mut Problems) {
    let step = located.step;
    let path = &located.path;
    match (step.step_type, &step.template) {
        (StepType::Job, None) => problems.invalid(
            format!("{path}.template"),
            "a Job step needs a template (a whole batch/v1 Job with spec.template.spec.containers); add one, or set type: Manual for an approval step",
        ),
        (StepType::Job, Some(template)) => {
            let template_path = format!("{path}.template");
            if let Some(job) = check_job_template(template, &template_path, problems) {
                check_env_clashes(step, &job, &template_path, problems);
            }
        }
        (StepType::Manual, Some(_)) => problems.invalid(
            format!("{path}.template"),
            "a Manual step waits for approval and runs no Job; remove the template, or set type: Job",
        ),
        (StepType::Manual, None) => {}
    }
    if let Some(retry_policy) = &step.retry_policy {
        check_retry_policy(retry_policy, &format!("{path}.retryPolicy"), problems);
    }
    if let Some(seconds) = step.timeout_seconds {
        check_seconds(
            seconds,
            &format!("{path}.timeoutSeconds"),
            "an attempt may run",
            problems,
        );
    }
    check_inputs_and_outputs(step, path, problems);
    if let Some(metadata) = &step.metadata {
        check_labels(
            &metadata.labels,
            &format!("{path}.metadata.labels"),
            problems,
        );
        check_annotations(
            &metadata.annotations,
            &format!("{path}.metadata.annotations"),
            problems,
        );
    }
}

fn check_retry_policy(policy: &RetryPolicy, path: &str, problems: &mut Problems) {
    if !(0..=MAX_STEP_RETRIES).contains(&policy.limit) {
        problems.invalid(
            format!("{path}.limit"),
            format!(
                "must be from 0 to {MAX_STEP_RETRIES} (it counts new attempts after a failure), got {}; use 0 for no retry",
                policy.limit
            ),
        );
    }
    let Some(backoff) = &policy.backoff else {
        return;
    };
    match parse_duration(&backoff.duration) {
        Err(error) => problems.invalid(format!("{path}.backoff.duration"), error.to_string()),
        Ok(duration) if duration > MAX_BACKOFF => problems.invalid(
            format!("{path}.backoff.duration"),
            format!(
                "{:?} is longer than the longest wait between attempts, {}h; use at most 24h, e.g. 10s",
                backoff.duration,
                MAX_BACKOFF.as_secs() / 3600
            ),
        ),
        Ok(_) => {}
    }
    if let Some(factor) = backoff.factor
        && !(factor.is_finite() && (1.0..=MAX_BACKOFF_FACTOR).contains(&factor))
    {
        problems.invalid(
            format!("{path}.backoff.factor"),
            format!("must be a number from 1 to {MAX_BACKOFF_FACTOR} (each wait is this many times the last), got {factor}; e.g. 2"),
        );
    }
}

/// Checks a number of seconds is within 1..=30 days; `what` completes "the seconds {what}".
pub(super) fn check_seconds(seconds: i64, path: &str, what: &str, problems: &mut Problems) {
    if !(1..=MAX_SECONDS).contains(&seconds) {
        problems.invalid(
            path,
            format!(
                "the seconds {what} must be from 1 to {MAX_SECONDS} (30 days), got {seconds}; e.g. 3600 for an hour"
            ),
        );
    }
}
