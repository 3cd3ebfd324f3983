//! Carrying a plan out, in order: resource templates, new Jobs (created side by side), Job
//! deletions, then at most one write of the flow itself (its status, or its deletion), then
//! Events, in the background: a reconcile does not wait for them, so the next flow's Jobs do not
//! either. Every call goes through [`crate::kube::call::Calls`]: timed, counted, and not sent
//! unless this replica may lead at that moment. A permanent refusal of a create is kept in the
//! flow's index entry for the next plan, which fails the attempt or the flow.

mod create;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use jobflow::api::{JobFlow, JobFlowStatus, StepStatus, reasons};
use jobflow::labels::FIELD_MANAGER;
use jobflow::planner::{BuiltJob, JobDeletion, Plan, PlannedEvent, Refusal};
use jobflow::status_diff::status_patch;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use self::create::{Create, Created};
use super::context::Context;
use super::error::Error;
use crate::error::chain;
use crate::kube::call::CallError;
use crate::kube::strip;
use crate::metrics::{Operation, Resource as Res};

/// What a carried-out plan left for the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The API server refused an object for good: plan again at once, so the refusal reaches
    /// the status.
    pub refused: bool,
}

/// Carries out `plan` for `flow`.
///
/// The status is written after the Jobs were created, so it never names a Job that was not
/// attempted; a refused or failed Job create does not hold back what else the plan records
/// (steps that finished meanwhile). A failed resource template or Job deletion stops before the
/// status: the status would claim what did not happen. Events follow the status write, so a
/// failed write does not publish them twice.
pub async fn carry_out(ctx: &Arc<Context>, flow: &JobFlow, plan: &Plan) -> Result<Carried, Error> {
    let namespace = flow
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::ReadNamespace)?;
    for resource in &plan.create_resources {
        if let Some(refused) = create_resource(ctx, flow, namespace, resource).await? {
            // Nothing else may happen: the flow's Jobs would mount what does not exist.
            ctx.caches.index.refuse(flow, [refused]);
            return Ok(Carried { refused: true });
        }
    }
    let mut status = Cow::Borrowed(&plan.status);
    let mut carried = Carried::default();
    let mut failed = None;
    // Side by side: the Jobs of one plan are independent (a flow's roots, a fan-out), and a
    // burst of new flows waits for each reconcile's slowest create, not for their sum.
    let created = futures::future::join_all(
        plan.create_jobs
            .iter()
            .map(|job| create_job(ctx, flow, namespace, job)),
    )
    .await;
    for result in created {
        match result {
            Ok(Created::Ours(created)) => {
                record_uid(&mut status, &created);
                ctx.caches
                    .index
                    .record_job(flow, strip::job(created), Instant::now());
            }
            Ok(Created::Refused(name, refusal)) => {
                tracing::warn!(job = %name, reason = refusal.reason, message = %refusal.message, "Job refused");
                ctx.caches.index.refuse(flow, [(name, refusal)]);
                carried.refused = true;
            }
            // Recorded as Running without a UID, the step's Job is created again next time.
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    for deletion in &plan.delete_jobs {
        delete_job(ctx, namespace, deletion).await?;
    }
    if plan.delete_flow {
        delete_flow(ctx, flow, namespace).await?;
    } else {
        let change = status_patch(flow.status.as_ref(), &status);
        if !change.0.is_empty() {
            tracing::debug!(change = %change, "writing the status");
            write_status(ctx, flow, namespace, &status).await?;
            ctx.metrics.transitions(&plan.transitions);
        }
    }
    publish(ctx, flow, &plan.events);
    failed.map_or(Ok(carried), Err)
}

/// Writes the UID the create response gave `job` into the step that runs it, so the status that
/// records the new Job need not be written again once the watch shows the Job.
fn record_uid(status: &mut Cow<'_, JobFlowStatus>, job: &Job) {
    let (Some(name), Some(uid)) = (&job.metadata.name, &job.metadata.uid) else {
        return;
    };
    let unrecorded = |step: &StepStatus| {
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

/// Creates one resource template's object, whatever its kind; returns its name and why if the
/// API server refused it for good.
async fn create_resource(
    ctx: &Context,
    flow: &JobFlow,
    namespace: &str,
    object: &serde_json::Value,
) -> Result<Option<(String, Refusal)>, Error> {
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
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let create = Create {
        api: &api,
        name,
        manifest: object,
        kind,
        resource: Res::of_kind(kind),
        reason: reasons::RESOURCE_REJECTED,
    };
    match create.run(&ctx.calls, flow).await {
        Ok(Created::Ours(_)) => Ok(None),
        Ok(Created::Refused(name, refusal)) => Ok(Some((name, refusal))),
        Err(source) => Err(Error::CreateResource {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// Creates a step's Job, or finds it created by this flow before (a crash between creating it
/// and writing the status).
async fn create_job(
    ctx: &Context,
    flow: &JobFlow,
    namespace: &str,
    job: &BuiltJob,
) -> Result<Created<Job>, Error> {
    let name = job
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| Error::NameObject {
            kind: "Job".to_owned(),
        })?;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let create = Create {
        api: &api,
        name,
        manifest: job.manifest(),
        kind: "Job",
        resource: Res::Jobs,
        reason: reasons::JOB_REJECTED,
    };
    create
        .run(&ctx.calls, flow)
        .await
        .map_err(|source| Error::CreateJob {
            name: name.to_owned(),
            source,
        })
}

/// Deletes a Job and, in the background, its pods. A Job already gone is fine.
async fn delete_job(ctx: &Context, namespace: &str, deletion: &JobDeletion) -> Result<(), Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams::background();
    let call = api.delete(&deletion.name, &params);
    match gone_is_fine(ctx.calls.write(Operation::Delete, Res::Jobs, call).await) {
        Ok(()) => {
            tracing::info!(job = %deletion.name, reason = deletion.reason, "deleted Job");
            Ok(())
        }
        Err(source) => Err(Error::DeleteJob {
            name: deletion.name.clone(),
            source,
        }),
    }
}

/// Publishes the plan's Events on the flow, in order, from a task of their own: Events are for
/// people and hold back neither the status nor the next reconcile. Each is stamped now and
/// sent only while this replica may lead; a failure is logged, not retried. Events still being
/// sent when the agent exits are lost.
fn publish(ctx: &Arc<Context>, flow: &JobFlow, planned: &[PlannedEvent]) {
    if planned.is_empty() {
        return;
    }
    let events: Vec<_> = planned
        .iter()
        .map(|event| (event.reason, ctx.events.event(flow, event)))
        .collect();
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        for (reason, event) in events {
            let sent = ctx
                .calls
                .write(
                    Operation::CreateEvent,
                    Res::Events,
                    ctx.events.create(&event),
                )
                .await;
            match sent {
                Ok(()) => {}
                Err(CallError::Lapsed(_)) => return,
                Err(error) => {
                    tracing::warn!(reason, error = %chain(&error), "publishing an Event failed");
                }
            }
        }
    });
}

/// The one write of the status: server-side apply of the whole status, as its only manager.
async fn write_status(
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
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = flow.name_any();
    let patch = Patch::Apply(&body);
    let call = api.patch_status(&name, &params, &patch);
    let written = ctx
        .calls
        .write(Operation::PatchStatus, Res::JobFlows, call)
        .await
        .map_err(|source| Error::PatchStatus { source })?;
    ctx.metrics.status_written(started.elapsed());
    ctx.caches.index.record_written(written, Instant::now());
    Ok(())
}

/// Deletes the flow (its TTL expired); its Jobs follow by garbage collection.
async fn delete_flow(ctx: &Context, flow: &JobFlow, namespace: &str) -> Result<(), Error> {
    let api: Api<JobFlow> = Api::namespaced(ctx.client.clone(), namespace);
    let name = flow.name_any();
    let params = DeleteParams::background();
    let call = api.delete(&name, &params);
    gone_is_fine(
        ctx.calls
            .write(Operation::Delete, Res::JobFlows, call)
            .await,
    )
    .map_err(|source| Error::DeleteFlow { source })?;
    tracing::info!("deleted the flow: its TTL expired");
    Ok(())
}

/// A delete's outcome, where an object already gone counts as deleted.
fn gone_is_fine<T>(result: Result<T, CallError>) -> Result<(), CallError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_created_jobs_uid_is_recorded_in_its_step_only() {
        use jobflow::api::JobRef;
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
}
