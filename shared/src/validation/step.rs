//! The fields of one step other than its name, dependencies, condition and references.

use super::LocatedStep;
use super::duration::parse_duration;
use super::job_template::check_job_template;
use super::metadata::{check_annotations, check_labels};
use super::parameters::{check_env_clashes, check_inputs_and_outputs};
use super::problems::Problems;
use crate::api::{RetryPolicy, StepType};

/// The longest timeout or deadline: 30 days, in seconds.
pub(super) const MAX_SECONDS: i64 = 2_592_000;

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
    if policy.limit < 0 {
        problems.invalid(
            format!("{path}.limit"),
            format!(
                "must be 0 or more (it counts new attempts after a failure), got {}; use 0 for no retry",
                policy.limit
            ),
        );
    }
    let Some(backoff) = &policy.backoff else {
        return;
    };
    if let Err(error) = parse_duration(&backoff.duration) {
        problems.invalid(format!("{path}.backoff.duration"), error.to_string());
    }
    if let Some(factor) = backoff.factor
        && !(factor.is_finite() && factor >= 1.0)
    {
        problems.invalid(
            format!("{path}.backoff.factor"),
            format!("must be a number of at least 1 (each wait is this many times the last), got {factor}; e.g. 2"),
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
