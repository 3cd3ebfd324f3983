//! Bounds that validation (or the planner) enforces but the CRD schema does not state, from
//! [`crate::limits`], keyed by field path.

use std::time::Duration;

use crate::limits::{
    MAX_BACKOFF, MAX_BACKOFF_FACTOR, MAX_BACKOFF_LIMIT, MAX_FLOW_NAME, MAX_OUTPUT_BYTES,
    MAX_SECONDS, MAX_STEP_NAME_LENGTH, MAX_STEP_RETRIES, MAX_TTL_SECONDS,
};

/// A field the schema leaves to the API server's object metadata, documented for its limit.
pub struct ExtraField {
    /// The field path.
    pub path: &'static str,
    /// Its type.
    pub type_name: &'static str,
    /// What it is.
    pub description: &'static str,
}

/// Fields outside the schema whose limits the reference shows, in order.
pub const EXTRA_FIELDS: &[ExtraField] = &[ExtraField {
    path: "metadata.name",
    type_name: "string",
    description: "The flow's name (standard object metadata). The agent puts it in the label \
                  `workflow.kube-zen.io/flow` on every Job and pod, so it is at most a label \
                  value's length.",
}];

/// The limits from [`crate::limits`] that apply to the field at `path`, as text for the
/// reference; empty when none does. Step fields apply under both `spec.steps[]` and
/// `spec.finally[]`.
pub fn limits_for(path: &str) -> Vec<String> {
    let step_field = path
        .strip_prefix("spec.steps[].")
        .or_else(|| path.strip_prefix("spec.finally[]."));
    match (path, step_field) {
        ("metadata.name", _) => vec![limit(
            &format!("at most {MAX_FLOW_NAME} characters"),
            "MAX_FLOW_NAME",
        )],
        (_, Some("name")) => vec![limit(
            &format!("at most {MAX_STEP_NAME_LENGTH} characters"),
            "MAX_STEP_NAME_LENGTH",
        )],
        ("spec.executionPolicy.ttlSecondsAfterFinished", _) => vec![limit(
            &format!("at most {MAX_TTL_SECONDS} ({})", days(MAX_TTL_SECONDS)),
            "MAX_TTL_SECONDS",
        )],
        ("spec.executionPolicy.activeDeadlineSeconds", _) | (_, Some("timeoutSeconds")) => {
            vec![limit(
                &format!("at most {MAX_SECONDS} ({})", days(MAX_SECONDS)),
                "MAX_SECONDS",
            )]
        }
        ("spec.executionPolicy.backoffLimit", _) => vec![limit(
            &format!("at most {MAX_BACKOFF_LIMIT}"),
            "MAX_BACKOFF_LIMIT",
        )],
        (_, Some("retryPolicy.limit")) => vec![limit(
            &format!("at most {MAX_STEP_RETRIES}"),
            "MAX_STEP_RETRIES",
        )],
        (_, Some("retryPolicy.backoff.duration")) => vec![limit(
            &format!("at most {} (also any wait it grows to)", hours(MAX_BACKOFF)),
            "MAX_BACKOFF",
        )],
        (_, Some("retryPolicy.backoff.factor")) => vec![limit(
            &format!("at most {MAX_BACKOFF_FACTOR}"),
            "MAX_BACKOFF_FACTOR",
        )],
        (_, Some("outputs.parameters")) => vec![format!(
            "names and values kept up to {MAX_OUTPUT_BYTES} bytes per step; the planner drops \
             values past it (`jobflow::limits::MAX_OUTPUT_BYTES`)"
        )],
        _ => Vec::new(),
    }
}

/// A limit enforced by validation, naming its constant.
fn limit(text: &str, constant: &str) -> String {
    format!("{text}, enforced by validation (`jobflow::limits::{constant}`)")
}

/// Whole days in `seconds`, e.g. `30 days`.
fn days(seconds: i64) -> String {
    format!("{} days", seconds / (24 * 3600))
}

/// Whole hours in `duration`, e.g. `24h`.
fn hours(duration: Duration) -> String {
    format!("{}h", duration.as_secs() / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_limits_apply_to_steps_and_finally() {
        for prefix in ["spec.steps[]", "spec.finally[]"] {
            let found = limits_for(&format!("{prefix}.retryPolicy.limit"));
            assert_eq!(found.len(), 1, "{prefix}");
            assert!(found[0].contains("MAX_STEP_RETRIES"), "{found:?}");
        }
        assert!(limits_for("spec.steps[].when").is_empty());
    }

    #[test]
    fn flow_name_limit_is_63() {
        assert!(limits_for("metadata.name")[0].starts_with("at most 63 characters"));
    }
}
