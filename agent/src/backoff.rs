//! Consecutive reconcile failures per flow, for the retry delay.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::retry_delay;

/// Failures in a row, by flow UID.
#[derive(Debug, Default)]
pub struct Backoffs {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoffs {
    /// Counts a failure of the flow `uid` and returns the wait before its retry.
    pub fn failed(&self, uid: &str) -> Duration {
        let mut failures = self.lock();
        let n = failures.entry(uid.to_owned()).or_default();
        *n = n.saturating_add(1);
        retry_delay(*n)
    }

    /// The flow `uid` reconciled: its next failure waits the shortest time again.
    pub fn succeeded(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps only the entries of `live` flows.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn failures_grow_the_delay_and_success_resets_it() {
        let b = Backoffs::default();
        assert_eq!(b.failed("u").as_secs(), 1);
        assert_eq!(b.failed("u").as_secs(), 2);
        assert_eq!(b.failed("u").as_secs(), 4);
        b.succeeded("u");
        assert_eq!(b.failed("u").as_secs(), 1);
        b.retain(&HashSet::new());
        assert_eq!(b.failed("u").as_secs(), 1);
    }
}
