//! Labels and annotations the agent puts on a step's Job and pods, and the flow name it puts in
//! a label: Kubernetes' own rules, so the API server never refuses the Job for them.

use std::collections::BTreeMap;

use super::problems::Problems;
use crate::labels;
use crate::limits::MAX_FLOW_NAME;

/// The longest name part of a qualified name, and the longest label value.
const MAX_NAME: usize = 63;
/// The longest prefix (a DNS subdomain) of a qualified name.
const MAX_PREFIX: usize = 253;
/// The most bytes all annotations of one object may take, keys and values together.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Checks that the flow's name (when it has one) fits the value of the label
/// [`labels::FLOW`].
pub(super) fn check_flow_name(name: Option<&str>, problems: &mut Problems) {
    let Some(length) = name.map(|name| name.chars().count()) else {
        return;
    };
    if length > MAX_FLOW_NAME {
        problems.invalid(
            "metadata.name",
            format!(
                "is {length} characters long; use a name of at most {MAX_FLOW_NAME} characters: the agent puts the flow's name in the label {} on every Job and pod, and a label value is at most {MAX_FLOW_NAME} characters",
                labels::FLOW
            ),
        );
    }
}

/// Checks labels found at `path` (e.g. `spec.steps[0].metadata.labels`).
pub(super) fn check_labels(labels: &BTreeMap<String, String>, path: &str, problems: &mut Problems) {
    for (key, value) in labels {
        let at = format!("{path}[{key:?}]");
        if let Some(why) = qualified_name_problem(key) {
            problems.invalid(at.clone(), format!("label key {key:?} {why}"));
        }
        if let Some(why) = label_value_problem(value) {
            problems.invalid(at, format!("label value {value:?} {why}"));
        }
    }
}

/// Checks annotations found at `path` (e.g. `spec.steps[0].metadata.annotations`).
pub(super) fn check_annotations(
    annotations: &BTreeMap<String, String>,
    path: &str,
    problems: &mut Problems,
) {
    for key in annotations.keys() {
        if let Some(why) = qualified_name_problem(key) {
            problems.invalid(
                format!("{path}[{key:?}]"),
                format!("annotation key {key:?} {why}"),
            );
        }
    }
    let bytes: usize = annotations
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if bytes > MAX_ANNOTATION_BYTES {
        problems.invalid(
            path,
            format!(
                "annotations take {bytes} bytes, more than Kubernetes' {MAX_ANNOTATION_BYTES}; shorten them or keep large data in a ConfigMap"
            ),
        );
    }
}

/// Why `key` is not a qualified name (`[prefix/]name`), with how to fix it.
fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Some(format!(
            "has prefix {prefix:?}, which is not a DNS subdomain of at most {MAX_PREFIX} characters; use lowercase letters, digits, '-' and '.', e.g. example.com/{name}"
        ));
    }
    if name.is_empty() || name.len() > MAX_NAME || !is_name_part(name) {
        return Some(format!(
            "is not a qualified name; the part after any '/' must be 1 to {MAX_NAME} characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit, e.g. team or example.com/team"
        ));
    }
    None
}

/// Why `value` is not a label value, with how to fix it.
fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > MAX_NAME || !(value.is_empty() || is_name_part(value)) {
        return Some(format!(
            "is not a valid label value; use at most {MAX_NAME} characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or an empty value); put other text in an annotation"
        ));
    }
    None
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_name_part(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Dot-separated DNS labels, at most 253 characters.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= MAX_PREFIX && text.split('.').all(super::names::is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_follow_kubernetes() {
        for good in ["team", "a.b_c-d", "example.com/team", "x/Y9"] {
            assert_eq!(qualified_name_problem(good), None, "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "-team",
            "team.",
            "a b",
            "/team",
            "Example.com/team",
            "a/b/c",
            &long,
        ] {
            assert!(qualified_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn label_values_follow_kubernetes() {
        for good in ["", "v1", "a-b_c.d"] {
            assert_eq!(label_value_problem(good), None, "{good}");
        }
        for bad in ["has space", "trailing-", &"v".repeat(64), "a/b"] {
            assert!(label_value_problem(bad).is_some(), "{bad}");
        }
    }
}
