//! Which flow an object belongs to: the one home of the ownership rule.
//!
//! The agent labels every Job and pod it makes with `workflow.kube-zen.io/flow` (the flow's
//! name), which finds a flow's objects (the index, the triggers); an object is the flow's only
//! if an owner reference also carries the flow's UID, so a flow re-created under the same name
//! never adopts the Jobs of its predecessor.

use jobflow::api::JobFlow;
use jobflow::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A flow's (namespace, name).
pub type FlowKey = (String, String);

/// The key of `flow`.
pub fn flow_key(flow: &JobFlow) -> Option<FlowKey> {
    Some((
        flow.metadata.namespace.clone()?,
        flow.metadata.name.clone()?,
    ))
}

/// The key of the flow whose label the object with `meta` carries.
pub fn labelled_flow(meta: &ObjectMeta) -> Option<FlowKey> {
    let flow = meta.labels.as_ref()?.get(labels::FLOW)?;
    Some((meta.namespace.clone()?, flow.clone()))
}

/// Whether the object with `meta` is one of `flow`'s: same namespace, the flow label names it
/// and an owner reference carries its UID.
pub fn is_flow_object(flow: &JobFlow, meta: &ObjectMeta) -> bool {
    let Some(uid) = &flow.metadata.uid else {
        return false;
    };
    labelled_flow(meta).is_some_and(|key| Some(key) == flow_key(flow))
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|owner| &owner.uid == uid)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{flow, job};

    #[test]
    fn flow_objects_need_the_label_and_the_owner_uid() {
        let f = flow("f", "u1", None, 0);
        assert!(is_flow_object(&f, &job("f-a-1", "f", "u1").metadata));
        assert!(
            !is_flow_object(&f, &job("f-a-1", "f", "old-uid").metadata),
            "a predecessor's Job"
        );
        assert!(
            !is_flow_object(&f, &job("g-a-1", "g", "u1").metadata),
            "another flow's label"
        );
        let mut elsewhere = job("f-a-1", "f", "u1");
        elsewhere.metadata.namespace = Some("other".to_owned());
        assert!(!is_flow_object(&f, &elsewhere.metadata));
        assert_eq!(
            labelled_flow(&elsewhere.metadata),
            Some(("other".to_owned(), "f".to_owned()))
        );
    }
}
