//! One reconcile at a time per concurrency key.
//!
//! Whether a flow may start depends on its peers' status. Two reconciles of peers running at
//! once would each plan from a view that lacks the other's decision and could both start; taking
//! the key's lock for the whole observe-plan-apply makes the later one see the earlier one's
//! status write (read back through the index's read-your-writes overlay).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// A namespace and a concurrency key.
type Key = (String, String);

/// Async locks by (namespace, concurrency key).
#[derive(Debug, Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    /// Waits for the turn of `key` in `namespace`; the turn lasts as long as the guard.
    pub async fn lock(&self, namespace: &str, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Keys of flows that are gone cost a few bytes each; drop the idle ones now and then.
            if locks.len() > 1024 {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            Arc::clone(
                locks
                    .entry((namespace.to_owned(), key.to_owned()))
                    .or_default(),
            )
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_and_keys_are_independent() {
        let locks = KeyLocks::default();
        let held = locks.lock("ns", "db").await;
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("ns", "db")).await;
        assert!(same.is_err(), "a second turn of the same key must wait");
        let other =
            tokio::time::timeout(Duration::from_millis(50), locks.lock("ns", "cache")).await;
        assert!(other.is_ok());
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), locks.lock("ns", "db"))
                .await
                .is_ok()
        );
    }
}
