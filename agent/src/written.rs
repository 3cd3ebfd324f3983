//! Read-your-writes for flows: the object each status write returned, used instead of the
//! cached flow until the cache has caught up with it.
//!
//! Without it a reconcile that runs before the watch delivers our own status write plans from
//! the status before it: it writes the same status again, records its transitions and Events
//! twice, and could carry out a manual request (retry, approval) whose handling it already
//! recorded.
//!
//! An entry lives only until the watch shows that version: [`Written::caught_up`] drops it on
//! the flow's next watch event. Kept until the flow's next reconcile instead, a full copy of
//! every flow lingered while the queue was long (47 MB of a 175 MB peak with 1,000 flows).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use jobflow::api::JobFlow;

/// The last written flow of each flow UID, until the cache holds that version or a newer one.
#[derive(Debug, Default)]
pub struct Written {
    flows: Mutex<HashMap<String, Arc<JobFlow>>>,
}

impl Written {
    /// Remembers the flow a status write returned.
    pub fn record(&self, written: JobFlow) {
        if let Some(uid) = written.metadata.uid.clone() {
            self.lock().insert(uid, Arc::new(written));
        }
    }

    /// The cached flow, or the one we wrote if the cache has not caught up with it yet.
    pub fn freshest(&self, cached: Arc<JobFlow>) -> Arc<JobFlow> {
        let Some(uid) = cached.metadata.uid.as_deref() else {
            return cached;
        };
        let mut flows = self.lock();
        let Some(written) = flows.get(uid) else {
            return cached;
        };
        if compare(&cached, written) == Some(std::cmp::Ordering::Less) {
            return Arc::clone(written);
        }
        // Caught up (or versions that cannot be ordered): the cache is the truth again.
        flows.remove(uid);
        cached
    }

    /// The watch delivered `cached`: the entry of its flow goes if `cached` is the version we
    /// wrote or a newer one (or the versions cannot be ordered, as in [`Written::freshest`]).
    pub fn caught_up(&self, cached: &JobFlow) {
        let Some(uid) = cached.metadata.uid.as_deref() else {
            return;
        };
        let mut flows = self.lock();
        if flows
            .get(uid)
            .is_some_and(|written| compare(cached, written) != Some(std::cmp::Ordering::Less))
        {
            flows.remove(uid);
        }
    }

    /// Drops the entry of a deleted flow.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps only the entries of `live` flows.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// How many flows have an entry.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobFlow>>> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Orders two versions of one flow by resourceVersion. The API server's resourceVersions are
/// etcd revisions, increasing integers; anything else cannot be ordered.
pub fn compare(a: &JobFlow, b: &JobFlow) -> Option<std::cmp::Ordering> {
    let version = |f: &JobFlow| f.metadata.resource_version.as_deref()?.parse::<u64>().ok();
    Some(version(a)?.cmp(&version(b)?))
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::observe::tests::flow;
    use jobflow::api::{FlowPhase, JobFlowStatus};

    fn at_version(rv: &str, phase: Option<FlowPhase>) -> JobFlow {
        let mut f = flow("f", "u", None, 0);
        f.metadata.resource_version = Some(rv.to_owned());
        f.status = phase.map(|p| JobFlowStatus {
            phase: Some(p),
            ..JobFlowStatus::default()
        });
        f
    }

    #[test]
    fn a_stale_cache_is_replaced_by_our_write_until_it_catches_up() {
        let w = Written::default();
        let stale = Arc::new(at_version("10", None));
        assert!(
            Arc::ptr_eq(&w.freshest(Arc::clone(&stale)), &stale),
            "nothing written"
        );
        w.record(at_version("12", Some(FlowPhase::Running)));
        let seen = w.freshest(Arc::clone(&stale));
        assert_eq!(
            seen.status.as_ref().and_then(|s| s.phase),
            Some(FlowPhase::Running)
        );
        // The cache shows our write (or anything newer): back to the cache, entry dropped.
        let caught_up = Arc::new(at_version("13", Some(FlowPhase::Running)));
        assert!(Arc::ptr_eq(&w.freshest(Arc::clone(&caught_up)), &caught_up));
        assert!(
            Arc::ptr_eq(&w.freshest(Arc::clone(&stale)), &stale),
            "entry is gone"
        );
    }

    #[test]
    fn the_watch_catching_up_drops_the_entry_before_any_reconcile() {
        let w = Written::default();
        w.record(at_version("12", Some(FlowPhase::Running)));
        w.caught_up(&at_version("11", None));
        assert_eq!(w.len(), 1, "an older version keeps our write");
        w.caught_up(&at_version("12", Some(FlowPhase::Running)));
        assert_eq!(w.len(), 0, "our own version arrived");
        let stale = Arc::new(at_version("10", None));
        assert!(Arc::ptr_eq(&w.freshest(Arc::clone(&stale)), &stale));
    }

    #[test]
    fn versions_that_are_not_numbers_fall_back_to_the_cache() {
        let w = Written::default();
        w.record(at_version("b", Some(FlowPhase::Running)));
        let cached = Arc::new(at_version("a", None));
        assert!(Arc::ptr_eq(&w.freshest(Arc::clone(&cached)), &cached));
    }

    #[test]
    fn deleted_flows_are_forgotten() {
        let w = Written::default();
        w.record(at_version("12", Some(FlowPhase::Running)));
        w.retain(&HashSet::new());
        let cached = Arc::new(at_version("10", None));
        assert!(Arc::ptr_eq(&w.freshest(Arc::clone(&cached)), &cached));
    }
}
