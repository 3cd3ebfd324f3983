//! Deterministic Job names: `<flow>-<step>-<attempt>`, shortened with a hash to fit 63 characters.
//!
//! The same (flow, step, attempt) always gives the same name, so creating a step's Job twice
//! (after an agent restart, say) applies the same object instead of making a second Job.

/// The longest name a Job may have so that its pods' labels stay valid.
pub const MAX_JOB_NAME: usize = 63;

/// The Job name of `attempt` (from 1) of `step` in `flow`.
pub fn job_name(flow: &str, step: &str, attempt: i32) -> String {
    let full = format!("{flow}-{step}-{attempt}");
    if full.len() <= MAX_JOB_NAME {
        return full;
    }
    // Keep the attempt readable at the end and make the prefix unique with a hash of the
    // whole (flow, step) pair.
    let suffix = format!(
        "-{:010x}-{attempt}",
        fnv1a(format!("{flow}/{step}").as_bytes()) & 0xff_ffff_ffff
    );
    let keep = MAX_JOB_NAME - suffix.len();
    let prefix = format!("{flow}-{step}");
    let prefix = prefix[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}{suffix}")
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

    #[test]
    fn short_names_are_plain() {
        assert_eq!(job_name("etl", "load", 1), "etl-load-1");
    }

    #[test]
    fn long_names_are_shortened_with_a_stable_hash() {
        let flow = "a".repeat(60);
        let name = job_name(&flow, "transform", 12);
        assert!(name.len() <= MAX_JOB_NAME, "{name}");
        assert!(name.ends_with("-12"));
        assert_eq!(name, job_name(&flow, "transform", 12));
        assert_ne!(name, job_name(&flow, "transforn", 12));
        assert_ne!(name, job_name(&flow, "transform", 13));
    }

    #[test]
    fn shortened_names_do_not_end_the_prefix_with_a_dash() {
        let flow = format!("{}-b", "a".repeat(40));
        let name = job_name(&flow, &"c".repeat(40), 1);
        assert!(!name.contains("--"), "{name}");
    }
}
