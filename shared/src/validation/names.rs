//! Step names: DNS-1123 labels short enough for readable Job names, and spelling suggestions.

use crate::limits::MAX_STEP_NAME_LENGTH;

/// What is wrong with `name` as a step name, with how to fix it; None when it is fine.
pub(super) fn step_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(
            "a step needs a name; use lowercase letters, digits and '-', e.g. \"build\"".to_owned(),
        );
    }
    let length = name.chars().count();
    if length > MAX_STEP_NAME_LENGTH {
        return Some(format!(
            "step name {name:?} is {length} characters long; use at most {MAX_STEP_NAME_LENGTH} so Job names (<flow>-<step>-<attempt>) stay readable within Kubernetes' 63-character limit"
        ));
    }
    if is_dns_label(name) {
        return None;
    }
    let suggestion = as_dns_label(name);
    let example = if suggestion.is_empty() {
        String::new()
    } else {
        format!(", e.g. {suggestion:?}")
    };
    Some(format!(
        "step name {name:?} is not a DNS-1123 label; use lowercase letters, digits and '-', starting and ending with a letter or digit{example}"
    ))
}

pub(super) fn is_dns_label(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.chars().all(|c| allowed(c) || c == '-')
        && name.chars().next().is_some_and(allowed)
        && name.chars().last().is_some_and(allowed)
}

/// `name` lowercased, with runs of other characters turned into one '-', trimmed of '-'.
fn as_dns_label(name: &str) -> String {
    let mut label = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            label.push(c);
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    label
        .trim_matches('-')
        .chars()
        .take(MAX_STEP_NAME_LENGTH)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// The candidate closest to `name` when it is at most two edits away (and closer than half of
/// `name`), the first declared among equals.
pub(super) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = 2.min(name.chars().count() / 2);
    candidates
        .into_iter()
        .filter(|&candidate| candidate != name)
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each count as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        table[i * width] = i;
    }
    for (j, cell) in table.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_up_to_48_characters() {
        for name in [
            "a",
            "build",
            "extract-a",
            "step-2",
            "9lives",
            &"a".repeat(48),
        ] {
            assert_eq!(step_name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn rejects_names_that_are_not_dns_labels_with_a_suggestion() {
        let message = step_name_problem("Build_Step").unwrap_or_default();
        assert!(message.contains("is not a DNS-1123 label"), "{message}");
        assert!(message.ends_with("e.g. \"build-step\""), "{message}");
        for name in ["-a", "a-", "a.b", "ä", "A"] {
            assert!(step_name_problem(name).is_some(), "{name}");
        }
        assert!(
            step_name_problem("")
                .unwrap_or_default()
                .starts_with("a step needs a name")
        );
    }

    #[test]
    fn rejects_names_longer_than_48_characters_and_says_why() {
        let message = step_name_problem(&"a".repeat(49)).unwrap_or_default();
        assert!(
            message.contains("49 characters long; use at most 48"),
            "{message}"
        );
        assert!(message.contains("63-character limit"), "{message}");
    }

    #[test]
    fn suggests_the_closest_name_within_two_edits() {
        let names = ["extract", "transform", "load"];
        assert_eq!(closest("transfrom", names), Some("transform"));
        assert_eq!(closest("lod", names), Some("load"));
        assert_eq!(closest("extracted", names), Some("extract"));
        assert_eq!(closest("deploy", names), None);
        // Short names need a closer match: "ab" is not a typo of "xy".
        assert_eq!(closest("ab", ["xy"]), None);
        assert_eq!(closest("a", ["b"]), None);
    }

    #[test]
    fn counts_swaps_as_one_edit() {
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
