//! A flow's concurrency peers: the other flows of its namespace with its `concurrencyKey`.
//! (Interim home in the agent: the rule moves to `jobflow` as `ExecutionPolicy::concurrency_key`
//! and `PeerFlow::is_peer_of`.)

use jobflow::api::JobFlow;
use jobflow::planner::PeerFlow;

/// The flow's `concurrencyKey`, if set and not empty.
pub fn concurrency_key(flow: &JobFlow) -> Option<&str> {
    flow.spec
        .execution_policy
        .concurrency_key
        .as_deref()
        .filter(|k| !k.is_empty())
}

/// Whether `other` is a concurrency peer of `flow`: same namespace, another UID, same key.
pub fn is_peer_of(other: &JobFlow, flow: &JobFlow) -> bool {
    concurrency_key(flow).is_some_and(|key| {
        other.metadata.namespace == flow.metadata.namespace
            && other.metadata.uid != flow.metadata.uid
            && concurrency_key(other) == Some(key)
    })
}

/// `flow`'s peers among `flows`, as the concurrency rules judge them, oldest first.
pub fn peers<'a>(flow: &JobFlow, flows: impl IntoIterator<Item = &'a JobFlow>) -> Vec<PeerFlow> {
    let mut peers: Vec<PeerFlow> = flows
        .into_iter()
        .filter(|other| is_peer_of(other, flow))
        .filter_map(PeerFlow::of)
        .collect();
    peers.sort_by(|a, b| a.turn().cmp(&b.turn()));
    peers
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::flow;
    use jobflow::api::{ConcurrencyPolicy, FlowPhase, JobFlowStatus};

    #[test]
    fn peers_share_namespace_and_key_oldest_first() {
        let me = flow("me", "u0", Some("k"), 50);
        let mut done = flow("done", "u1", Some("k"), 40);
        done.status = Some(JobFlowStatus {
            phase: Some(FlowPhase::Succeeded),
            ..JobFlowStatus::default()
        });
        let mut newer = flow("newer", "u2", Some("k"), 60);
        newer.spec.execution_policy.concurrency_policy = ConcurrencyPolicy::Replace;
        let other_key = flow("x", "u3", Some("other"), 10);
        let mut other_ns = flow("y", "u4", Some("k"), 10);
        other_ns.metadata.namespace = Some("elsewhere".to_owned());
        let all = [me.clone(), done, newer.clone(), other_key, other_ns];
        let p = peers(&me, &all);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["done", "newer"]);
        assert_eq!(p[0].phase, Some(FlowPhase::Succeeded));
        assert_eq!(p[1].phase, None);
        assert_eq!(p[1].policy, newer.spec.execution_policy.concurrency_policy);
    }

    #[test]
    fn no_key_no_peers() {
        let me = flow("me", "u0", None, 0);
        let twin = flow("twin", "u1", None, 0);
        assert!(peers(&me, [&me, &twin]).is_empty());
        let empty_key = flow("e", "u2", Some(""), 0);
        assert!(peers(&empty_key, [&empty_key, &twin]).is_empty());
    }
}
