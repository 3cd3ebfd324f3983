//! What every reconcile of one scope shares.

use std::sync::Arc;

use kube::Client;

use crate::caches::Caches;
use crate::events::EventPublisher;
use crate::key_locks::KeyLocks;
use crate::leader::Leadership;
use crate::metrics::Metrics;

/// The reconcile context of one scope.
pub struct Context {
    /// The API client, for writes only.
    pub client: Client,
    /// The scope's caches, the only source of reads.
    pub caches: Arc<Caches>,
    /// Publishes the plan's Events.
    pub events: EventPublisher,
    /// Serializes reconciles of flows that share a concurrency key.
    pub key_locks: KeyLocks,
    /// The agent's series.
    pub metrics: Arc<Metrics>,
    /// Whether this replica may write now: asked before every API write.
    pub leadership: Leadership,
}
