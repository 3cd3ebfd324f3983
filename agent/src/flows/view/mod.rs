//! What a flow sees: the only place that decides which Jobs, pods and peers are a flow's, and
//! where read-your-writes applies. A reconcile builds one [`View`] under the flow's lock, from
//! the caches and the per-flow index (plus, for a Job the status names but the cache lacks, one
//! GET: [`View::confirm_missing`]), and the planner reads nothing else.

mod confirm;
mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use jobflow::api::JobFlow;
use jobflow::planner::{Observed, PeerFlow, Refusal, peers};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;

use crate::kube::caches::Caches;
use crate::kube::index::{Compiled, Kind};
use crate::kube::owner::{flow_key, is_flow_object};

/// Everything one plan of a flow reads.
#[derive(Debug)]
pub struct View {
    /// The flow: the newest version this agent knows, with its step templates.
    pub flow: JobFlow,
    /// Its spec, compiled for its generation (or why it is invalid).
    pub compiled: Compiled,
    /// Its Jobs: cached, or written by us and not shown by the cache yet.
    jobs: Vec<Job>,
    /// Its pods.
    pods: Vec<Pod>,
    /// Its concurrency peers, oldest first.
    peers: Vec<PeerFlow>,
    /// Its objects the API server refused to create for good.
    refused: BTreeMap<String, Refusal>,
    /// When the first of its Jobs that stands in for the cache stops standing in: look again
    /// then (if the watch never showed it, the next view finds it missing and confirms that).
    pub recheck_at: Option<Instant>,
}

/// The newest version of `queued` this agent knows: the cache's current one (the controller
/// hands over the one cached when the reconcile was queued), or the one our last status write
/// returned while the cache has not caught up with it.
pub fn newest(caches: &Caches, queued: Arc<JobFlow>, now: Instant) -> Arc<JobFlow> {
    let current = caches
        .flows
        .get(&ObjectRef::from_obj(&*queued))
        .filter(|current| current.metadata.uid == queued.metadata.uid)
        .unwrap_or(queued);
    caches.index.freshest(current, now)
}

impl View {
    /// What the caches show of `flow` (its newest version is read again here), or `None` when
    /// its newest generation's templates are not in the index yet (that generation's watch
    /// event wakes the flow again).
    pub fn of(caches: &Caches, flow: Arc<JobFlow>, now: Instant) -> Option<Self> {
        let flow = caches.index.restore(&newest(caches, flow, now))?;
        let key = flow_key(&flow)?;
        let cached_jobs = caches
            .index
            .names(Kind::Jobs, &key)
            .into_iter()
            .filter_map(|name| caches.jobs.get(&ObjectRef::new(&name).within(&key.0)))
            .filter(|job| is_flow_object(&flow, &job.metadata))
            .collect();
        let (jobs, recheck_at) = caches.index.jobs_over(
            &flow,
            cached_jobs,
            |job| is_flow_object(&flow, &job.metadata),
            now,
        );
        let pods = caches
            .index
            .names(Kind::Pods, &key)
            .into_iter()
            .filter_map(|name| caches.pods.get(&ObjectRef::new(&name).within(&key.0)))
            .map(|pod| pod.pod())
            .collect();
        let peers = match flow.spec.execution_policy.concurrency_key() {
            // Peers as this agent last wrote them, even before the watch delivers those writes.
            Some(_) => {
                let others: Vec<Arc<JobFlow>> = caches
                    .flows
                    .state_filter(|other| PeerFlow::is_peer_of(other, &flow))
                    .into_iter()
                    .map(|other| caches.index.freshest(other, now))
                    .collect();
                peers(&flow, others.iter().map(AsRef::as_ref))
            }
            None => Vec::new(),
        };
        Some(Self {
            compiled: caches.index.compiled(&flow),
            refused: caches.index.refused(&flow),
            jobs: jobs.iter().map(|job| job.job()).collect(),
            pods,
            peers,
            recheck_at,
            flow,
        })
    }

    /// What the planner is shown.
    pub fn observed(&self) -> Observed<'_> {
        let jobs: Vec<&Job> = self.jobs.iter().collect();
        Observed {
            termination_messages: pods::termination_messages(&jobs, &self.pods),
            pod_trouble: pods::pod_troubles(&jobs, &self.pods),
            pod_failures: pods::pod_failures(&jobs, &self.pods),
            peers: self.peers.clone(),
            refused: self.refused.clone(),
            jobs,
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests;
