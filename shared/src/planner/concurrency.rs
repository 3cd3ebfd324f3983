//! Flows sharing a `concurrencyKey` in a namespace follow `concurrencyPolicy`.
//!
//! Turns go by [`PeerFlow::turn`]: a started flow before one that has not, then by creation
//! time, then by name. Only a [live](PeerFlow::is_live) peer counts: one the agent has judged
//! (it has a status for its current spec), that has not finished and is not being deleted, so a
//! flow nobody has looked at yet, an invalid one or one on its way out neither blocks a `Forbid`
//! flow nor stops a running one with `Replace`. Forbid and Replace both make a newer flow wait
//! while an older live one runs; under Replace the older flow also stops itself as soon as it
//! sees the newer one, so the wait is short.

use jiff::Timestamp;

use super::PeerFlow;
use super::state::Planning;
use crate::api::{ConcurrencyPolicy, FlowPhase, JobFlow, JobFlowStatus};

/// What concurrency allows this flow to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Run.
    Proceed,
    /// Wait (only matters before the flow started); the message says for whom.
    Wait(String),
    /// Stop: a newer flow with policy Replace took over.
    Stop(String),
}

/// Whether a flow with `status` has had its turn and runs: it started, and no retry reopened it
/// since (a reopened flow is Pending until it gets its turn again).
pub fn has_turn(status: &JobFlowStatus) -> bool {
    status.start_time.is_some() && status.phase != Some(FlowPhase::Pending)
}

/// The other flows among `flows` that are concurrency peers of `flow` ([`PeerFlow::is_peer_of`]),
/// oldest turn first ([`PeerFlow::turn`]).
pub fn peers<'a>(flow: &JobFlow, flows: impl IntoIterator<Item = &'a JobFlow>) -> Vec<PeerFlow> {
    if flow.spec.execution_policy.concurrency_key().is_none() {
        return Vec::new();
    }
    let mut peers: Vec<PeerFlow> = flows
        .into_iter()
        .filter(|other| PeerFlow::is_peer_of(other, flow))
        .filter_map(PeerFlow::of)
        .collect();
    peers.sort_by(|a, b| a.turn().cmp(&b.turn()));
    peers
}

impl PeerFlow {
    /// Whether `other` is a concurrency peer of `flow`: in the same namespace, another object
    /// (a different UID) and with the same non-empty `concurrencyKey`.
    pub fn is_peer_of(other: &JobFlow, flow: &JobFlow) -> bool {
        flow.spec.execution_policy.concurrency_key().is_some()
            && other.metadata.namespace == flow.metadata.namespace
            && other.metadata.uid != flow.metadata.uid
            && other.spec.execution_policy.concurrency_key()
                == flow.spec.execution_policy.concurrency_key()
    }

    /// How the concurrency rules see `flow`, or None for an object without a name.
    pub fn of(flow: &JobFlow) -> Option<Self> {
        let status = flow.status.as_ref();
        Some(Self {
            name: flow.metadata.name.clone()?,
            // The API server always sets it; a flow without one sorts as the oldest.
            created: flow
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |time| time.0),
            phase: status.and_then(|status| status.phase),
            policy: flow.spec.execution_policy.concurrency_policy,
            started: status.is_some_and(has_turn),
            current: status.is_some_and(|status| {
                status.observed_generation.is_some()
                    && status.observed_generation == flow.metadata.generation
            }),
            deleting: flow.metadata.deletion_timestamp.is_some(),
        })
    }

    /// The order of turns: the smaller goes first.
    pub fn turn(&self) -> (bool, Timestamp, &str) {
        (!self.started, self.created, &self.name)
    }

    /// Whether the peer holds or waits for a turn: judged by the agent (a started flow always
    /// is), not finished, not being deleted.
    pub fn is_live(&self) -> bool {
        self.phase.is_some_and(|phase| !phase.is_terminal())
            && (self.started || self.current)
            && !self.deleting
    }
}

impl Planning<'_> {
    /// Decides whether this flow may run, must wait, or must stop for a newer one.
    pub fn concurrency_gate(&self) -> Gate {
        let policy = &self.flow.spec.execution_policy;
        let Some(key) = policy.concurrency_key() else {
            return Gate::Proceed;
        };
        let Some(mut me) = PeerFlow::of(self.flow) else {
            return Gate::Proceed;
        };
        // This pass may have reopened the flow (a retry): it is judged as it is now.
        me.started = has_turn(&self.status);
        let live = || {
            self.observed
                .peers
                .iter()
                .filter(|peer| peer.is_live() && peer.name != me.name)
        };
        if let Some(newer) =
            live().find(|peer| peer.turn() > me.turn() && peer.policy == ConcurrencyPolicy::Replace)
        {
            return Gate::Stop(format!(
                "replaced by the newer flow {:?} (concurrencyKey {key:?}, concurrencyPolicy Replace)",
                newer.name
            ));
        }
        if policy.concurrency_policy == ConcurrencyPolicy::Allow {
            return Gate::Proceed;
        }
        match live()
            .filter(|peer| peer.turn() < me.turn())
            .min_by(|a, b| a.turn().cmp(&b.turn()))
        {
            Some(peer) => Gate::Wait(format!(
                "waiting for flow {:?} to finish (concurrencyKey {key:?}, concurrencyPolicy {:?})",
                peer.name, policy.concurrency_policy
            )),
            None => Gate::Proceed,
        }
    }
}
