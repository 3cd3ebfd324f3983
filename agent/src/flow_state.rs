//! What the agent keeps of each flow between its reconciles, in one map keyed by flow UID: the
//! spec compiled for its generation, how many reconciles failed in a row, and the objects the
//! API server refused to create. One entry per live flow; dropped when the flow is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jobflow::api::JobFlow;
use jobflow::planner::{CompiledFlow, Refusal};
use jobflow::validation::ValidationErrors;

use crate::error::retry_delay;

/// A compiled spec, or why the spec is invalid.
pub type Compiled = Arc<Result<CompiledFlow, ValidationErrors>>;

/// The most refusals kept per flow. Each attempt of a step has its own Job name and attempts are
/// bounded by validation, so this is never reached by a valid flow; it bounds memory anyway.
const MAX_REFUSALS: usize = 1024;

/// The state of one flow.
#[derive(Debug, Default)]
struct FlowState {
    /// The generation compiled, and the result.
    compiled: Option<(Option<i64>, Compiled)>,
    /// Reconciles failed in a row.
    failures: u32,
    /// Objects the API server refused for good, by name.
    refused: BTreeMap<String, Refusal>,
}

/// Per-flow state by flow UID.
#[derive(Debug, Default)]
pub struct FlowStates {
    entries: Mutex<HashMap<String, FlowState>>,
}

impl FlowStates {
    /// The compiled spec of `flow`'s current generation, compiled now if not kept.
    pub fn compiled(&self, flow: &JobFlow) -> Compiled {
        let uid = uid(flow);
        let generation = flow.metadata.generation;
        if let Some((kept, compiled)) = self.lock().get(uid).and_then(|s| s.compiled.as_ref())
            && *kept == generation
        {
            return Arc::clone(compiled);
        }
        // Compiled outside the lock: other flows' reconciles need not wait for this one.
        let compiled: Compiled = Arc::new(CompiledFlow::compile(flow));
        self.lock().entry(uid.to_owned()).or_default().compiled =
            Some((generation, Arc::clone(&compiled)));
        compiled
    }

    /// A reconcile of the flow failed: the wait before the next, doubling with each failure in
    /// a row.
    pub fn reconcile_failed(&self, uid: &str) -> Duration {
        let mut entries = self.lock();
        let state = entries.entry(uid.to_owned()).or_default();
        state.failures = state.failures.saturating_add(1);
        retry_delay(state.failures)
    }

    /// A reconcile of the flow succeeded: the next failure waits the shortest time again.
    pub fn reconcile_succeeded(&self, uid: &str) {
        if let Some(state) = self.lock().get_mut(uid) {
            state.failures = 0;
        }
    }

    /// Remembers objects the API server refused to create for the flow.
    pub fn refuse(&self, uid: &str, refused: impl IntoIterator<Item = (String, Refusal)>) {
        let mut entries = self.lock();
        let kept = &mut entries.entry(uid.to_owned()).or_default().refused;
        for (name, refusal) in refused {
            if kept.len() >= MAX_REFUSALS {
                kept.pop_first();
            }
            kept.insert(name, refusal);
        }
    }

    /// The objects the API server refused to create for the flow.
    pub fn refused(&self, uid: &str) -> BTreeMap<String, Refusal> {
        self.lock()
            .get(uid)
            .map(|state| state.refused.clone())
            .unwrap_or_default()
    }

    /// Drops the state of a deleted flow.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps the state of `live` flows only.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// How many flows have state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, FlowState>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn uid(flow: &JobFlow) -> &str {
    flow.metadata.uid.as_deref().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::observe::tests::flow;
    use jobflow::api::reasons;

    #[test]
    fn compiles_once_per_generation() {
        let states = FlowStates::default();
        let mut f = flow("f", "u1", None, 0);
        f.metadata.generation = Some(1);
        let first = states.compiled(&f);
        assert!(Arc::ptr_eq(&first, &states.compiled(&f)), "same generation");
        f.metadata.generation = Some(2);
        assert!(!Arc::ptr_eq(&first, &states.compiled(&f)), "new generation");
        assert_eq!(states.len(), 1, "one entry per flow");
    }

    #[test]
    fn failures_grow_the_delay_and_success_resets_it() {
        let states = FlowStates::default();
        assert_eq!(states.reconcile_failed("u"), Duration::from_secs(1));
        assert_eq!(states.reconcile_failed("u"), Duration::from_secs(2));
        assert_eq!(states.reconcile_failed("u"), Duration::from_secs(4));
        states.reconcile_succeeded("u");
        assert_eq!(states.reconcile_failed("u"), Duration::from_secs(1));
    }

    #[test]
    fn refusals_are_kept_per_flow_and_bounded() {
        let states = FlowStates::default();
        let refusal = || Refusal {
            reason: reasons::JOB_REJECTED,
            message: "invalid".into(),
        };
        states.refuse("u", [("j1".to_owned(), refusal())]);
        assert_eq!(states.refused("u").len(), 1);
        assert!(states.refused("v").is_empty());
        states.refuse("u", (0..2000).map(|i| (format!("k{i:04}"), refusal())));
        assert_eq!(states.refused("u").len(), MAX_REFUSALS);
    }

    #[test]
    fn deleted_flows_are_forgotten() {
        let states = FlowStates::default();
        states.compiled(&flow("f", "u1", None, 0));
        states.reconcile_failed("u2");
        states.refuse("u3", []);
        assert_eq!(states.len(), 3);
        states.retain(&HashSet::from(["u2".to_owned(), "u3".to_owned()]));
        assert_eq!(states.len(), 2);
        states.forget("u2");
        states.forget("u3");
        assert_eq!(states.len(), 0);
    }
}
