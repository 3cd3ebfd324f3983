//! One GET before a step's Job is taken for deleted: a watch that lags behind must not make a
//! live Job look gone (the planner would fail the attempt and start another beside it).

use std::time::Instant;

use jobflow::api::{JobFlow, StepPhase};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

use super::View;
use crate::flows::context::Context;
use crate::flows::error::Error;
use crate::kube::strip;
use crate::metrics::Resource;

impl View {
    /// Adds each running step's Job that the status recorded (by UID) but the view lacks, if
    /// the API server still has it. A Job it confirms stands in for the cache until the watch
    /// shows it, so it is read once. A Job the API server no longer has (or has under another
    /// UID) stays missing, and the planner fails its step with `JobDeleted`.
    pub async fn confirm_missing(&mut self, ctx: &Context) -> Result<(), Error> {
        let missing: Vec<(String, String)> = missing_jobs(&self.flow, &self.jobs)
            .into_iter()
            .map(|(name, uid)| (name.to_owned(), uid.to_owned()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let namespace = self
            .flow
            .metadata
            .namespace
            .as_deref()
            .ok_or(Error::ReadNamespace)?;
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
        for (name, uid) in missing {
            let found = ctx
                .calls
                .read(Resource::Jobs, api.get_opt(&name))
                .await
                .map_err(|source| Error::ConfirmJob {
                    name: name.clone(),
                    source,
                })?;
            let Some(job) = found.filter(|job| job.metadata.uid.as_deref() == Some(uid.as_str()))
            else {
                continue;
            };
            tracing::debug!(
                job = name,
                "the cache lags: the API server still has the Job"
            );
            let job = strip::job(job);
            self.jobs.push(job.job());
            ctx.caches.index.record_job(&self.flow, job, Instant::now());
        }
        Ok(())
    }
}

/// The (name, UID) of each running step's Job that the status recorded by UID and `jobs` lacks.
/// A Job whose UID was never recorded is not here: the planner applies it again (idempotent).
fn missing_jobs<'a>(flow: &'a JobFlow, jobs: &[Job]) -> Vec<(&'a str, &'a str)> {
    let Some(status) = flow.status.as_ref() else {
        return Vec::new();
    };
    status
        .steps
        .iter()
        .filter(|step| step.phase == StepPhase::Running)
        .filter_map(|step| {
            let job = step.job_ref.as_ref()?;
            Some((job.name.as_str(), job.uid.as_deref()?))
        })
        .filter(|(_, uid)| {
            !jobs
                .iter()
                .any(|job| job.metadata.uid.as_deref() == Some(*uid))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use jobflow::api::{JobFlowStatus, JobRef, StepStatus};

    use super::*;
    use crate::testing::{flow, job};

    fn step(name: &str, phase: StepPhase, job: &str, uid: Option<&str>) -> StepStatus {
        StepStatus {
            name: name.to_owned(),
            phase,
            job_ref: Some(JobRef {
                name: job.to_owned(),
                uid: uid.map(str::to_owned),
                ..JobRef::default()
            }),
            ..StepStatus::default()
        }
    }

    #[test]
    fn only_running_steps_with_a_recorded_uid_missing_from_the_cache_are_confirmed() {
        let mut f = flow("f", "u", None, 0);
        f.status = Some(JobFlowStatus {
            steps: vec![
                step("seen", StepPhase::Running, "f-seen-1", Some("uid-f-seen-1")),
                step("gone", StepPhase::Running, "f-gone-1", Some("uid-f-gone-1")),
                step("new", StepPhase::Running, "f-new-1", None),
                step(
                    "done",
                    StepPhase::Succeeded,
                    "f-done-1",
                    Some("uid-f-done-1"),
                ),
            ],
            ..JobFlowStatus::default()
        });
        let cached = vec![job("f-seen-1", "f", "u")];
        assert_eq!(missing_jobs(&f, &cached), [("f-gone-1", "uid-f-gone-1")]);
        assert!(missing_jobs(&flow("g", "v", None, 0), &cached).is_empty());
    }
}
