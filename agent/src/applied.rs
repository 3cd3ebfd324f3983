//! Read-your-writes for Jobs: the Jobs this agent applied, used until the Job cache shows them.
//!
//! The status records a Job's UID so that a Job missing from the cache later reads as deleted
//! (step failed, `JobDeleted`) rather than as not seen yet. The apply response carries the UID,
//! so the status written in the same reconcile can hold it; the next reconcile may run before the
//! watch delivers the new Job, and then must see it here rather than conclude it was deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;

/// How long an applied Job stands in for the cache. A watch delivers a new Job within
/// milliseconds; a Job deleted before the cache ever showed it reads as deleted after this.
pub const STAND_IN: Duration = Duration::from_secs(60);

/// Applied Jobs by UID, with when they were applied.
#[derive(Debug, Default)]
pub struct AppliedJobs {
    jobs: Mutex<HashMap<String, (Arc<Job>, Instant)>>,
}

impl AppliedJobs {
    /// Remembers a Job the API server returned from an apply (already stripped).
    pub fn record(&self, job: Job, now: Instant) {
        if let Some(uid) = job.metadata.uid.clone() {
            self.lock().insert(uid, (Arc::new(job), now));
        }
    }

    /// `cached` plus the applied Jobs that `belongs` accepts and the cache does not show yet,
    /// and when the first of those added stops standing in (the flow must be looked at again
    /// then). Entries the cache now shows, and entries older than [`STAND_IN`], are dropped.
    pub fn with_unseen(
        &self,
        mut cached: Vec<Arc<Job>>,
        belongs: impl Fn(&Job) -> bool,
        now: Instant,
    ) -> (Vec<Arc<Job>>, Option<Instant>) {
        let mut ends: Option<Instant> = None;
        let mut jobs = self.lock();
        jobs.retain(|uid, (job, applied)| {
            let seen = cached
                .iter()
                .any(|other| other.metadata.uid.as_deref() == Some(uid));
            let live = !seen && now.duration_since(*applied) < STAND_IN;
            if live && belongs(job) {
                cached.push(Arc::clone(job));
                let end = *applied + STAND_IN;
                ends = Some(ends.map_or(end, |first| first.min(end)));
            }
            live
        });
        (cached, ends)
    }

    /// Drops the entries of the Jobs of the flow with UID `flow_uid` (the flow is gone).
    pub fn forget_flow(&self, flow_uid: &str) {
        self.lock().retain(|_, (job, _)| {
            !job.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.uid == flow_uid)
        });
    }

    /// How many applied Jobs stand in for the cache (entries expire on the next read after
    /// [`STAND_IN`]).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Job>, Instant)>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, uid: &str) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some(name.into());
        job.metadata.uid = Some(uid.into());
        job
    }

    fn names(jobs: &[Arc<Job>]) -> Vec<String> {
        jobs.iter()
            .map(|job| job.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn an_applied_job_stands_in_until_the_cache_shows_it() {
        let applied = AppliedJobs::default();
        let start = Instant::now();
        applied.record(job("f-a-1", "u1"), start);
        let seen = applied.with_unseen(vec![], |_| true, start).0;
        assert_eq!(names(&seen), ["f-a-1"]);
        // The cache caught up: the cached object is used and the entry goes.
        let cached = vec![Arc::new(job("f-a-1", "u1"))];
        assert_eq!(applied.with_unseen(cached, |_| true, start).0.len(), 1);
        assert!(applied.with_unseen(vec![], |_| true, start).0.is_empty());
    }

    #[test]
    fn other_flows_jobs_and_old_entries_are_left_out() {
        let applied = AppliedJobs::default();
        let start = Instant::now();
        applied.record(job("g-a-1", "u2"), start);
        assert!(
            applied
                .with_unseen(
                    vec![],
                    |job| job.metadata.name.as_deref() == Some("f"),
                    start
                )
                .0
                .is_empty()
        );
        assert_eq!(
            applied.with_unseen(vec![], |_| true, start).0.len(),
            1,
            "kept for its own flow"
        );
        assert!(
            applied
                .with_unseen(vec![], |_| true, start + STAND_IN)
                .0
                .is_empty()
        );
    }

    #[test]
    fn a_stand_in_says_when_it_ends() {
        let applied = AppliedJobs::default();
        let start = Instant::now();
        applied.record(job("f-a-1", "u1"), start);
        applied.record(job("f-b-1", "u2"), start + Duration::from_secs(5));
        let (_, ends) = applied.with_unseen(vec![], |_| true, start + Duration::from_secs(6));
        assert_eq!(ends, Some(start + STAND_IN));
        let (_, none) = applied.with_unseen(vec![], |_| false, start);
        assert_eq!(none, None, "only the stand-ins used count");
    }

    #[test]
    fn a_gone_flows_jobs_are_forgotten() {
        let applied = AppliedJobs::default();
        let owned = |name: &str, uid: &str, owner: &str| {
            let mut job = job(name, uid);
            job.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    uid: owner.into(),
                    ..Default::default()
                },
            ]);
            job
        };
        let start = Instant::now();
        applied.record(owned("f-a-1", "u1", "flow-f"), start);
        applied.record(owned("g-a-1", "u2", "flow-g"), start);
        applied.forget_flow("flow-f");
        assert_eq!(applied.len(), 1);
        assert_eq!(
            names(&applied.with_unseen(vec![], |_| true, start).0),
            ["g-a-1"]
        );
    }
}
