//! Every condition type the agent writes on a flow (`status.conditions[].type`), defined once.
//! The planner, the plugin and the tests use these constants, never the strings; their reasons
//! are in [`reasons`](super::reasons).

/// Whether the flow is where it should be: `True` once it succeeded, `False` with the reason
/// while it runs, waits or failed. `kubectl wait --for=condition=Ready` reads it.
pub const READY: &str = "Ready";

/// The status was over its size budget and finished steps' messages or outputs were dropped.
pub const STATUS_TRIMMED: &str = "StatusTrimmed";

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::api::JobFlow;

    #[test]
    fn condition_types_are_the_wire_names_users_wait_for() {
        assert_eq!(READY, "Ready");
        assert_eq!(STATUS_TRIMMED, "StatusTrimmed");
    }

    #[test]
    fn the_message_column_reads_the_ready_condition() {
        // The printcolumn is a literal in a derive attribute: this keeps it on READY.
        let crd = serde_json::to_string(&JobFlow::crd()).unwrap_or_default();
        assert!(
            crd.contains(&format!(r#"@.type==\"{READY}\""#)),
            "no printcolumn reads the {READY} condition"
        );
    }
}
