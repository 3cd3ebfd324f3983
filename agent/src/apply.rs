//! Carrying a plan out, in order: resource templates, new Jobs, Job deletions, Events, then at
//! most one write of the flow itself (its status, or its deletion).

use std::borrow::Cow;
use std::time::Instant;

use jiff::Timestamp;
use jobflow::api::{JobFlow, JobFlowStatus};
use jobflow::labels::FIELD_MANAGER;
use jobflow::planner::{BuiltJob, JobDeletion, Plan, PlannedEvent};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::error::{Error, chain};
use crate::metrics::{Operation, Resource as Res};

/// Carries out `plan` for `flow`. Stops at the first failed write so the status never runs ahead
/// of what exists; Events are best effort.
pub async fn carry_out(
    ctx: &Context,
    flow: &JobFlow,
    namespace: &str,
    plan: &Plan,
) -> Result<(), Error> {
    for resource in &plan.apply_resources {
        apply_resource(ctx, namespace, resource).await?;
    }
    let mut status = Cow::Borrowed(&plan.status);
    for job in &plan.create_jobs {
        if let Some(applied) = create_job(ctx, namespace, job).await? {
            record_uid(&mut status, &applied);
            let mut stripped = applied;
            crate::strip::job(&mut stripped);
            ctx.caches
                .applied
                .record(stripped, std::time::Instant::now());
        }
    }
    for deletion in &plan.delete_jobs {
        delete_job(ctx, namespace, deletion).await?;
    }
    for event in &plan.events {
        publish(ctx, flow, event).await;
    }
    if plan.delete_flow {
        delete_flow(ctx, flow, namespace).await
    } else if status_changed(flow.status.as_ref(), &status) {
        patch_status(ctx, flow, namespace, &status).await
    } else {
        Ok(())
    }
}

/// Writes the UID the apply response gave `job` into the step that runs it, so the status that
/// records the new Job need not be written again once the watch shows the Job.
fn record_uid(status: &mut Cow<'_, JobFlowStatus>, job: &Job) {
    let (Some(name), Some(uid)) = (&job.metadata.name, &job.metadata.uid) else {
        return;
    };
    let unrecorded = |step: &jobflow::api::StepStatus| {
        step.job_ref
            .as_ref()
            .is_some_and(|r| &r.name == name && r.uid.is_none())
    };
    if !status.steps.iter().any(unrecorded) {
        return;
    }
    for step in status
        .to_mut()
        .steps
        .iter_mut()
        .filter(|step| unrecorded(step))
    {
        if let Some(job_ref) = step.job_ref.as_mut() {
            job_ref.uid = Some(uid.clone());
        }
    }
}

/// Whether `planned` differs from the status the flow has (no status reads as the empty one).
pub fn status_changed(current: Option<&JobFlowStatus>, planned: &JobFlowStatus) -> bool {
    match current {
        Some(current) => current != planned,
        None => *planned != JobFlowStatus::default(),
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Server-side apply of one resource template, whatever its kind.
async fn apply_resource(
    ctx: &Context,
    namespace: &str,
    object: &serde_json::Value,
) -> Result<(), Error> {
    let text = |pointer: &str| object.pointer(pointer).and_then(serde_json::Value::as_str);
    let kind = text("/kind").unwrap_or_default();
    let Some(name) = text("/metadata/name") else {
        return Err(Error::NameObject {
            kind: kind.to_owned(),
        });
    };
    let api_version = text("/apiVersion").unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let ns = text("/metadata/namespace").unwrap_or(namespace);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &resource);
    ctx.metrics.api_write(Operation::Apply, Res::of_kind(kind));
    api.patch(name, &apply_params(), &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|source| Error::ApplyResource {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        })
}

/// Server-side apply of a step's Job, returning the Job the API server holds. Applying is
/// idempotent; a conflict means the Job exists (another writer, or a cache that has not seen it
/// yet) and is not an error.
async fn create_job(ctx: &Context, namespace: &str, job: &BuiltJob) -> Result<Option<Job>, Error> {
    let name = job
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| Error::NameObject {
            kind: "Job".to_owned(),
        })?;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.api_write(Operation::Apply, Res::Jobs);
    match api
        .patch(name, &apply_params(), &Patch::Apply(job.manifest()))
        .await
    {
        Ok(applied) => {
            tracing::debug!(job = name, "applied Job");
            Ok(Some(applied))
        }
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
            tracing::debug!(job = name, "Job exists");
            Ok(None)
        }
        Err(source) => Err(Error::CreateJob {
            name: name.to_owned(),
            source,
        }),
    }
}

