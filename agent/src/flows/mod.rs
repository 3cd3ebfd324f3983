//! The JobFlow controller: a kube-runtime Controller per scope, fed by its [`triggers`] on the
//! caches. One reconcile ([`reconcile`]) takes the flow's turn ([`key_locks`]), reads its
//! [`view`], asks the pure planner (`jobflow::planner`) and carries the plan out ([`apply`]).

pub mod apply;
pub mod context;
pub mod error;
pub mod key_locks;
pub mod queue;
pub mod reconcile;
pub mod triggers;
pub mod view;

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod mock;
#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod reconcile_tests;

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, stream};
use jobflow::api::JobFlow;
use kube::Client;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;

use self::context::Context;
use self::error::{Error, retry_delay};
use self::queue::Queue;
use self::reconcile::reconcile;
use self::triggers::Triggers;
use crate::error::chain;
use crate::kube::caches::Caches;

/// One scope's caches and controller queue.
#[derive(Debug)]
pub struct Scope {
    /// The caches and per-flow index.
    pub caches: Arc<Caches>,
    /// The controller's queue.
    pub queue: Arc<Queue>,
}

impl Scope {
    /// Starts the watches of `namespace` (all when `None`), their changes triggering the
    /// controller's queue; the watches live as long as the process.
    pub fn start(client: &Client, namespace: Option<String>) -> Self {
        let (caches, writers) = Caches::new(namespace);
        let queue = Arc::new(Queue::default());
        let triggers = Arc::new(Triggers::new(caches.flows.clone(), Arc::clone(&queue)));
        drop(caches.start(client, writers, triggers));
        Self { caches, queue }
    }
}

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
    let queue = Arc::clone(&ctx.queue);
    let triggers = queue.attach();
    queue.send(
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
    queue.detach();
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
    let delay = retry_delay(ctx.caches.index.reconcile_failed(&flow));
    tracing::warn!(
        flow = %ObjectRef::from_obj(&*flow),
        error = %chain(error),
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}
