//! What every reconcile of one scope shares.

use std::sync::Arc;

use kube::Client;

use super::key_locks::KeyLocks;
use super::queue::Queue;
use crate::kube::caches::Caches;
use crate::kube::call::Calls;
use crate::kube::events::EventPublisher;
use crate::metrics::Metrics;

/// The reconcile context of one scope.
pub struct Context {
    /// The API client, for the calls made through [`Context::calls`].
    pub client: Client,
    /// Timed, counted calls; writes only while this replica may lead.
    pub calls: Calls,
    /// The scope's caches and per-flow index, the only source of reads.
    pub caches: Arc<Caches>,
    /// The scope's controller queue.
    pub queue: Arc<Queue>,
    /// Publishes the plan's Events.
    pub events: EventPublisher,
    /// Serializes reconciles of flows that share a concurrency key.
    pub key_locks: KeyLocks,
    /// The agent's series.
    pub metrics: Arc<Metrics>,
}
