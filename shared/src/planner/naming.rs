//! The names of the objects a flow creates: its steps' Jobs and its resource templates.
//!
//! A name is readable (`<flow>-<step>-<attempt>-<hash>`, `<flow>-<template>-<hash>`) and ends
//! with a hash of the flow's UID and the step or template name. The readable part alone is
//! ambiguous (flow `a-b` step `c` and flow `a` step `b-c` both read `a-b-c`); the hash tells them
//! apart, and a flow deleted and re-created under the same name gets new names, so it never
//! meets its predecessor's objects while they are garbage-collected. The same (flow, step,
//! attempt) always gives the same name, so creating a step's Job twice (after an agent restart,
//! say) finds the first one instead of making a second. A hash can still collide (about one in
//! two billion per pair of names in a namespace): the agent never takes over an object whose
//! controller is not the flow, and fails the step with `NameConflict` instead.

use crate::api::JobFlow;

/// The longest name a Job may have so that its pods' labels stay valid.
pub const MAX_JOB_NAME: usize = 63;
/// The longest name of a resource template's object (a DNS subdomain).
const MAX_OBJECT_NAME: usize = 253;
/// The digits of the hash suffix: base 36, lowercase, so names stay DNS labels.
const HASH_DIGITS: usize = 6;

/// The Job name of `attempt` (from 1) of `step` in `flow`.
pub fn job_name(flow: &JobFlow, step: &str, attempt: i32) -> String {
    let suffix = format!("-{attempt}-{}", identity_hash(flow, "step", step));
    readable(flow_name(flow), step, &suffix, MAX_JOB_NAME)
}

/// The name of the object made from resource template `template` of `flow`.
pub fn resource_name(flow: &JobFlow, template: &str) -> String {
    let suffix = format!("-{}", identity_hash(flow, "resource", template));
    readable(flow_name(flow), template, &suffix, MAX_OBJECT_NAME)
}

fn flow_name(flow: &JobFlow) -> &str {
    flow.metadata.name.as_deref().unwrap_or_default()
}

/// `<flow>-<part><suffix>`, the readable prefix cut (never mid-way through the suffix) to fit.
fn readable(flow: &str, part: &str, suffix: &str, max: usize) -> String {
    let prefix = format!("{flow}-{part}");
    let keep = max.saturating_sub(suffix.len()).min(prefix.len());
    // Names are ASCII after validation; stay on a character boundary for any other input.
    let keep = (0..=keep)
        .rev()
        .find(|index| prefix.is_char_boundary(*index))
        .unwrap_or(0);
    let prefix = prefix[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}{suffix}")
}

/// A hash of the flow's identity (its UID; its name when it has none, as offline) and `what`.
fn identity_hash(flow: &JobFlow, kind: &str, what: &str) -> String {
    let identity = flow
        .metadata
        .uid
        .as_deref()
        .unwrap_or_else(|| flow_name(flow));
    // NUL separates the parts: it occurs in none of them, so the hashed text is unambiguous.
    let hash = fnv1a(format!("{identity}\0{kind}\0{what}").as_bytes());
    base36(hash, HASH_DIGITS)
}

/// The lowest `digits` base-36 digits of `value`.
fn base36(mut value: u64, digits: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; digits];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[usize::try_from(value % 36).unwrap_or_default()];
        value /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// 64-bit FNV-1a: stable across releases and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::JobFlowSpec;

    fn flow(name: &str, uid: &str) -> JobFlow {
        let mut flow = JobFlow::new(name, JobFlowSpec::default());
        flow.metadata.uid = Some(uid.to_owned());
        flow
    }

    #[test]
    fn names_read_flow_step_attempt_and_end_with_a_hash() {
        let name = job_name(&flow("etl", "u1"), "load", 2);
        let (readable, hash) = name.rsplit_once('-').unwrap();
        assert_eq!(readable, "etl-load-2");
        assert_eq!(hash.len(), HASH_DIGITS);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert_eq!(name, job_name(&flow("etl", "u1"), "load", 2), "stable");
    }

    #[test]
    fn names_that_read_alike_differ() {
        // Flow `a-b` step `c` and flow `a` step `b-c`: the same readable part.
        let one = job_name(&flow("a-b", "u1"), "c", 1);
        let two = job_name(&flow("a", "u2"), "b-c", 1);
        assert_ne!(one, two);
        assert_ne!(
            resource_name(&flow("a-b", "u1"), "c"),
            resource_name(&flow("a", "u2"), "b-c")
        );
        // Even with one UID (it never happens, but the hash must not rely on it).
        assert_ne!(
            job_name(&flow("a-b", "u"), "c", 1),
            job_name(&flow("a", "u"), "b-c", 1)
        );
    }

    #[test]
    fn a_recreated_flow_gets_new_names() {
        assert_ne!(
            job_name(&flow("etl", "old-uid"), "load", 1),
            job_name(&flow("etl", "new-uid"), "load", 1)
        );
        assert_ne!(
            resource_name(&flow("etl", "old-uid"), "scratch"),
            resource_name(&flow("etl", "new-uid"), "scratch")
        );
    }

    #[test]
    fn jobs_and_resources_of_one_name_differ() {
        let f = flow("etl", "u");
        assert_ne!(job_name(&f, "x", 1), resource_name(&f, "x-1"));
    }

    #[test]
    fn long_names_fit_and_keep_attempt_and_hash() {
        let f = flow(&"a".repeat(63), "u");
        let name = job_name(&f, &"t".repeat(63), 2_147_483_647);
        assert!(name.len() <= MAX_JOB_NAME, "{name}");
        assert!(name.contains("-2147483647-"), "{name}");
        assert_ne!(name, job_name(&f, &"t".repeat(62), 2_147_483_647));
        assert!(resource_name(&f, &"t".repeat(63)).len() <= MAX_OBJECT_NAME);
    }

    #[test]
    fn cut_names_do_not_end_the_prefix_with_a_dash() {
        let f = flow(&format!("{}-b", "a".repeat(40)), "u");
        let name = job_name(&f, &"c".repeat(40), 1);
        assert!(!name.contains("--"), "{name}");
        assert!(!name.starts_with('-'));
    }
}
