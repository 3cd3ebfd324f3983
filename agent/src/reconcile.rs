//! One reconcile: observe from the caches, plan (pure), carry the plan out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobflow::api::JobFlow;
use jobflow::planner::{self, Plan};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::apply;
use crate::confirm;
use crate::context::Context;
use crate::error::Error;
use crate::observe;

/// How soon a flow is planned again after the API server refused one of its objects.
const REPLAN_AFTER_REFUSAL: Duration = Duration::from_millis(100);
/// How soon a flow is looked at again when the cache moved on to a newer generation while its
/// reconcile was queued (that generation's event wakes it too; this is only a backstop).
const REPLAN_AFTER_NEWER_GENERATION: Duration = Duration::from_secs(1);

/// Reconciles one flow.
pub async fn reconcile(flow: Arc<JobFlow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.caches.triggers.started(&ObjectRef::from_obj(&*flow));
    let flow = ctx.caches.freshest_flow(flow);
    // The cache holds flows without their templates; the plan needs them.
    let Some(flow) = ctx.caches.templates.restore(&flow) else {
        tracing::debug!(flow = %flow.name_any(), "the cache holds a newer generation; waiting for its event");
        return Ok(Action::requeue(REPLAN_AFTER_NEWER_GENERATION));
    };
    let result = run(&flow, &ctx).await;
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.caches
            .flow_states
            .reconcile_succeeded(&flow.uid().unwrap_or_default());
    }
    ctx.caches.forget_if_gone(&flow);
    result
}

async fn run(flow: &JobFlow, ctx: &Arc<Context>) -> Result<Action, Error> {
    let namespace = flow.namespace().ok_or(Error::ReadNamespace)?;
    let _turn = match flow.spec.execution_policy.concurrency_key() {
        Some(key) => Some(ctx.key_locks.lock(&namespace, key).await),
        None => None,
    };
    let (mut jobs, stand_in_ends) = flow_jobs(flow, ctx);
    confirm::confirm_missing(ctx, flow, &namespace, &mut jobs).await?;
    let plan = plan(flow, ctx, &namespace, &jobs);
    let carried = apply::carry_out(ctx, flow, &namespace, &plan).await?;
    if carried.refused {
        // The next plan turns the refusal into the step's or the flow's failure.
        return Ok(Action::requeue(REPLAN_AFTER_REFUSAL));
    }
    // A Job that stands in for the cache is looked at again when it stops standing in: if the
    // watch never showed it, the next plan sees it missing (and confirms that it is).
    let stand_in = stand_in_ends.map(|ends| ends.saturating_duration_since(Instant::now()));
    Ok(match (plan.requeue_after, stand_in) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(wait), None) | (None, Some(wait)) => Action::requeue(wait),
        (None, None) => Action::await_change(),
    })
}

/// The flow's Jobs from the cache, plus those this agent applied that the watch has not
/// delivered yet; and when the first of those stops standing in for the cache.
fn flow_jobs(flow: &JobFlow, ctx: &Context) -> (Vec<Arc<Job>>, Option<Instant>) {
    let namespace = flow.metadata.namespace.as_deref().unwrap_or_default();
    let cached = ctx
        .caches
        .flow_jobs
        .objects(&ctx.caches.jobs, namespace, &flow.name_any())
        .iter()
        .filter(|job| observe::is_flow_object(flow, &job.metadata))
        .map(|job| Arc::new(job.job()))
        .collect();
    ctx.caches.applied.with_unseen(
        cached,
        |job| observe::is_flow_job(flow, job),
        Instant::now(),
    )
}

/// Gathers what the caches show of `flow` and asks the planner what to do. Synchronous: no
/// cache borrow outlives it.
fn plan(flow: &JobFlow, ctx: &Context, namespace: &str, jobs: &[Arc<Job>]) -> Plan {
    let started = Instant::now();
    let compiled = ctx.caches.flow_states.compiled(flow);
    let name = flow.name_any();
    let pods: Vec<_> = ctx
        .caches
        .flow_pods
        .objects(&ctx.caches.pods, namespace, &name)
        .iter()
        .map(|pod| Arc::new(pod.pod()))
        .collect();
    let flows = match flow.spec.execution_policy.concurrency_key() {
        // Peers as this agent last wrote them, even before the watch delivers those writes.
        Some(_) => ctx
            .caches
            .flows
            .state_filter(|other| other.metadata.namespace.as_deref() == Some(namespace))
            .into_iter()
            .map(|other| ctx.caches.written.freshest(other))
            .collect(),
        None => Vec::new(),
    };
    let mut observed = observe::observed(flow, jobs, &pods, &flows);
    observed.refused = ctx
        .caches
        .flow_states
        .refused(&flow.uid().unwrap_or_default());
    let plan = planner::plan(
        flow,
        compiled.as_ref().as_ref(),
        &observed,
        Timestamp::now(),
    );
    ctx.metrics.planned(started.elapsed());
    plan
}
