//! The watch caches of one scope (one namespace, or all): flows, the agent's Jobs and their
//! pods, each stripped to what the planner reads, plus the per-flow state
//! that lives and dies with the cached flows. Reconciles read only from here, never with a GET.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use jobflow::api::JobFlow;
use jobflow::labels;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::applied::AppliedJobs;
use crate::by_flow::ByFlow;
use crate::cached::{self, CachedJob, CachedPod};
use crate::error::chain;
use crate::flow_state::FlowStates;
use crate::strip;
use crate::templates::Templates;
use crate::triggers::{self, Triggers};
use crate::written::{self, Written};

/// One scope's caches and per-flow state.
#[derive(Debug)]
pub struct Caches {
    /// The namespace watched, or `None` for all.
    pub namespace: Option<String>,
    /// `JobFlows`.
    pub flows: Store<JobFlow>,
    /// Jobs labelled `workflow.kube-zen.io/managed-by=jobflow-agent` (metadata and status).
    pub jobs: Store<CachedJob>,
    /// Pods with the same label: succeeded ones for their termination messages, failed ones
    /// for how their containers failed, the others to tell why one is stuck (metadata and
    /// status).
    pub pods: Store<CachedPod>,
    /// The cached Jobs of each flow.
    pub flow_jobs: ByFlow,
    /// The cached pods of each flow.
    pub flow_pods: ByFlow,
    /// The controller's trigger channel.
    pub triggers: Triggers,
    /// Per-flow state: compiled spec, reconcile failures, refused writes.
    pub flow_states: FlowStates,
    /// Our own status writes the cache has not shown yet.
    pub written: Written,
    /// The step templates of the cached flows, as JSON text (the flows hold `None`).
    pub templates: Templates,
    /// Jobs we applied that the cache has not shown yet.
    pub applied: AppliedJobs,
    /// Turns true once every cache has synced.
    synced: watch::Sender<bool>,
}

/// The writers of one scope's caches.
pub struct Writers {
    flows: reflector::store::Writer<JobFlow>,
    jobs: reflector::store::Writer<CachedJob>,
    pods: reflector::store::Writer<CachedPod>,
}

/// The reflector's writer went away before the first list finished.
#[derive(Debug, thiserror::Error)]
#[error("waiting for the {kind} cache to fill")]
pub struct WaitForCacheError {
    kind: &'static str,
    source: reflector::store::WriterDropped,
}

impl Caches {
    /// Empty caches for one scope, and the writers that fill them (see [`Caches::start`]).
    pub fn new(namespace: Option<String>) -> (Arc<Self>, Writers) {
        let (flows, flow_writer) = reflector::store::<JobFlow>();
        let (jobs, job_writer) = reflector::store::<CachedJob>();
        let (pods, pod_writer) = reflector::store::<CachedPod>();
        let caches = Arc::new(Self {
            namespace,
            flows,
            jobs,
            pods,
            flow_jobs: ByFlow::default(),
            flow_pods: ByFlow::default(),
            triggers: Triggers::default(),
            flow_states: FlowStates::default(),
            written: Written::default(),
            templates: Templates::default(),
            applied: AppliedJobs::default(),
            synced: watch::Sender::new(false),
        });
        (
            caches,
            Writers {
                flows: flow_writer,
                jobs: job_writer,
                pods: pod_writer,
            },
        )
    }

