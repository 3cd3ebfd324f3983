//! Every API call the agent makes runs here: under a timeout, counted, and, for the writes of the
//! controllers, only while this replica may lead. One helper and one error type for all of them
//! (the flow controller, the Lease, the webhook's certificates).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::leadership::{Lapsed, Leadership};
use crate::metrics::{Metrics, Operation, Resource};

/// The longest a reconcile's API call may take before the reconcile gives up and retries later.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How one API call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the call's timeout.
    #[error("no answer within {timeout:?}")]
    TimedOut {
        /// The timeout.
        timeout: Duration,
    },
    /// The API server or the connection to it failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// This replica may no longer lead: the write was not sent.
    #[error("not sent")]
    Lapsed(#[source] Lapsed),
}

impl CallError {
    /// The API server's answer, when it gave one.
    pub fn status(&self) -> Option<&kube::core::Status> {
        match self {
            Self::Api(kube::Error::Api(status)) => Some(status),
            _ => None,
        }
    }

    /// Whether the API server answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(kube::core::Status::is_not_found)
    }

    /// Whether the API server answered 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        self.status()
            .is_some_and(kube::core::Status::is_already_exists)
    }

    /// The API server's message if this is a permanent refusal: a 4xx other than 409 (conflict)
    /// and 429 (too many requests). Everything else (5xx, timeouts, a lost connection) may pass
    /// if tried again.
    pub fn permanent_refusal(&self) -> Option<String> {
        let status = self.status()?;
        if !(400..500).contains(&status.code) || matches!(status.code, 409 | 429) {
            return None;
        }
        Some(if status.message.is_empty() {
            format!("{} ({})", status.reason, status.code)
        } else {
            status.message.clone()
        })
    }
}

/// Runs `call` under `timeout`.
pub async fn timed<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(CallError::Api),
        Err(_) => Err(CallError::TimedOut { timeout }),
    }
}

/// The calls of a controller: reads and writes, each under [`CALL_TIMEOUT`] and counted; a write
/// is sent only if the leadership guard allows it right before (a replica frozen past its renew
/// deadline sends nothing, whichever of its tasks runs first after the stall).
#[derive(Clone, Debug)]
pub struct Calls {
    leadership: Leadership,
    metrics: Arc<Metrics>,
}

impl Calls {
    /// Calls guarded by `leadership` and counted in `metrics`.
    pub fn new(leadership: Leadership, metrics: Arc<Metrics>) -> Self {
        Self {
            leadership,
            metrics,
        }
    }

    /// Sends the write `call` (`operation` on `resource`) if this replica may lead now.
    pub async fn write<T>(
        &self,
        operation: Operation,
        resource: Resource,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        if let Err(lapsed) = self.leadership.confirm() {
            tracing::warn!(
                operation = operation.as_str(),
                resource = resource.as_str(),
                error = %lapsed,
                "not writing: this replica may no longer lead"
            );
            return Err(CallError::Lapsed(lapsed));
        }
        self.metrics.api_call(operation, resource);
        tracing::debug!(
            operation = operation.as_str(),
            resource = resource.as_str(),
            "API write"
        );
        timed(CALL_TIMEOUT, call).await
    }

    /// Sends the read `call` (a GET of `resource`); reads need no leadership.
    pub async fn read<T>(
        &self,
        resource: Resource,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        self.metrics.api_call(Operation::Get, resource);
        timed(CALL_TIMEOUT, call).await
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> CallError {
        CallError::Api(kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "Reason").with_code(code),
        )))
    }

    #[test]
    fn only_a_4xx_other_than_conflict_and_throttling_is_permanent() {
        assert_eq!(
            api_error(422, "label too long")
                .permanent_refusal()
                .as_deref(),
            Some("label too long")
        );
        assert_eq!(
            api_error(403, "").permanent_refusal().as_deref(),
            Some("Reason (403)")
        );
        for code in [409, 429, 500, 503, 504] {
            assert_eq!(api_error(code, "x").permanent_refusal(), None, "{code}");
        }
        let timeout = CallError::TimedOut {
            timeout: CALL_TIMEOUT,
        };
        assert_eq!(timeout.permanent_refusal(), None);
        let not_found = CallError::Api(kube::Error::Api(Box::new(
            kube::core::Status::failure("gone", "NotFound").with_code(404),
        )));
        assert!(not_found.is_not_found());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_times_out() {
        let never = std::future::pending::<Result<(), kube::Error>>();
        let result = timed(Duration::from_secs(3), never).await;
        assert!(
            matches!(result, Err(CallError::TimedOut { timeout }) if timeout == Duration::from_secs(3))
        );
    }

    #[tokio::test]
    async fn a_write_is_not_sent_without_leadership() {
        let calls = Calls::new(Leadership::elected(), Arc::new(Metrics::new().unwrap()));
        let sent = std::sync::atomic::AtomicBool::new(false);
        let result = calls
            .write(Operation::Create, Resource::Jobs, async {
                sent.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(CallError::Lapsed(Lapsed::HoldLease))));
        assert!(!sent.load(std::sync::atomic::Ordering::SeqCst));
    }
}
