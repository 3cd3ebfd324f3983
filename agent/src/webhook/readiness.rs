//! Whether this replica's webhook is fit to receive traffic: the leaf it serves chains to a CA
//! in the caBundle of every webhook, as the API server's configuration holds it. `/readyz`
//! reads it; liveness never does.

use std::sync::{Mutex, PoisonError};

/// The webhook's readiness, set by the sync loop.
#[derive(Debug)]
pub struct Readiness {
    not_ready: Mutex<Option<String>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            not_ready: Mutex::new(Some("no webhook certificate served yet".to_owned())),
        }
    }
}

impl Readiness {
    /// Ready.
    pub fn set_ready(&self) {
        *self.lock() = None;
    }

    /// Not ready, for `reason`.
    pub fn set_not_ready(&self, reason: String) {
        *self.lock() = Some(reason);
    }

    /// Why it is not ready; `None` when it is.
    pub fn not_ready(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.not_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
