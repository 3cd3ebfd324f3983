//! Which flows to reconcile when a cached object changes: the flow controller's
//! [`Listener`] on the caches.

use std::sync::Arc;

use jobflow::api::{FlowPhase, JobFlow};
use jobflow::planner::{PeerFlow, pod_failure, pod_trouble, termination_message};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use super::queue::{FlowRef, Queue};
use crate::kube::caches::Listener;
use crate::kube::owner::labelled_flow;
use crate::kube::slim::{CachedJob, CachedPod, pod_event};

/// Flows to reconcile after a flow event; `old` is the cached flow before the event.
///
/// A flow always wakes itself. When a flow with a `concurrencyKey` appears, changes phase, starts
/// deleting or is deleted, its unfinished peers wake too: one of them may now take its turn.
pub fn for_flow(
    flows: &Store<JobFlow>,
    old: Option<&JobFlow>,
    event: &Event<JobFlow>,
) -> Vec<FlowRef> {
    match event {
        Event::Apply(new) => {
            let mut wake = vec![ObjectRef::from_obj(new)];
            if turn_may_change(old, new) {
                wake.extend(unfinished_peers(flows, new));
            }
            wake
        }
        Event::InitApply(new) => vec![ObjectRef::from_obj(new)],
        Event::Delete(gone) => unfinished_peers(flows, gone),
        Event::Init | Event::InitDone => Vec::new(),
    }
}

/// The flow of a Job that was added, changed or deleted.
pub fn for_job<K: Resource>(event: &Event<K>) -> Vec<FlowRef> {
    match event {
        Event::Apply(job) | Event::InitApply(job) | Event::Delete(job) => {
            flow_of(job).into_iter().collect()
        }
        Event::Init | Event::InitDone => Vec::new(),
    }
}

