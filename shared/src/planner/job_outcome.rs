//! What a step's Job says about the attempt, read from the Job controller's own conditions.
//!
//! Pod counters are never used: `Complete`/`SuccessCriteriaMet` and `Failed`/`FailureTarget`
//! are the Job controller's verdict, including its pod failure policy and backoff limit.

use crate::api::reasons;
use k8s_openapi::api::batch::v1::Job;

/// The state of one attempt's Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// No verdict yet.
    Running,
    /// The Job succeeded.
    Succeeded,
    /// The Job failed; the reason and message come from its condition.
    Failed {
        /// The condition's reason, e.g. `BackoffLimitExceeded`, `PodFailurePolicy`.
        reason: String,
        /// The condition's message.
        message: String,
    },
}

/// The outcome of `job` from its conditions.
pub fn job_outcome(job: &Job) -> JobOutcome {
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default();
    let is_true = |kind: &str| {
        conditions
            .iter()
            .find(|condition| condition.type_ == kind && condition.status == "True")
    };
    if is_true("Complete")
        .or_else(|| is_true("SuccessCriteriaMet"))
        .is_some()
    {
        return JobOutcome::Succeeded;
    }
    if let Some(condition) = is_true("Failed").or_else(|| is_true("FailureTarget")) {
        return JobOutcome::Failed {
            reason: condition
                .reason
                .clone()
                .unwrap_or_else(|| reasons::JOB_FAILED.into()),
            message: condition.message.clone().unwrap_or_default(),
        };
    }
    JobOutcome::Running
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    use super::*;

    fn job_with(conditions: &[(&str, &str)]) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(kind, status)| JobCondition {
                            type_: (*kind).into(),
                            status: (*status).into(),
                            reason: Some("BackoffLimitExceeded".into()),
                            message: Some("Job has reached the specified backoff limit".into()),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn no_conditions_is_running() {
        assert_eq!(job_outcome(&Job::default()), JobOutcome::Running);
        assert_eq!(
            job_outcome(&job_with(&[("Suspended", "True")])),
            JobOutcome::Running
        );
    }

    #[test]
    fn success_criteria_met_counts_before_complete() {
        assert_eq!(
            job_outcome(&job_with(&[("SuccessCriteriaMet", "True")])),
            JobOutcome::Succeeded
        );
        assert_eq!(
            job_outcome(&job_with(&[("Complete", "True")])),
            JobOutcome::Succeeded
        );
        assert_eq!(
            job_outcome(&job_with(&[("Complete", "False")])),
            JobOutcome::Running
        );
    }

    #[test]
    fn failure_target_counts_before_failed() {
        let outcome = job_outcome(&job_with(&[("FailureTarget", "True")]));
        assert!(
            matches!(outcome, JobOutcome::Failed { reason, .. } if reason == "BackoffLimitExceeded")
        );
    }
}