    /// Starts the three watches that fill the caches; the tasks run until aborted.
    pub fn start(self: &Arc<Self>, client: &Client, writers: Writers) -> Vec<JoinHandle<()>> {
        let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
        let ns = self.namespace.as_deref();
        // A Job or pod event of a flow that is gone (its Jobs are deleted after it) wakes
        // nothing: the controller would never reconcile it, and the trigger would stay pending.
        let on_job = {
            let caches = Arc::clone(self);
            move |store: &Store<CachedJob>, _: Option<Arc<CachedJob>>, event: &Event<CachedJob>| {
                caches.flow_jobs.apply(store, event);
                caches.send_existing(triggers::for_job(event));
            }
        };
        let on_pod = {
            let caches = Arc::clone(self);
            move |store: &Store<CachedPod>,
                  old: Option<Arc<CachedPod>>,
                  event: &Event<CachedPod>| {
                caches.flow_pods.apply(store, event);
                let old = old.map(|pod| pod.pod());
                caches.send_existing(triggers::for_pod(old.as_ref(), &cached::pod_event(event)));
            }
        };
        let all = watcher::Config::default().any_semantic();
        vec![
            tokio::spawn(Arc::clone(self).watch_readiness()),
            tokio::spawn(reflect(
                api(client, ns),
                all.clone(),
                {
                    let caches = Arc::clone(self);
                    move |flow: &mut JobFlow| caches.keep_flow(flow)
                },
                writers.flows,
                on_flow_event(Arc::clone(self)),
            )),
            tokio::spawn(reflect(
                api(client, ns),
                all.clone().labels(&managed),
                strip::cached_job,
                writers.jobs,
                on_job,
            )),
            tokio::spawn(reflect(
                api(client, ns),
                // Failed pods too: their exit codes and messages are what a failed step tells.
                all.labels(&managed),
                strip::pod,
                writers.pods,
                on_pod,
            )),
        ]
    }

    /// Resolves once all three caches hold a complete first list (never, if a watch cannot start).
    pub async fn wait_until_ready(&self) {
        // An error means the sender is gone, which cannot happen while `self` is borrowed.
        let _ = self.synced.subscribe().wait_for(|synced| *synced).await;
    }

    /// Triggers the flows among `flows` that the flow cache holds.
    fn send_existing(&self, flows: Vec<triggers::FlowRef>) {
        self.triggers.send(
            flows
                .into_iter()
                .filter(|flow| self.flows.get(flow).is_some()),
        );
    }

    /// Drops the per-flow state of `flow` if the cache no longer holds it (by UID). Called after
    /// each reconcile, which may have added state after the flow's delete event dropped it: the
    /// cache is updated before that event's handler runs, so one of the two always sees it gone.
    pub fn forget_if_gone(&self, flow: &JobFlow) {
        let Some(uid) = flow.metadata.uid.as_deref() else {
            return;
        };
        let cached = self.flows.get(&ObjectRef::from_obj(flow));
        if cached.is_none_or(|cached| cached.metadata.uid.as_deref() != Some(uid)) {
            self.forget(uid);
        }
    }

    /// Drops the per-flow state of a deleted flow.
    fn forget(&self, uid: &str) {
        self.flow_states.forget(uid);
        self.written.forget(uid);
        self.templates.forget(uid);
        self.applied.forget_flow(uid);
    }

    /// Keeps the per-flow state of `live` flows only.
    fn retain(&self, live: &HashSet<String>) {
        self.flow_states.retain(live);
        self.written.retain(live);
        self.templates.retain(live);
    }

    /// The newest version of `flow` this agent knows: the cache's current one when it is newer
    /// than the one the controller handed over (which is the cache's version when the reconcile
    /// was queued), or the one we last wrote when the cache has not caught up with it.
    pub fn freshest_flow(&self, flow: Arc<JobFlow>) -> Arc<JobFlow> {
        let current = self
            .flows
            .get(&ObjectRef::from_obj(&*flow))
            .filter(|current| {
                current.metadata.uid == flow.metadata.uid
                    && written::compare(current, &flow) == Some(std::cmp::Ordering::Greater)
            })
            .unwrap_or(flow);
        self.written.freshest(current)
    }

    /// What is kept of a flow the watch or a status write returned: [`strip::flow`], and its
    /// templates moved to [`Caches::templates`] (a reconcile restores them).
    pub fn keep_flow(&self, flow: &mut JobFlow) {
        strip::flow(flow);
        self.templates.take(flow);
    }

