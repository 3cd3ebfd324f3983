//! One reconcile of one flow: lock → view → plan → apply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobflow::api::JobFlow;
use jobflow::planner::{self, Plan};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::apply::{self, Carried};
use super::context::Context;
use super::error::Error;
use super::view::{self, View};

/// How soon a flow is planned again after the API server refused one of its objects (the next
/// plan turns the refusal into the step's or the flow's failure).
const REPLAN_AFTER_REFUSAL: Duration = Duration::from_millis(100);
/// How soon a flow is looked at again when the index does not hold its newest generation yet,
/// or its concurrency key changed while it waited for the lock (that change's event wakes it
/// too; this is only a backstop).
const REPLAN_AFTER_NEWER_GENERATION: Duration = Duration::from_secs(1);

/// Reconciles one flow.
pub async fn reconcile(queued: Arc<JobFlow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.queue.started(&ObjectRef::from_obj(&*queued));
    let result = turn(Arc::clone(&queued), &ctx).await;
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.caches.index.reconcile_succeeded(&queued);
    }
    result
}

async fn turn(queued: Arc<JobFlow>, ctx: &Arc<Context>) -> Result<Action, Error> {
    // Lock: one reconcile at a time per concurrency key, so peers see each other's decisions.
    let newest = view::newest(&ctx.caches, queued, Instant::now());
    let namespace = newest
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::ReadNamespace)?;
    let key = newest
        .spec
        .execution_policy
        .concurrency_key()
        .map(str::to_owned);
    let _turn = match &key {
        Some(key) => Some(ctx.key_locks.lock(namespace, key).await),
        None => None,
    };
    // View: everything the plan reads, read under the lock.
    let Some(mut view) = View::of(&ctx.caches, newest, Instant::now()) else {
        tracing::debug!("the index lacks the newest generation's templates; waiting for its event");
        return Ok(Action::requeue(REPLAN_AFTER_NEWER_GENERATION));
    };
    if view.flow.spec.execution_policy.concurrency_key() != key.as_deref() {
        return Ok(Action::requeue(REPLAN_AFTER_NEWER_GENERATION));
    }
    view.confirm_missing(ctx).await?;
    // Plan (pure), then apply.
    let plan = plan(&view, ctx);
    let carried = apply::carry_out(ctx, &view.flow, &plan).await?;
    Ok(next(&plan, carried, view.recheck_at))
}

fn plan(view: &View, ctx: &Context) -> Plan {
    let started = Instant::now();
    let plan = planner::plan(
        &view.flow,
        view.compiled.as_ref().as_ref(),
        &view.observed(),
        Timestamp::now(),
    );
    ctx.metrics.planned(started.elapsed());
    plan
}

/// When to look at the flow again: at once after a refusal, else at the earlier of what the
/// plan asked and the end of a Job standing in for the cache, else on the next change.
fn next(plan: &Plan, carried: Carried, recheck_at: Option<Instant>) -> Action {
    if carried.refused {
        return Action::requeue(REPLAN_AFTER_REFUSAL);
    }
    let recheck = recheck_at.map(|at| at.saturating_duration_since(Instant::now()));
    match (plan.requeue_after, recheck) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(wait), None) | (None, Some(wait)) => Action::requeue(wait),
        (None, None) => Action::await_change(),
    }
}
