//! Read-your-writes: the objects this agent wrote (a flow's status write, the Jobs it created or
//! confirmed), shown instead of or beside the cache until the cache shows that version.
//!
//! Without it a reconcile that runs before the watch delivers our own write plans from the
//! world before it: a status written twice with its transitions and Events, a manual request
//! carried out twice, or a Job the status names (by UID) taken for deleted.
//!
//! One rule for every kind: an entry is the object the API server returned, by UID. The cache
//! wins once it holds that UID at the same resourceVersion or a newer one (resourceVersions are
//! etcd revisions, increasing integers; versions that cannot be ordered also leave it to the
//! cache), and the entry goes. An entry the cache never shows (an object deleted before the
//! watch delivered it) stands in for at most [`STAND_IN`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;

/// How long a written object stands in for the cache. A watch delivers a write within
/// milliseconds; after this the cache is the truth again.
pub const STAND_IN: Duration = Duration::from_secs(60);

/// Written objects by UID, with when they were written.
#[derive(Debug)]
pub struct Overlay<K> {
    written: BTreeMap<String, (Arc<K>, Instant)>,
}

impl<K> Default for Overlay<K> {
    fn default() -> Self {
        Self {
            written: BTreeMap::new(),
        }
    }
}

impl<K: Resource> Overlay<K> {
    /// Remembers an object the API server returned at `now` (already stripped).
    pub fn record(&mut self, object: K, now: Instant) {
        if let Some(uid) = object.meta().uid.clone() {
            self.written.insert(uid, (Arc::new(object), now));
        }
    }

    /// The watch delivered `cached`: its entry goes if the cache now holds our version or newer.
    pub fn caught_up(&mut self, cached: &K) {
        if let Some(uid) = cached.meta().uid.as_deref()
            && self
                .written
                .get(uid)
                .is_some_and(|(ours, _)| !is_older(cached, ours))
        {
            self.written.remove(uid);
        }
    }

    /// `cached`, or our newer version of it.
    pub fn freshest(&mut self, cached: Arc<K>, now: Instant) -> Arc<K> {
        self.expire(now);
        let Some(uid) = cached.meta().uid.clone() else {
            return cached;
        };
        match self.written.get(&uid) {
            Some((ours, _)) if is_older(&*cached, &**ours) => Arc::clone(ours),
            Some(_) => {
                self.written.remove(&uid);
                cached
            }
            None => cached,
        }
    }

    /// `cached` with each object replaced by our newer version of it, plus the objects we wrote
    /// that the cache does not show at all (`belongs` says which of those to take); and when the
    /// first of the added ones stops standing in (look again then).
    pub fn over(
        &mut self,
        cached: Vec<Arc<K>>,
        belongs: impl Fn(&K) -> bool,
        now: Instant,
    ) -> (Vec<Arc<K>>, Option<Instant>) {
        self.expire(now);
        let mut unseen: BTreeSet<&str> = self.written.keys().map(String::as_str).collect();
        let mut caught_up = Vec::new();
        let mut objects: Vec<Arc<K>> = cached
            .into_iter()
            .map(|object| {
                let Some(uid) = object.meta().uid.as_deref() else {
                    return object;
                };
                unseen.remove(uid);
                match self.written.get(uid) {
                    Some((ours, _)) if is_older(&*object, &**ours) => Arc::clone(ours),
                    Some(_) => {
                        caught_up.push(uid.to_owned());
                        object
                    }
                    None => object,
                }
            })
            .collect();
        let mut ends: Option<Instant> = None;
        for uid in unseen {
            if let Some((ours, written)) = self.written.get(uid)
                && belongs(ours)
            {
                objects.push(Arc::clone(ours));
                let end = *written + STAND_IN;
                ends = Some(ends.map_or(end, |first| first.min(end)));
            }
        }
        for uid in caught_up {
            self.written.remove(&uid);
        }
        (objects, ends)
    }