    /// Whether all three caches hold a complete first list.
    pub fn is_ready(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits for each store's first list, then tells every waiter at once.
    ///
    /// The only waiter on the stores themselves: a kube-runtime store wakes just the last task
    /// that polled `wait_until_ready`, so a second concurrent waiter could sleep forever.
    async fn watch_readiness(self: Arc<Self>) {
        let synced = async {
            let wait = |kind, r: Result<(), reflector::store::WriterDropped>| {
                r.map_err(|source| WaitForCacheError { kind, source })
            };
            wait("JobFlow", self.flows.wait_until_ready().await)?;
            wait("Job", self.jobs.wait_until_ready().await)?;
            wait("Pod", self.pods.wait_until_ready().await)
        };
        match synced.await {
            Ok(()) => {
                tracing::info!(
                    namespace = self.namespace.as_deref().unwrap_or("*"),
                    "watch caches synced"
                );
                self.synced.send_replace(true);
            }
            Err(error) => tracing::error!(error = %chain(&error), "a watch cache never filled"),
        }
    }
}

/// After each flow event: wake the flows it concerns, drop the state of deleted flows, and
/// end read-your-writes for a flow whose cache shows our write.
fn on_flow_event(
    caches: Arc<Caches>,
) -> impl FnMut(&Store<JobFlow>, Option<Arc<JobFlow>>, &Event<JobFlow>) + Send + 'static {
    move |store, old, event| {
        caches
            .triggers
            .send(triggers::for_flow(store, old.as_deref(), event));
        match event {
            Event::Delete(gone) => {
                caches.forget(&gone.uid().unwrap_or_default());
                caches.triggers.forget(&ObjectRef::from_obj(gone));
            }
            Event::InitDone => {
                // A relist replaces the cache wholesale; deletions in between sent no event.
                caches.retain(&store.state().iter().filter_map(|f| f.uid()).collect());
            }
            // Read-your-writes is over once the cache holds our write.
            Event::Apply(flow) | Event::InitApply(flow) => caches.written.caught_up(flow),
            Event::Init => {}
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Feeds one watch into a cache: strips each object, applies the event to the store, then hands
/// the event (and the object as cached before it) to `after`. One helper for every kind.
async fn reflect<K, S, F>(
    api: Api<K>,
    config: watcher::Config,
    strip: S,
    mut writer: reflector::store::Writer<K>,
    mut after: F,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    S: FnMut(&mut K) + Send,
    F: FnMut(&Store<K>, Option<Arc<K>>, &Event<K>) + Send,
{
    let reader = writer.as_reader();
    let kind = K::kind(&());
    let mut events = std::pin::pin!(
        watcher::watcher(api, config)
            .default_backoff()
            .modify(strip)
    );
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let old = match &event {
                    Event::Apply(obj) | Event::Delete(obj) => reader.get(&ObjectRef::from_obj(obj)),
                    Event::Init | Event::InitApply(_) | Event::InitDone => None,
                };
                writer.apply_watcher_event(&event);
                after(&reader, old, &event);
            }
            Err(error) => {
                tracing::warn!(%kind, error = %chain(&error), "watch failed; retrying");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// Marks every store of `writers` as listed.
    fn list_all(writers: &mut Writers) {
        writers.flows.apply_watcher_event(&Event::Init);
        writers.flows.apply_watcher_event(&Event::InitDone);
        writers.jobs.apply_watcher_event(&Event::Init);
        writers.jobs.apply_watcher_event(&Event::InitDone);
        writers.pods.apply_watcher_event(&Event::Init);
        writers.pods.apply_watcher_event(&Event::InitDone);
    }

    /// Caches whose (empty) first lists are done.
    pub(crate) async fn synced() -> Arc<Caches> {
        let (caches, mut writers) = Caches::new(None);
        let readiness = tokio::spawn(Arc::clone(&caches).watch_readiness());
        list_all(&mut writers);
        readiness.await.unwrap();
        caches
    }

    #[tokio::test]
    async fn every_waiter_wakes_when_the_caches_sync() {
        let (caches, mut writers) = Caches::new(None);
        tokio::spawn(Arc::clone(&caches).watch_readiness());
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let caches = Arc::clone(&caches);
                tokio::spawn(async move { caches.wait_until_ready().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!caches.is_ready());
        list_all(&mut writers);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("a waiter was never woken")
                .unwrap();
        }
        assert!(caches.is_ready());
    }
}