/// Deletes a Job and, in the background, its pods. A Job already gone is fine.
async fn delete_job(ctx: &Context, namespace: &str, deletion: &JobDeletion) -> Result<(), Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.api_write(Operation::Delete, Res::Jobs);
    match api
        .delete(&deletion.name, &DeleteParams::background())
        .await
    {
        Ok(_) => {
            tracing::info!(job = %deletion.name, reason = deletion.reason, "deleted Job");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Error::DeleteJob {
            name: deletion.name.clone(),
            source,
        }),
    }
}

/// Publishes one Event on the flow. A failure is logged, not returned: Events are for people and
/// must not hold back the status.
async fn publish(ctx: &Context, flow: &JobFlow, planned: &PlannedEvent) {
    ctx.metrics.api_write(Operation::CreateEvent, Res::Events);
    if let Err(error) = ctx.events.publish(flow, planned).await {
        tracing::warn!(reason = planned.reason, error = %chain(&error), "publishing an Event failed");
    }
}

/// The one write of the status: server-side apply of the whole status, as its only manager.
async fn patch_status(
    ctx: &Context,
    flow: &JobFlow,
    namespace: &str,
    status: &JobFlowStatus,
) -> Result<(), Error> {
    let api: Api<JobFlow> = Api::namespaced(ctx.client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": JobFlow::api_version(&()),
        "kind": JobFlow::kind(&()),
        "status": status,
    });
    let started = Instant::now();
    ctx.metrics.api_write(Operation::PatchStatus, Res::JobFlows);
    let mut written = api
        .patch_status(&flow.name_any(), &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::PatchStatus { source })?;
    ctx.metrics.status_written(started.elapsed());
    crate::strip::flow(&mut written);
    ctx.caches.written.record(written);
    let old = flow.status.clone().unwrap_or_default();
    ctx.metrics.status_changed(&old, status, Timestamp::now());
    Ok(())
}

/// Deletes the flow (its TTL expired); its Jobs follow by garbage collection.
async fn delete_flow(ctx: &Context, flow: &JobFlow, namespace: &str) -> Result<(), Error> {
    let api: Api<JobFlow> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.api_write(Operation::Delete, Res::JobFlows);
    match api
        .delete(&flow.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => {
            tracing::info!("deleted the flow: its TTL expired");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Error::DeleteFlow { source }),
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jobflow::api::FlowPhase;

    #[test]
    fn the_applied_jobs_uid_is_recorded_in_its_step_only() {
        use jobflow::api::{JobRef, StepStatus};
        let step = |name: &str, job: &str| StepStatus {
            name: name.into(),
            job_ref: Some(JobRef {
                name: job.into(),
                ..JobRef::default()
            }),
            ..StepStatus::default()
        };
        let planned = JobFlowStatus {
            steps: vec![step("a", "f-a-1"), step("b", "f-b-1")],
            ..JobFlowStatus::default()
        };
        let mut job = Job::default();
        job.metadata.name = Some("f-b-1".into());
        job.metadata.uid = Some("uid-b".into());
        let mut status = Cow::Borrowed(&planned);
        record_uid(&mut status, &job);
        assert_eq!(
            status.steps[1].job_ref.as_ref().unwrap().uid.as_deref(),
            Some("uid-b")
        );
        assert_eq!(status.steps[0].job_ref.as_ref().unwrap().uid, None);

        job.metadata.name = Some("f-c-1".into());
        let mut untouched = Cow::Borrowed(&planned);
        record_uid(&mut untouched, &job);
        assert!(
            matches!(untouched, Cow::Borrowed(_)),
            "no copy when no step runs that Job"
        );
    }

    #[test]
    fn status_is_written_only_when_it_changes() {
        let running = JobFlowStatus {
            phase: Some(FlowPhase::Running),
            ..JobFlowStatus::default()
        };
        assert!(!status_changed(None, &JobFlowStatus::default()));
        assert!(status_changed(None, &running));
        assert!(!status_changed(Some(&running), &running.clone()));
        assert!(status_changed(Some(&JobFlowStatus::default()), &running));
    }
}
