//! Why a reconcile failed, named after the action that failed.

use crate::kube::call::CallError;

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
        /// What went wrong.
        source: CallError,
    },
    /// Creating a step's Job failed.
    #[error("creating Job {name}")]
    CreateJob {
        /// The Job's name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
    /// Deleting a step's Job failed.
    #[error("deleting Job {name}")]
    DeleteJob {
        /// The Job's name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
    /// Writing the status subresource failed.
    #[error("writing the flow's status")]
    PatchStatus {
        /// What went wrong.
        source: CallError,
    },
    /// Reading a step's Job missing from the cache, to confirm it is gone, failed.
    #[error("reading Job {name} to confirm it was deleted")]
    ConfirmJob {
        /// The Job's name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
    /// Deleting the flow after its TTL failed.
    #[error("deleting the flow")]
    DeleteFlow {
        /// What went wrong.
        source: CallError,
    },
}

impl Error {
    /// A short static name for the `error` label of `zen_flow_reconciliation_errors_total`:
    /// `confirm_leadership` for any write this replica did not send because it may no longer
    /// lead, else the action that failed.
    pub fn metric_label(&self) -> &'static str {
        if matches!(self.call_error(), Some(CallError::Lapsed(_))) {
            return "confirm_leadership";
        }
        match self {
            Self::ReadNamespace => "read_namespace",
            Self::NameObject { .. } => "name_object",
            Self::CreateResource { .. } => "create_resource",
            Self::CreateJob { .. } => "create_job",
            Self::DeleteJob { .. } => "delete_job",
            Self::PatchStatus { .. } => "patch_status",
            Self::ConfirmJob { .. } => "confirm_job",
            Self::DeleteFlow { .. } => "delete_flow",
        }
    }

    /// The failed call, if a call failed.
    pub fn call_error(&self) -> Option<&CallError> {
        match self {
            Self::ReadNamespace | Self::NameObject { .. } => None,
            Self::CreateResource { source, .. }
            | Self::CreateJob { source, .. }
            | Self::DeleteJob { source, .. }
            | Self::PatchStatus { source }
            | Self::ConfirmJob { source, .. }
            | Self::DeleteFlow { source } => Some(source),
        }
    }
}

/// The wait before retrying a flow after `failures` reconciles in a row failed:
/// 1 s, 2 s, 4 s, … up to 5 minutes.
pub fn retry_delay(failures: u32) -> std::time::Duration {
    const MAX: std::time::Duration = std::time::Duration::from_secs(300);
    let exponent = failures.saturating_sub(1).min(16);
    std::time::Duration::from_secs(1u64 << exponent).min(MAX)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::chain;
    use crate::kube::leadership::Lapsed;

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
            source: CallError::Api(kube::Error::LinesCodecMaxLineLengthExceeded),
        };
        assert_eq!(
            chain(&e),
            "writing the flow's status: Error finding newline character"
        );
        assert_eq!(e.metric_label(), "patch_status");
    }

    #[test]
    fn a_write_not_sent_for_lost_leadership_has_its_own_label() {
        let e = Error::CreateJob {
            name: "f-a-1".to_owned(),
            source: CallError::Lapsed(Lapsed::HoldLease),
        };
        assert_eq!(e.metric_label(), "confirm_leadership");
        assert_eq!(
            chain(&e),
            "creating Job f-a-1: not sent: confirming leadership: this replica does not hold the Lease"
        );
    }
}
