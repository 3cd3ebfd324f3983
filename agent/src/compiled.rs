//! Each flow's spec compiled once per generation, shared by its reconciles.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use jobflow::api::JobFlow;
use jobflow::planner::CompiledFlow;
use jobflow::validation::ValidationErrors;

/// A compiled spec, or why the spec is invalid.
pub type Compiled = Arc<Result<CompiledFlow, ValidationErrors>>;

/// Compiled specs by flow UID; an entry is replaced when the generation changes and dropped
/// when the flow is deleted.
#[derive(Debug, Default)]
pub struct CompiledCache {
    entries: Mutex<HashMap<String, (Option<i64>, Compiled)>>,
}

impl CompiledCache {
    /// The compiled spec of `flow`'s current generation, compiled now if not cached.
    pub fn get(&self, flow: &JobFlow) -> Compiled {
        let uid = flow.metadata.uid.clone().unwrap_or_default();
        let generation = flow.metadata.generation;
        if let Some((cached_generation, compiled)) = self.lock().get(&uid)
            && *cached_generation == generation
        {
            return Arc::clone(compiled);
        }
        // Compiled outside the lock: other flows' reconciles need not wait for this one.
        let compiled: Compiled = Arc::new(CompiledFlow::compile(flow));
        self.lock().insert(uid, (generation, Arc::clone(&compiled)));
        compiled
    }

    /// Drops the entry of a deleted flow.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps only the entries of `live` flows (after a relist, deletions may have been missed).
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// How many flows have a cached compilation.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<i64>, Compiled)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::observe::tests::flow;

    #[test]
    fn compiles_once_per_generation_and_forgets() {
        let cache = CompiledCache::default();
        let mut f = flow("f", "u1", None, 0);
        f.metadata.generation = Some(1);
        let first = cache.get(&f);
        assert!(
            Arc::ptr_eq(&first, &cache.get(&f)),
            "same generation: cached"
        );
        f.metadata.generation = Some(2);
        assert!(
            !Arc::ptr_eq(&first, &cache.get(&f)),
            "new generation: compiled again"
        );
        assert_eq!(cache.len(), 1, "one entry per flow");
        cache.get(&flow("g", "u2", None, 0));
        cache.retain(&HashSet::from(["u2".to_owned()]));
        assert_eq!(cache.len(), 1);
        cache.forget("u2");
        assert!(cache.is_empty());
    }
}