    /// How many written objects stand in for the cache.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    fn expire(&mut self, now: Instant) {
        self.written
            .retain(|_, (_, written)| now.saturating_duration_since(*written) < STAND_IN);
    }
}

/// Whether `cached` is an older version than `ours`. Versions that cannot be ordered are not.
fn is_older<K: Resource>(cached: &K, ours: &K) -> bool {
    let version = |object: &K| {
        object
            .meta()
            .resource_version
            .as_deref()?
            .parse::<u64>()
            .ok()
    };
    matches!((version(cached), version(ours)), (Some(a), Some(b)) if a < b)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::kube::slim::CachedJob;

    fn job(name: &str, uid: &str, rv: &str) -> CachedJob {
        let mut job = CachedJob::default();
        job.metadata.name = Some(name.into());
        job.metadata.uid = Some(uid.into());
        job.metadata.resource_version = Some(rv.into());
        job
    }

    fn names(jobs: &[Arc<CachedJob>]) -> Vec<String> {
        jobs.iter()
            .map(|job| job.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_written_object_stands_in_until_the_cache_shows_it() {
        let mut overlay = Overlay::default();
        let start = Instant::now();
        overlay.record(job("f-a-1", "u1", "10"), start);
        let (seen, ends) = overlay.over(vec![], |_| true, start);
        assert_eq!(names(&seen), ["f-a-1"]);
        assert_eq!(ends, Some(start + STAND_IN));
        // The cache caught up: the cached object is used and the entry goes.
        let cached = vec![Arc::new(job("f-a-1", "u1", "10"))];
        assert_eq!(overlay.over(cached, |_| true, start).0.len(), 1);
        assert_eq!(overlay.len(), 0);
        assert!(overlay.over(vec![], |_| true, start).0.is_empty());
    }

    #[test]
    fn a_stale_cache_is_replaced_by_our_version() {
        let mut overlay = Overlay::default();
        let start = Instant::now();
        let mut ours = job("f-a-1", "u1", "12");
        ours.metadata.labels = Some([("v".to_owned(), "ours".to_owned())].into());
        overlay.record(ours, start);
        let stale = Arc::new(job("f-a-1", "u1", "10"));
        let seen = overlay.freshest(Arc::clone(&stale), start);
        assert!(seen.metadata.labels.is_some(), "ours, not the stale cache");
        let (over, _) = overlay.over(vec![Arc::clone(&stale)], |_| true, start);
        assert_eq!(over.len(), 1, "replaced, not added beside it");
        assert!(over[0].metadata.labels.is_some());
        overlay.caught_up(&job("f-a-1", "u1", "11"));
        assert_eq!(overlay.len(), 1, "an older version keeps ours");
        overlay.caught_up(&job("f-a-1", "u1", "13"));
        assert_eq!(overlay.len(), 0, "a newer one ends it");
        assert!(Arc::ptr_eq(
            &overlay.freshest(Arc::clone(&stale), start),
            &stale
        ));
    }

    #[test]
    fn others_and_old_entries_are_left_out_and_unordered_versions_go_to_the_cache() {
        let mut overlay = Overlay::default();
        let start = Instant::now();
        overlay.record(job("g-a-1", "u2", "5"), start);
        let mine = |job: &CachedJob| job.metadata.name.as_deref() == Some("f");
        assert!(overlay.over(vec![], mine, start).0.is_empty());
        assert_eq!(overlay.len(), 1, "kept for its own flow");
        assert!(
            overlay
                .over(vec![], |_| true, start + STAND_IN)
                .0
                .is_empty()
        );
        assert_eq!(overlay.len(), 0, "expired");
        overlay.record(job("f-a-1", "u1", "b"), start);
        let cached = Arc::new(job("f-a-1", "u1", "a"));
        assert!(Arc::ptr_eq(
            &overlay.freshest(Arc::clone(&cached), start),
            &cached
        ));
    }
}
