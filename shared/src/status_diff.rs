//! What a status write changes, as an RFC 6902 JSON patch: empty when the planned status is
//! the one the flow has. The agent writes the status (a server-side apply of the whole status,
//! not this patch) only when the patch is not empty, and logs the patch at debug level.

use json_patch::{Patch, PatchOperation, ReplaceOperation};
use serde_json::Value;

use crate::api::JobFlowStatus;

/// The patch that turns `current` (None: the flow has no status yet, which reads as the empty
/// status) into `desired`.
pub fn status_patch(current: Option<&JobFlowStatus>, desired: &JobFlowStatus) -> Patch {
    let empty = JobFlowStatus::default();
    let current = current.unwrap_or(&empty);
    // The common case, an unchanged world, costs a comparison and no serialization.
    if current == desired {
        return Patch(Vec::new());
    }
    match (serde_json::to_value(current), serde_json::to_value(desired)) {
        (Ok(from), Ok(to)) => json_patch::diff(&from, &to),
        // Not reachable with these types; the whole status is then the change.
        _ => Patch(vec![PatchOperation::Replace(ReplaceOperation {
            path: json_patch::jsonptr::PointerBuf::new(),
            value: serde_json::to_value(desired).unwrap_or(Value::Null),
        })]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    use super::*;
    use crate::api::{FlowPhase, StepPhase, StepStatus};

    /// A step's name, phase, message, outputs and completion second.
    type StepFields = (
        String,
        StepPhase,
        Option<String>,
        BTreeMap<String, String>,
        Option<i64>,
    );

    fn status(phase: Option<FlowPhase>, steps: Vec<StepFields>) -> JobFlowStatus {
        JobFlowStatus {
            phase,
            steps: steps
                .into_iter()
                .map(|(name, phase, message, outputs, completed)| StepStatus {
                    name,
                    phase,
                    message,
                    outputs,
                    completion_time: completed
                        .and_then(|s| jiff::Timestamp::from_second(s).ok())
                        .map(Time),
                    ..StepStatus::default()
                })
                .collect(),
            ..JobFlowStatus::default()
        }
    }

    fn any_status() -> impl Strategy<Value = JobFlowStatus> {
        let phase = prop_oneof![
            Just(None),
            Just(Some(FlowPhase::Running)),
            Just(Some(FlowPhase::Failed))
        ];
        let step_phase = prop_oneof![
            Just(StepPhase::Pending),
            Just(StepPhase::Running),
            Just(StepPhase::Succeeded)
        ];
        let step = (
            "[a-c]",
            step_phase,
            proptest::option::of("\\PC{0,8}"),
            proptest::collection::btree_map("[a-b]", "\\PC{0,4}", 0..2),
            proptest::option::of(0i64..100),
        );
        (phase, proptest::collection::vec(step, 0..4))
            .prop_map(|(phase, steps)| status(phase, steps))
    }

    #[test]
    fn an_unchanged_status_has_an_empty_patch() {
        let running = status(Some(FlowPhase::Running), vec![]);
        assert!(status_patch(Some(&running), &running.clone()).0.is_empty());
        assert!(status_patch(None, &JobFlowStatus::default()).0.is_empty());
        assert!(!status_patch(None, &running).0.is_empty());
    }

    #[test]
    fn a_changed_field_is_one_operation_at_its_path() {
        let before = status(Some(FlowPhase::Running), vec![]);
        let after = status(Some(FlowPhase::Failed), vec![]);
        let patch = status_patch(Some(&before), &after);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::json!([{"op": "replace", "path": "/phase", "value": "Failed"}])
        );
    }

    proptest! {
        /// Applying the patch to the current status gives the desired one, and it is empty
        /// exactly when the two are equal.
        #[test]
        fn applying_the_patch_gives_the_desired_status(current in any_status(), desired in any_status()) {
            let patch = status_patch(Some(&current), &desired);
            prop_assert_eq!(patch.0.is_empty(), current == desired);
            let mut value = serde_json::to_value(&current).unwrap();
            json_patch::patch(&mut value, &patch).unwrap();
            let patched: JobFlowStatus = serde_json::from_value(value).unwrap();
            prop_assert_eq!(patched, desired);
        }
    }
}
