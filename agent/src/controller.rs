//! The kube-runtime Controller of one scope, fed by the caches' triggers.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, stream};
use jobflow::api::JobFlow;
use kube::ResourceExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;

use crate::context::Context;
use crate::error::{Error, chain};
use crate::reconcile::reconcile;

/// Runs the controller until `shutdown` resolves and the reconciles in flight have finished.
///
/// Every cached flow is reconciled first (a new leader may have missed anything); after that,
/// flows are reconciled when the caches see a change that concerns them, or when a plan asked to
/// look again.
pub async fn run(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let caches = Arc::clone(&ctx.caches);
    let triggers = caches.triggers.attach();
    caches.triggers.send(
        caches
            .flows
            .state()
            .iter()
            .map(|flow| ObjectRef::from_obj(&**flow)),
    );
    tracing::info!(
        namespace = caches.namespace.as_deref().unwrap_or("*"),
        "controller started"
    );
    Controller::for_stream(stream::empty(), caches.flows.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            match result {
                Ok((flow, _)) => tracing::trace!(%flow, "reconciled"),
                // Failed reconciles were logged by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => tracing::debug!(error = %chain(&error), "controller"),
            }
            std::future::ready(())
        })
        .await;
    caches.triggers.detach();
    tracing::info!(
        namespace = caches.namespace.as_deref().unwrap_or("*"),
        "controller stopped"
    );
}

/// After a failed reconcile: count it and retry after a delay that doubles with each failure in
/// a row.
#[allow(
    clippy::needless_pass_by_value,
    reason = "the signature kube-runtime calls"
)]
fn error_policy(flow: Arc<JobFlow>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    let delay = ctx
        .caches
        .flow_states
        .reconcile_failed(&flow.uid().unwrap_or_default());
    ctx.caches.forget_if_gone(&flow);
    tracing::warn!(
        flow = %ObjectRef::from_obj(&*flow),
        error = %chain(error),
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}
