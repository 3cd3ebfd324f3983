//! One GET before a step's Job is taken for deleted: a watch that lags behind must not make a
//! live Job look gone (the planner would fail the attempt and start another beside it).

use std::sync::Arc;
use std::time::Instant;

use jobflow::api::{JobFlow, StepPhase};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

use crate::apply::{begin_write, within};
use crate::context::Context;
use crate::error::Error;
use crate::metrics::{Operation, Resource};
use crate::strip;

/// Adds to `jobs` each running step's Job that the status recorded (by UID) but `jobs` lacks,
/// if the API server still has it. A Job it confirms stands in for the cache until the watch
/// shows it, so it is read once. A Job the API server no longer has (or has under another UID)
/// stays missing, and the planner fails its step with `JobDeleted`.
pub async fn confirm_missing(
    ctx: &Context,
    flow: &JobFlow,
    namespace: &str,
    jobs: &mut Vec<Arc<Job>>,
) -> Result<(), Error> {
    let Some(status) = flow.status.as_ref() else {
        return Ok(());
    };
    let missing: Vec<(&str, &str)> = status
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
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    for (name, uid) in missing {
        begin_write(ctx, Operation::Get, Resource::Jobs)?;
        let found = within(api.get_opt(name))
            .await
            .map_err(|source| Error::ConfirmJob {
                name: name.to_owned(),
                source,
            })?;
        let Some(mut job) = found.filter(|job| job.metadata.uid.as_deref() == Some(uid)) else {
            continue;
        };
        tracing::debug!(
            job = name,
            "the cache lags: the API server still has the Job"
        );
        strip::job(&mut job);
        ctx.caches.applied.record(job.clone(), Instant::now());
        jobs.push(Arc::new(job));
    }
    Ok(())
}
