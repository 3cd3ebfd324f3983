//! The per-flow index: ONE entry per flow name, fed by the watches and read by reconciles.
//!
//! An entry holds the names of the cached Jobs and pods labelled with the flow (so a reconcile
//! looks up its own few objects instead of testing every cached one: with 1,000 flows of 20
//! steps that is 40,000 objects per reconcile) and the [`FlowState`] of the cached flow of that
//! name. The watches apply, delete and reset (a relist) entries; a flow's state is made by its
//! watch event and dropped by its delete or by a relist that no longer lists it, so one forget
//! and one reset cover everything kept per flow, and [`FlowIndex::sizes`] counts all of it.
//!
//! The names may outnumber the cache (a relist drops objects without delete events; the names
//! are rebuilt when it ends), never the reverse: every name is looked up in its store, and what
//! is not there is skipped. Ownership is still checked by UID (see [`crate::kube::owner`]).

mod entry;
mod overlay;
mod templates;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use jobflow::api::JobFlow;
use jobflow::planner::{CompiledFlow, Refusal};
use kube::Resource;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;

pub use entry::{Compiled, FlowState};
use templates::Templates;

use super::owner::{FlowKey, flow_key, labelled_flow};
use super::slim::CachedJob;
use crate::metrics::StateEntries;

/// The objects a flow's entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The flow's Jobs.
    Jobs,
    /// The flow's pods.
    Pods,
}

/// One flow name's entry.
#[derive(Debug, Default)]
struct Entry {
    jobs: HashSet<String>,
    pods: HashSet<String>,
    state: Option<FlowState>,
}

impl Entry {
    fn names_mut(&mut self, kind: Kind) -> &mut HashSet<String> {
        match kind {
            Kind::Jobs => &mut self.jobs,
            Kind::Pods => &mut self.pods,
        }
    }

    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.pods.is_empty() && self.state.is_none()
    }
}

/// The per-flow entries of one scope.
#[derive(Debug, Default)]
pub struct FlowIndex {
    entries: Mutex<HashMap<FlowKey, Entry>>,
}

