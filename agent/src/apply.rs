//! Carrying a plan out, in order: resource templates, new Jobs (created side by side), Job
//! deletions, then at most one write of the flow itself (its status, or its deletion), then
//! Events, in the background: a reconcile does not wait for them, so the next flow's Jobs do not
//! either.
//!
//! Objects are created, never applied over: a create cannot take over an object of the same name
//! that another flow or a user owns. An object that exists already is this flow's only if its
//! controller owner reference carries the flow's UID (a Job created before a crash); anything
//! else is a name conflict. A permanent refusal (a 4xx other than 409 and 429) is reported to the
//! planner through the flow's state, which fails the attempt or the flow; transient errors (429,
//! 5xx, timeouts) end the reconcile and it is retried with backoff.
//!
//! No write is made unless the leadership guard allows it at that moment (see
//! [`crate::leader::Leadership`]): a replica frozen past its renew deadline refuses, and the
//! reconcile fails with [`Error::ConfirmLeadership`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobflow::api::{JobFlow, JobFlowStatus, reasons};
use jobflow::labels::FIELD_MANAGER;
use jobflow::planner::{BuiltJob, JobDeletion, Plan, PlannedEvent, Refusal};
use jobflow::status_diff::status_patch;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::{Error, chain};
use crate::metrics::{Operation, Resource as Res};

/// The longest any one write may take before the reconcile gives up on it and retries later.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

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
pub async fn carry_out(
    ctx: &Arc<Context>,
    flow: &JobFlow,
    namespace: &str,
    plan: &Plan,
) -> Result<Carried, Error> {
    let uid = flow.uid().unwrap_or_default();
    for resource in &plan.apply_resources {
        if let Some((name, refusal)) = create_resource(ctx, flow, namespace, resource).await? {
            // Nothing else may happen: the flow's Jobs would mount what does not exist.
            ctx.caches.flow_states.refuse(&uid, [(name, refusal)]);
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
                let mut stripped = created;
                crate::strip::job(&mut stripped);
                ctx.caches.applied.record(stripped, Instant::now());
            }
            Ok(Created::Refused(name, refusal)) => {
                tracing::warn!(job = %name, reason = refusal.reason, message = %refusal.message, "Job refused");
                ctx.caches.flow_states.refuse(&uid, [(name, refusal)]);
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
            patch_status(ctx, flow, namespace, &status).await?;
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

/// Asks the leadership guard, then counts the call. Every API call a reconcile makes (its
/// writes, and the GET of `confirm`) calls it right before the call, so nothing is done (or
/// counted) once this replica's leadership may have lapsed, whichever task runs first after a
/// stall.
pub fn begin_write(ctx: &Context, operation: Operation, resource: Res) -> Result<(), Error> {
    if let Err(source) = ctx.leadership.confirm() {
        tracing::warn!(
            operation = operation.as_str(),
            resource = resource.as_str(),
            error = %source,
            "not writing: this replica may no longer lead"
        );
        return Err(Error::ConfirmLeadership {
            write: format!("{} {}", operation.as_str(), resource.as_str()),
            source,
        });
    }
    ctx.metrics.api_write(operation, resource);
    tracing::debug!(
        operation = operation.as_str(),
        resource = resource.as_str(),
        "API write"
    );
    Ok(())
}

/// Runs one API call under [`WRITE_TIMEOUT`].
pub async fn within<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    tokio::time::timeout(WRITE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// The error a timed-out call reports: a 504, which counts as transient.
fn timed_out() -> kube::Error {
    kube::Error::Api(Box::new(
        kube::core::Status::failure(
            &format!("no answer within {}s", WRITE_TIMEOUT.as_secs()),
            "Timeout",
        )
        .with_code(504),
    ))
}

/// The API server's message if `error` is a permanent refusal: a 4xx other than 409 (conflict)
/// and 429 (too many requests). Everything else may pass if tried again.
pub fn permanent_refusal(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status)
            if (400..500).contains(&status.code) && !matches!(status.code, 409 | 429) =>
        {
            Some(if status.message.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                status.message.clone()
            })
        }
        _ => None,
    }
}

/// The outcome of creating an object the API server did not refuse with a transient error.
enum Created<T> {
    /// Created now, or found already created by this flow.
    Ours(T),
    /// Refused for good: the object's name and why.
    Refused(String, Refusal),
}

/// Creates `manifest`, the object `name` of `api`'s resource (posted as is, so fields our
/// typed models do not know reach the API server), or finds it already created by `flow`.
/// `reason` is the planner reason a permanent refusal gets.
async fn create_owned<T>(
    api: &Api<T>,
    flow: &JobFlow,
    name: &str,
    manifest: &serde_json::Value,
    kind: &str,
    reason: &'static str,
) -> Result<Created<T>, kube::Error>
where
    T: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = name.to_owned();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let body = serde_json::to_vec(manifest).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(api.resource_url())
        .create(&params, body)
        .map_err(kube::Error::BuildRequest)?;
    let client = api.clone().into_client();
    let error = match within(client.request::<T>(request)).await {
        Ok(created) => return Ok(Created::Ours(created)),
        Err(error) => error,
    };
    if let kube::Error::Api(status) = &error
        && status.is_already_exists()
    {
        let existing = within(api.get(&name)).await?;
        return Ok(match foreign_owner(flow, existing.meta()) {
            None => Created::Ours(existing),
            Some(owner) => Created::Refused(
                name.clone(),
                Refusal {
                    reason: if reason == reasons::JOB_REJECTED {
                        reasons::NAME_CONFLICT
                    } else {
                        reason
                    },
                    message: format!(
                        "a {kind} named {name} already exists and belongs to {owner}, not to this \
                         flow; delete or rename that {kind}, or rename the flow"
                    ),
                },
            ),
        });
    }
    match permanent_refusal(&error) {
        Some(message) => Ok(Created::Refused(
            name.clone(),
            Refusal {
                reason,
                message: format!("the API server refused {kind} {name}: {message}"),
            },
        )),
        None => Err(error),
    }
}

