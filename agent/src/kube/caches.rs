//! The watch caches of one scope (one namespace, or all): flows, the agent's Jobs and their
//! pods, each kept slim (see [`super::slim`], [`super::strip`]), and the per-flow index the
//! watches feed ([`super::index`]). Reconciles read only from here, never with a GET (except to
//! confirm that a Job the cache lacks is really gone).

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use jobflow::api::JobFlow;
use jobflow::labels;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::index::{FlowIndex, Kind};
use super::slim::{CachedJob, CachedPod};
use super::strip;
use crate::error::chain;

/// One scope's caches and per-flow index.
#[derive(Debug)]
pub struct Caches {
    /// The namespace watched, or `None` for all.
    pub namespace: Option<String>,
    /// `JobFlows`, their step templates moved into the index (see [`FlowIndex::keep_flow`]).
    pub flows: Store<JobFlow>,
    /// Jobs labelled `workflow.kube-zen.io/managed-by=jobflow-agent` (metadata and status).
    pub jobs: Store<CachedJob>,
    /// Pods with the same label: succeeded ones for their termination messages, failed ones
    /// for how their containers failed, the others to tell why one is stuck (metadata and
    /// status).
    pub pods: Store<CachedPod>,
    /// The per-flow index.
    pub index: FlowIndex,
    /// Turns true once every cache has synced.
    synced: watch::Sender<bool>,
}

/// Who hears of each change after the caches and the index took it (the flow controller's
/// triggers). `old` is the object as cached before the event.
pub trait Listener: Send + Sync + 'static {
    /// A flow event.
    fn flow(&self, flows: &Store<JobFlow>, old: Option<&JobFlow>, event: &Event<JobFlow>);
    /// A Job event.
    fn job(&self, event: &Event<CachedJob>);
    /// A pod event.
    fn pod(&self, old: Option<&CachedPod>, event: &Event<CachedPod>);
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
            index: FlowIndex::default(),
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

    /// Starts the three watches that fill the caches and tell `listener`; the tasks run until
    /// aborted.
    pub fn start(
        self: &Arc<Self>,
        client: &Client,
        writers: Writers,
        listener: Arc<dyn Listener>,
    ) -> Vec<JoinHandle<()>> {
        let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
        let ns = self.namespace.as_deref();
        let on_flow = {
            let (caches, listener) = (Arc::clone(self), Arc::clone(&listener));
            move |store: &Store<JobFlow>, old: Option<Arc<JobFlow>>, event: &Event<JobFlow>| {
                caches.index.flow_event(store, event);
                listener.flow(store, old.as_deref(), event);
            }
        };
        let on_job = {
            let (caches, listener) = (Arc::clone(self), Arc::clone(&listener));
            move |store: &Store<CachedJob>, _: Option<Arc<CachedJob>>, event: &Event<CachedJob>| {
                caches.index.apply(Kind::Jobs, store, event);
                listener.job(event);
            }
        };
        let on_pod = {
            let caches = Arc::clone(self);
            move |store: &Store<CachedPod>,
                  old: Option<Arc<CachedPod>>,
                  event: &Event<CachedPod>| {
                caches.index.apply(Kind::Pods, store, event);
                listener.pod(old.as_deref(), event);
            }
        };
        let keep_flow = {
            let caches = Arc::clone(self);
            move |flow: &mut JobFlow| caches.index.keep_flow(flow)
        };
        let all = watcher::Config::default().any_semantic();
        vec![
            tokio::spawn(Arc::clone(self).watch_readiness()),
            tokio::spawn(reflect(
                api(client, ns),
                all.clone(),
                keep_flow,
                writers.flows,
                on_flow,
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

    impl Caches {
        /// Feeds `flow` to the flow cache as its watch would.
        pub(crate) fn put_flow(&self, writers: &mut Writers, mut flow: JobFlow) {
            self.index.keep_flow(&mut flow);
            let event = Event::Apply(flow);
            writers.flows.apply_watcher_event(&event);
            self.index.flow_event(&self.flows, &event);
        }

        /// Feeds `job` to the Job cache as its watch would.
        pub(crate) fn put_job(&self, writers: &mut Writers, mut job: CachedJob) {
            strip::cached_job(&mut job);
            let event = Event::Apply(job);
            writers.jobs.apply_watcher_event(&event);
            self.index.apply(Kind::Jobs, &self.jobs, &event);
        }

        /// Feeds `pod` to the pod cache as its watch would.
        pub(crate) fn put_pod(&self, writers: &mut Writers, mut pod: CachedPod) {
            strip::pod(&mut pod);
            let event = Event::Apply(pod);
            writers.pods.apply_watcher_event(&event);
            self.index.apply(Kind::Pods, &self.pods, &event);
        }
    }

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
