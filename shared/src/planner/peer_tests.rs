//! Who is a concurrency peer of a flow ([`peers`], [`PeerFlow::is_peer_of`]).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{PeerFlow, peers};
use crate::api::{
    ConcurrencyPolicy, ExecutionPolicy, FlowPhase, JobFlow, JobFlowSpec, JobFlowStatus,
};

fn flow(name: &str, uid: &str, key: Option<&str>, created: i64) -> JobFlow {
    let mut f = JobFlow::new(name, JobFlowSpec::default());
    f.metadata.namespace = Some("ns".to_owned());
    f.metadata.uid = Some(uid.to_owned());
    f.metadata.creation_timestamp = Timestamp::from_second(created).ok().map(Time);
    f.spec.execution_policy.concurrency_key = key.map(str::to_owned);
    f
}

#[test]
fn an_empty_key_is_no_key() {
    let mut policy = ExecutionPolicy::default();
    assert_eq!(policy.concurrency_key(), None);
    policy.concurrency_key = Some(String::new());
    assert_eq!(policy.concurrency_key(), None);
    policy.concurrency_key = Some("db".to_owned());
    assert_eq!(policy.concurrency_key(), Some("db"));
}

#[test]
fn a_peer_shares_namespace_and_key_and_is_another_object() {
    let me = flow("me", "u0", Some("k"), 0);
    assert!(PeerFlow::is_peer_of(&flow("p", "u1", Some("k"), 0), &me));
    assert!(!PeerFlow::is_peer_of(&me, &me), "itself");
    let mut renamed_self = flow("other-name", "u0", Some("k"), 0);
    assert!(!PeerFlow::is_peer_of(&renamed_self, &me), "the same UID");
    renamed_self.metadata.uid = Some("u2".to_owned());
    renamed_self.metadata.namespace = Some("elsewhere".to_owned());
    assert!(
        !PeerFlow::is_peer_of(&renamed_self, &me),
        "another namespace"
    );
    assert!(
        !PeerFlow::is_peer_of(&flow("p", "u3", Some("j"), 0), &me),
        "another key"
    );
    let keyless = flow("n", "u4", None, 0);
    let empty = flow("e", "u5", Some(""), 0);
    assert!(!PeerFlow::is_peer_of(&empty, &keyless), "no key, no peers");
    assert!(
        !PeerFlow::is_peer_of(&keyless, &empty),
        "an empty key is none"
    );
}

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
