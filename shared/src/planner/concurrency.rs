//! Flows sharing a `concurrencyKey` in a namespace follow `concurrencyPolicy`.
//!
//! Older flows go first: by creation time, then (creation times have whole seconds) a started
//! flow before one that has not, then by name. Forbid and Replace both make a newer flow
//! wait while an older one is unfinished; under Replace the older flow also stops itself as soon
//! as it sees the newer one, so the wait is short.

use super::state::Planning;
use crate::api::{ConcurrencyPolicy, FlowPhase};

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

impl Planning<'_> {
    /// Decides whether this flow may run, must wait, or must stop for a newer one.
    pub fn concurrency_gate(&self) -> Gate {
        let policy = &self.flow.spec.execution_policy;
        let Some(key) = policy
            .concurrency_key
            .as_deref()
            .filter(|key| !key.is_empty())
        else {
            return Gate::Proceed;
        };
        let me = (
            self.flow
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|time| time.0),
            self.flow
                .status
                .as_ref()
                .is_none_or(|status| status.start_time.is_none()),
            self.flow.metadata.name.as_deref().unwrap_or_default(),
        );
        let is_older =
            |peer: &super::PeerFlow| (Some(peer.created), !peer.started, peer.name.as_str()) < me;
        let unfinished = |peer: &super::PeerFlow| !peer.phase.is_some_and(FlowPhase::is_terminal);

        if let Some(newer) = self.observed.peers.iter().find(|peer| {
            !is_older(peer)
                && unfinished(peer)
                && peer.policy == ConcurrencyPolicy::Replace
                && peer.name != me.2
        }) {
            return Gate::Stop(format!(
                "replaced by the newer flow {:?} (concurrencyKey {key:?}, concurrencyPolicy Replace)",
                newer.name
            ));
        }
        if policy.concurrency_policy == ConcurrencyPolicy::Allow {
            return Gate::Proceed;
        }
        let oldest_unfinished = self
            .observed
            .peers
            .iter()
            .filter(|peer| is_older(peer) && unfinished(peer))
            .min_by(|a, b| (a.created, !a.started, &a.name).cmp(&(b.created, !b.started, &b.name)));
        match oldest_unfinished {
            Some(peer) => Gate::Wait(format!(
                "waiting for flow {:?} to finish (concurrencyKey {key:?}, concurrencyPolicy {:?})",
                peer.name, policy.concurrency_policy
            )),
            None => Gate::Proceed,
        }
    }
}
