//! Reconcile errors, named after the action that failed, and the retry delay after them.

use std::time::Duration;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flow has no namespace (`JobFlows` are namespaced; the API server always sets one).
    #[error("reading the flow's namespace")]
    ReadNamespace,
    /// An object the plan asks to write has no name.
    #[error("naming the {kind} to write")]
    NameObject {
        /// The object's kind.
        kind: String,
    },
    /// Creating a resource template's object (`ConfigMap`, `PersistentVolumeClaim`) failed.
    #[error("creating {kind} {name}")]
    CreateResource {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating a step's Job failed.
    #[error("creating Job {name}")]
    CreateJob {
        /// The Job's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting a step's Job failed.
    #[error("deleting Job {name}")]
    DeleteJob {
        /// The Job's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the status subresource failed.
    #[error("writing the flow's status")]
    PatchStatus {
        /// The API error.
        source: kube::Error,
    },
    /// Reading a step's Job missing from the cache, to confirm it is gone, failed.
    #[error("reading Job {name} to confirm it was deleted")]
    ConfirmJob {
        /// The Job's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// This replica may no longer be the leader: the write was not made.
    #[error("writing {write}")]
    ConfirmLeadership {
        /// What was to be written (e.g. `create jobs`).
        write: String,
        /// Why leadership may have lapsed.
        source: crate::leader::Lapsed,
    },
    /// Deleting the flow after its TTL failed.
    #[error("deleting the flow")]
    DeleteFlow {
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    /// A short static name for the `error` label of `zen_flow_reconciliation_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadNamespace => "read_namespace",
            Self::NameObject { .. } => "name_object",
            Self::CreateResource { .. } => "create_resource",
            Self::CreateJob { .. } => "create_job",
            Self::DeleteJob { .. } => "delete_job",
            Self::PatchStatus { .. } => "patch_status",
            Self::ConfirmJob { .. } => "confirm_job",
            Self::DeleteFlow { .. } => "delete_flow",
            Self::ConfirmLeadership { .. } => "confirm_leadership",
        }
    }
}

/// An error with its sources, `outer: inner: innermost`, for one log line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The wait before retrying a flow after `failures` reconciles in a row failed:
/// 1 s, 2 s, 4 s, … up to 5 minutes.
pub fn retry_delay(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(300);
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = [0, 1, 2, 3, 9, 10, 40, u32::MAX]
            .iter()
            .map(|n| retry_delay(*n).as_secs())
            .collect();
        assert_eq!(secs, [1, 1, 2, 4, 256, 300, 300, 300]);
    }

    #[test]
    fn chain_joins_sources_without_repeating() {
        let e = Error::PatchStatus {
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert_eq!(
            chain(&e),
            "writing the flow's status: Error finding newline character"
        );
        assert_eq!(e.metric_label(), "patch_status");
    }
}