impl FlowIndex {
    /// Follows one Job or pod watch event; `store` is the cache after it.
    pub fn apply<K>(&self, kind: Kind, store: &Store<K>, event: &Event<K>)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let named = |object: &K| Some((labelled_flow(object.meta())?, object.meta().name.clone()?));
        let mut entries = self.lock();
        match event {
            Event::Apply(object) | Event::InitApply(object) => {
                if let Some((key, name)) = named(object) {
                    entries.entry(key).or_default().names_mut(kind).insert(name);
                }
            }
            Event::Delete(object) => {
                if let Some((key, name)) = named(object)
                    && let Some(entry) = entries.get_mut(&key)
                {
                    entry.names_mut(kind).remove(&name);
                    if entry.is_empty() {
                        entries.remove(&key);
                    }
                }
            }
            Event::InitDone => {
                for entry in entries.values_mut() {
                    entry.names_mut(kind).clear();
                }
                for object in store.state() {
                    if let Some((key, name)) = named(&object) {
                        entries.entry(key).or_default().names_mut(kind).insert(name);
                    }
                }
                entries.retain(|_, entry| !entry.is_empty());
            }
            Event::Init => {}
        }
    }

    /// What the flow cache keeps of a flow the watch delivered: its templates move into the
    /// flow's state (made now if the flow is new), the flow keeps `None` in their place.
    pub fn keep_flow(&self, flow: &mut JobFlow) {
        super::strip::flow(flow);
        let (Some(key), Some(uid)) = (flow_key(flow), flow.metadata.uid.clone()) else {
            return;
        };
        let mut entries = self.lock();
        let entry = entries.entry(key).or_default();
        if entry.state.as_ref().is_none_or(|state| state.uid != uid) {
            entry.state = Some(FlowState::new(uid));
        }
        if let Some(state) = entry.state.as_mut() {
            keep_templates(state, flow);
        }
    }

    /// Follows one flow watch event; `flows` is the cache after it. A deleted flow's state goes,
    /// a relist keeps only the states of the flows it listed, and our own status write ends its
    /// read-your-writes once the cache shows it.
    pub fn flow_event(&self, flows: &Store<JobFlow>, event: &Event<JobFlow>) {
        let mut entries = self.lock();
        match event {
            Event::Delete(gone) => {
                if let Some(key) = flow_key(gone) {
                    forget(
                        &mut entries,
                        &key,
                        gone.metadata.uid.as_deref().unwrap_or_default(),
                    );
                }
            }
            Event::InitDone => {
                let live: HashSet<(FlowKey, String)> = flows
                    .state()
                    .iter()
                    .filter_map(|flow| Some((flow_key(flow)?, flow.metadata.uid.clone()?)))
                    .collect();
                for (key, entry) in entries.iter_mut() {
                    if entry
                        .state
                        .as_ref()
                        .is_some_and(|state| !live.contains(&(key.clone(), state.uid.clone())))
                    {
                        entry.state = None;
                    }
                }
                entries.retain(|_, entry| !entry.is_empty());
            }
            Event::Apply(flow) | Event::InitApply(flow) => {
                if let Some(state) = state_mut(&mut entries, flow) {
                    state.written.caught_up(flow);
                }
            }
            Event::Init => {}
        }
    }

    /// The names of the cached objects of `kind` labelled with the flow `key`.
    pub fn names(&self, kind: Kind, key: &FlowKey) -> Vec<String> {
        let mut entries = self.lock();
        entries
            .get_mut(key)
            .map(|entry| entry.names_mut(kind).iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The newest version of `cached` this agent knows: the one our last status write returned
    /// while the cache has not caught up with it.
    pub fn freshest(&self, cached: Arc<JobFlow>, now: Instant) -> Arc<JobFlow> {
        let mut entries = self.lock();
        match state_mut(&mut entries, &cached) {
            Some(state) => state.written.freshest(cached, now),
            None => cached,
        }
    }

    /// `flow` with its templates back, or `None` when the state does not hold its generation's
    /// (the cache moved on to a newer one, whose event wakes the flow again).
    pub fn restore(&self, flow: &JobFlow) -> Option<JobFlow> {
        if flow.metadata.uid.is_none() {
            return Some(flow.clone());
        }
        let mut entries = self.lock();
        state_mut(&mut entries, flow)?
            .templates
            .as_ref()?
            .restore(flow)
    }

    /// The compiled spec of `flow`'s current generation, compiled now if not kept.
    pub fn compiled(&self, flow: &JobFlow) -> Compiled {
        let generation = flow.metadata.generation;
        if let Some(kept) =
            state_mut(&mut self.lock(), flow).and_then(|state| state.compiled_for(generation))
        {
            return kept;
        }
        // Compiled outside the lock: other flows' reconciles need not wait for this one.
        let compiled: Compiled = Arc::new(CompiledFlow::compile(flow));
        if let Some(state) = state_mut(&mut self.lock(), flow) {
            state.compiled = Some((generation, Arc::clone(&compiled)));
        }
        compiled
    }

    /// `cached` (the flow's Jobs in the cache) with our newer versions and the Jobs we created
    /// that the cache does not show yet (those `belongs` accepts), and when the first of those
    /// stops standing in.
    pub fn jobs_over(
        &self,
        flow: &JobFlow,
        cached: Vec<Arc<CachedJob>>,
        belongs: impl Fn(&CachedJob) -> bool,
        now: Instant,
    ) -> (Vec<Arc<CachedJob>>, Option<Instant>) {
        match state_mut(&mut self.lock(), flow) {
            Some(state) => state.jobs.over(cached, belongs, now),
            None => (cached, None),
        }
    }

    /// The objects the API server refused to create for `flow`.
    pub fn refused(&self, flow: &JobFlow) -> BTreeMap<String, Refusal> {
        state_mut(&mut self.lock(), flow)
            .map(|state| state.refused.clone())
            .unwrap_or_default()
    }

    /// Remembers the flow our status write returned, until the cache shows it.
    pub fn record_written(&self, mut written: JobFlow, now: Instant) {
        super::strip::flow(&mut written);
        let mut entries = self.lock();
        match state_mut(&mut entries, &written) {
            Some(state) => {
                keep_templates(state, &mut written);
                state.written.record(written, now);
            }
            // The flow is gone (its delete event came first): nothing to remember.
            None => Templates::drop_from(&mut written),
        }
    }

    /// Remembers a Job of `flow` that we created or read, until the cache shows it.
    pub fn record_job(&self, flow: &JobFlow, job: CachedJob, now: Instant) {
        if let Some(state) = state_mut(&mut self.lock(), flow) {
            state.jobs.record(job, now);
        }
    }

    /// Remembers objects the API server refused to create for `flow`.
    pub fn refuse(&self, flow: &JobFlow, refused: impl IntoIterator<Item = (String, Refusal)>) {
        if let Some(state) = state_mut(&mut self.lock(), flow) {
            state.refuse(refused);
        }
    }

    /// A reconcile of `flow` failed: how many failed in a row now.
    pub fn reconcile_failed(&self, flow: &JobFlow) -> u32 {
        state_mut(&mut self.lock(), flow).map_or(1, |state| {
            state.failures = state.failures.saturating_add(1);
            state.failures
        })
    }

    /// A reconcile of `flow` succeeded: the next failure counts from one again.
    pub fn reconcile_succeeded(&self, flow: &JobFlow) {
        if let Some(state) = state_mut(&mut self.lock(), flow) {
            state.failures = 0;
        }
    }

    /// What the index holds, for the `zen_flow_state_entries` gauge.
    pub fn sizes(&self) -> StateEntries {
        let entries = self.lock();
        let states = entries.values().filter_map(|entry| entry.state.as_ref());
        states.fold(StateEntries::default(), |sum, state| StateEntries {
            flow_states: sum.flow_states + 1,
            written: sum.written + state.written.len(),
            applied: sum.applied + state.jobs.len(),
            templates: sum.templates + usize::from(state.templates.is_some()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<FlowKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The state of `flow` (same name and UID), if the index holds it.
fn state_mut<'a>(
    entries: &'a mut HashMap<FlowKey, Entry>,
    flow: &JobFlow,
) -> Option<&'a mut FlowState> {
    let uid = flow.metadata.uid.as_deref()?;
    entries
        .get_mut(&flow_key(flow)?)?
        .state
        .as_mut()
        .filter(|state| state.uid == uid)
}

/// Drops the state of the flow `key` with `uid`.
fn forget(entries: &mut HashMap<FlowKey, Entry>, key: &FlowKey, uid: &str) {
    let Some(entry) = entries.get_mut(key) else {
        return;
    };
    if entry.state.as_ref().is_some_and(|state| state.uid == uid) {
        entry.state = None;
    }
    if entry.is_empty() {
        entries.remove(key);
    }
}

/// Moves `flow`'s templates into `state` (or drops them, when it holds that generation's).
fn keep_templates(state: &mut FlowState, flow: &mut JobFlow) {
    if state
        .templates
        .as_ref()
        .is_some_and(|kept| kept.are_of(flow))
    {
        Templates::drop_from(flow);
    } else {
        state.templates = Some(Templates::take(flow));
    }
}