/// The flow of a pod whose news its planner reads; `old` is the cached pod before the event.
///
/// A pod wakes its flow when it succeeded (its termination message is now readable), when it
/// fails (how it failed is now readable), when it becomes stuck, is stuck otherwise (see [`pod_trouble`]) or stops being stuck, and when a
/// stuck pod goes away. Other pod updates (a pod starting, its conditions moving on) wake
/// nobody.
pub fn for_pod(old: Option<&Pod>, event: &Event<Pod>) -> Vec<FlowRef> {
    let wakes = match event {
        Event::Apply(pod) | Event::InitApply(pod) => {
            termination_message(pod).is_some()
                || pod_trouble(pod) != old.and_then(pod_trouble)
                || (pod_failure(pod).is_some() && old.and_then(pod_failure).is_none())
        }
        Event::Delete(pod) => pod_trouble(pod).is_some() || old.and_then(pod_trouble).is_some(),
        Event::Init | Event::InitDone => false,
    };
    match event {
        Event::Apply(pod) | Event::InitApply(pod) | Event::Delete(pod) if wakes => {
            flow_of(pod).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// The flow whose label `object` carries.
fn flow_of<K: Resource>(object: &K) -> Option<FlowRef> {
    let (namespace, name) = labelled_flow(object.meta())?;
    Some(ObjectRef::new(&name).within(&namespace))
}

fn turn_may_change(old: Option<&JobFlow>, new: &JobFlow) -> bool {
    if new.spec.execution_policy.concurrency_key().is_none() {
        return false;
    }
    let Some(old) = old else { return true };
    let phase = |f: &JobFlow| f.status.as_ref().and_then(|s| s.phase);
    phase(old) != phase(new)
        || (old.metadata.deletion_timestamp.is_none() && new.metadata.deletion_timestamp.is_some())
}

fn unfinished_peers(flows: &Store<JobFlow>, flow: &JobFlow) -> Vec<FlowRef> {
    if flow.spec.execution_policy.concurrency_key().is_none() {
        return Vec::new();
    }
    flows
        .state_filter(|other| {
            PeerFlow::is_peer_of(other, flow)
                && !other
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(FlowPhase::is_terminal)
        })
        .iter()
        .map(|peer| ObjectRef::from_obj(&**peer))
        .collect()
}

/// The flow controller's listener on the caches: each change becomes the flows to reconcile.
pub struct Triggers {
    flows: Store<JobFlow>,
    queue: Arc<Queue>,
}

impl Triggers {
    /// Triggers that send to `queue` the flows of `flows` (the flow cache) a change concerns.
    pub fn new(flows: Store<JobFlow>, queue: Arc<Queue>) -> Self {
        Self { flows, queue }
    }

    /// Sends the flows among `flows` that the flow cache holds. A Job or pod event of a flow
    /// that is gone (its Jobs are deleted after it) wakes nothing: the controller would never
    /// reconcile it, and the trigger would stay pending.
    fn send_existing(&self, flows: Vec<FlowRef>) {
        self.queue.send(
            flows
                .into_iter()
                .filter(|flow| self.flows.get(flow).is_some()),
        );
    }
}

impl Listener for Triggers {
    fn flow(&self, flows: &Store<JobFlow>, old: Option<&JobFlow>, event: &Event<JobFlow>) {
        self.queue.send(for_flow(flows, old, event));
        if let Event::Delete(gone) = event {
            self.queue.forget(&ObjectRef::from_obj(gone));
        }
    }

    fn job(&self, event: &Event<CachedJob>) {
        self.send_existing(for_job(event));
    }

    fn pod(&self, old: Option<&CachedPod>, event: &Event<CachedPod>) {
        let old = old.map(CachedPod::pod);
        self.send_existing(for_pod(old.as_ref(), &pod_event(event)));
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{flow, job, pod};
    use jobflow::api::JobFlowStatus;
    use jobflow::labels;
    use kube::runtime::reflector;

    fn store_of(flows: &[JobFlow]) -> Store<JobFlow> {
        let (reader, mut writer) = reflector::store();
        for f in flows {
            writer.apply_watcher_event(&Event::Apply(f.clone()));
        }
        reader
    }

    fn names(refs: &[FlowRef]) -> Vec<&str> {
        let mut n: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        n.sort_unstable();
        n
    }

    fn with_phase(mut f: JobFlow, phase: FlowPhase) -> JobFlow {
        f.status = Some(JobFlowStatus {
            phase: Some(phase),
            ..JobFlowStatus::default()
        });
        f
    }

    #[test]
    fn a_finished_flow_wakes_its_waiting_peers() {
        let running = with_phase(flow("a", "ua", Some("k"), 1), FlowPhase::Running);
        let waiting = with_phase(flow("b", "ub", Some("k"), 2), FlowPhase::Pending);
        let done_peer = with_phase(flow("c", "uc", Some("k"), 3), FlowPhase::Failed);
        let unrelated = flow("d", "ud", Some("other"), 4);
        let store = store_of(&[running.clone(), waiting, done_peer, unrelated]);
        let finished = with_phase(running.clone(), FlowPhase::Succeeded);
        let wake = for_flow(&store, Some(&running), &Event::Apply(finished));
        assert_eq!(names(&wake), ["a", "b"]);
        // A status write that keeps the phase wakes only the flow itself.
        let same = for_flow(&store, Some(&running), &Event::Apply(running.clone()));
        assert_eq!(names(&same), ["a"]);
        // Deleted: the peers wake.
        assert_eq!(
            names(&for_flow(
                &store,
                Some(&running),
                &Event::Delete(running.clone())
            )),
            ["b"]
        );
    }

    #[test]
    fn flows_without_a_key_wake_only_themselves() {
        let a = flow("a", "ua", None, 1);
        let store = store_of(&[a.clone(), flow("b", "ub", None, 2)]);
        assert_eq!(
            names(&for_flow(&store, None, &Event::Apply(a.clone()))),
            ["a"]
        );
        assert!(for_flow(&store, Some(&a), &Event::Delete(a.clone())).is_empty());
    }

    #[test]
    fn jobs_wake_their_owner_and_succeeded_pods_their_flow() {
        let j = job("f-a-1", "f", "u");
        for event in [
            Event::Apply(j.clone()),
            Event::Delete(j.clone()),
            Event::InitApply(j),
        ] {
            assert_eq!(names(&for_job(&event)), ["f"]);
        }
        let mut p = pod("f-a-1-x", ("job-name", "f-a-1"), "Succeeded", Some("{}"));
        p.metadata
            .labels
            .get_or_insert_default()
            .insert(labels::FLOW.to_owned(), "f".to_owned());
        assert_eq!(names(&for_pod(None, &Event::Apply(p.clone()))), ["f"]);
        assert!(for_pod(Some(&p), &Event::Delete(p.clone())).is_empty());
        let mut running = p.clone();
        running.status.as_mut().unwrap().phase = Some("Running".to_owned());
        running.status.as_mut().unwrap().container_statuses = None;
        assert!(for_pod(None, &Event::Apply(running)).is_empty());
    }

    #[test]
    fn a_pod_wakes_its_flow_once_when_it_fails() {
        let mut failed = pod(
            "f-a-1-x",
            ("job-name", "f-a-1"),
            "Failed",
            Some("disk full"),
        );
        failed
            .metadata
            .labels
            .get_or_insert_default()
            .insert(labels::FLOW.to_owned(), "f".to_owned());
        for container in failed
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .iter_mut()
            .flatten()
        {
            container
                .state
                .as_mut()
                .unwrap()
                .terminated
                .as_mut()
                .unwrap()
                .exit_code = 3;
        }
        let mut running = failed.clone();
        running.status.as_mut().unwrap().phase = Some("Running".to_owned());
        running.status.as_mut().unwrap().container_statuses = None;
        let apply = |pod: &Pod| Event::Apply(pod.clone());
        assert_eq!(names(&for_pod(Some(&running), &apply(&failed))), ["f"]);
        assert!(
            for_pod(Some(&failed), &apply(&failed)).is_empty(),
            "an update of a pod that had already failed"
        );
    }

    #[test]
    fn pods_wake_their_flow_when_they_become_or_stop_being_stuck() {
        use k8s_openapi::api::core::v1::PodCondition;
        let mut starting = pod("f-a-1-x", ("job-name", "f-a-1"), "Pending", None);
        starting
            .metadata
            .labels
            .get_or_insert_default()
            .insert(labels::FLOW.to_owned(), "f".to_owned());
        starting.status.as_mut().unwrap().container_statuses = None;
        let unschedulable = |message: &str| {
            let mut stuck = starting.clone();
            stuck.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "PodScheduled".to_owned(),
                status: "False".to_owned(),
                reason: Some("Unschedulable".to_owned()),
                message: Some(message.to_owned()),
                ..PodCondition::default()
            }]);
            stuck
        };
        let stuck = unschedulable("0/3 nodes are available");
        let apply = |pod: &Pod| Event::Apply(pod.clone());
        assert!(
            for_pod(None, &apply(&starting)).is_empty(),
            "a new pod that is not stuck"
        );
        assert_eq!(names(&for_pod(Some(&starting), &apply(&stuck))), ["f"]);
        assert!(
            for_pod(Some(&stuck), &apply(&stuck)).is_empty(),
            "still stuck the same way"
        );
        let other_words = unschedulable("0/4 nodes are available");
        assert_eq!(names(&for_pod(Some(&stuck), &apply(&other_words))), ["f"]);
        assert_eq!(names(&for_pod(Some(&stuck), &apply(&starting))), ["f"]);
        assert_eq!(
            names(&for_pod(Some(&stuck), &Event::Delete(stuck.clone()))),
            ["f"]
        );
        assert_eq!(
            names(&for_pod(None, &Event::InitApply(stuck.clone()))),
            ["f"]
        );
        assert!(for_pod(None, &Event::Delete(starting.clone())).is_empty());
    }
}