/// Who controls an existing object, if not `flow` (`None` when it is the flow's own).
fn foreign_owner(
    flow: &JobFlow,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    match controller {
        Some(owner) if Some(&owner.uid) == flow.metadata.uid.as_ref() => None,
        Some(owner) => Some(format!("{} {} (uid {})", owner.kind, owner.name, owner.uid)),
        None => Some("no controller (someone created it by hand)".to_owned()),
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
    let failed = |source| Error::CreateResource {
        kind: kind.to_owned(),
        name: name.to_owned(),
        source,
    };
    begin_write(ctx, Operation::Create, Res::of_kind(kind))?;
    match create_owned(&api, flow, name, object, kind, reasons::RESOURCE_REJECTED)
        .await
        .map_err(failed)?
    {
        Created::Ours(_) => Ok(None),
        Created::Refused(name, refusal) => Ok(Some((name, refusal))),
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
    begin_write(ctx, Operation::Create, Res::Jobs)?;
    create_owned(
        &api,
        flow,
        name,
        job.manifest(),
        "Job",
        reasons::JOB_REJECTED,
    )
    .await
    .map_err(|source| Error::CreateJob {
        name: name.to_owned(),
        source,
    })
}

/// Deletes a Job and, in the background, its pods. A Job already gone is fine.
async fn delete_job(ctx: &Context, namespace: &str, deletion: &JobDeletion) -> Result<(), Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    begin_write(ctx, Operation::Delete, Res::Jobs)?;
    match within(api.delete(&deletion.name, &DeleteParams::background())).await {
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

/// Publishes the plan's Events on the flow, in order, from a task of their own: Events are for
/// people and hold back neither the status nor the next reconcile. Each is stamped now and asks
/// the leadership guard right before its create; a failure is logged, not retried. Events still
/// being sent when the agent exits are lost.
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
            if begin_write(&ctx, Operation::CreateEvent, Res::Events).is_err() {
                return;
            }
            if let Err(error) = within(ctx.events.create(&event)).await {
                tracing::warn!(reason, error = %chain(&error), "publishing an Event failed");
            }
        }
    });
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
    begin_write(ctx, Operation::PatchStatus, Res::JobFlows)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut written = within(api.patch_status(&flow.name_any(), &params, &Patch::Apply(&body)))
        .await
        .map_err(|source| Error::PatchStatus { source })?;
    ctx.metrics.status_written(started.elapsed());
    ctx.caches.keep_flow(&mut written);
    ctx.caches.written.record(written);
    let old = flow.status.clone().unwrap_or_default();
    ctx.metrics.status_changed(&old, status, Timestamp::now());
    Ok(())
}

/// Deletes the flow (its TTL expired); its Jobs follow by garbage collection.
async fn delete_flow(ctx: &Context, flow: &JobFlow, namespace: &str) -> Result<(), Error> {
    let api: Api<JobFlow> = Api::namespaced(ctx.client.clone(), namespace);
    begin_write(ctx, Operation::Delete, Res::JobFlows)?;
    match within(api.delete(&flow.name_any(), &DeleteParams::background())).await {
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
}
