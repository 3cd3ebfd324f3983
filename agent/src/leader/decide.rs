//! The leader-election rules, as pure functions of the Lease, this replica's identity and the
//! wall clock (a Lease is a wall-clock protocol between processes).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// What to do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew it.
    Renew,
    /// It is free or expired: take it.
    Acquire,
    /// Someone else holds it until `expires`.
    Follow {
        /// The holder's identity.
        holder: String,
        /// When the holder's claim lapses unless renewed.
        expires: Timestamp,
    },
}

/// Decides from the Lease's spec (None: no Lease or no spec).
///
/// A Lease without a holder, or whose holder has not renewed within its `leaseDurationSeconds`
/// (`default_duration` when unset), is free.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let duration = spec.lease_duration_seconds.map_or(
        SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX),
        |s| SignedDuration::from_secs(i64::from(s)),
    );
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    match renewed.and_then(|t| t.0.checked_add(duration).ok()) {
        Some(expires) if expires > now => Decision::Follow {
            holder: holder.to_owned(),
            expires,
        },
        _ => Decision::Acquire,
    }
}

/// The spec to write after deciding to `Renew` or `Acquire` (for `Follow` nothing is written).
pub fn claimed(
    spec: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    now: Timestamp,
    duration: Duration,
) -> LeaseSpec {
    let mut next = spec.cloned().unwrap_or_default();
    if *decision == Decision::Acquire {
        // Every change of hands counts, after a release too (as client-go counts them); a Lease
        // created now starts at none.
        if spec.is_some() && next.holder_identity.as_deref() != Some(identity) {
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.holder_identity = Some(identity.to_owned());
        next.acquire_time = Some(MicroTime(now));
    }
    next.lease_duration_seconds = Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
    next.renew_time = Some(MicroTime(now));
    next
}

/// The spec that gives the Lease up at once, so a standby takes over without waiting for it to
/// expire.
pub fn released(spec: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..spec.clone()
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            acquire_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn no_lease_or_no_holder_is_free() {
        assert_eq!(decide(None, "me", at(0), D), Decision::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "me", at(0), D),
            Decision::Acquire
        );
        let mut empty = held_by("", 0);
        empty.holder_identity = Some(String::new());
        assert_eq!(decide(Some(&empty), "me", at(0), D), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed_even_if_late() {
        assert_eq!(
            decide(Some(&held_by("me", 0)), "me", at(100), D),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_holder_is_followed_until_its_lease_expires() {
        let lease = held_by("other", 0);
        assert_eq!(
            decide(Some(&lease), "me", at(14), D),
            Decision::Follow {
                holder: "other".to_owned(),
                expires: at(15)
            }
        );
        assert_eq!(decide(Some(&lease), "me", at(15), D), Decision::Acquire);
        assert_eq!(decide(Some(&lease), "me", at(60), D), Decision::Acquire);
    }

    #[test]
    fn the_holders_duration_wins_over_ours() {
        let mut lease = held_by("other", 0);
        lease.lease_duration_seconds = Some(60);
        assert!(matches!(
            decide(Some(&lease), "me", at(30), D),
            Decision::Follow { .. }
        ));
        lease.lease_duration_seconds = None;
        assert_eq!(decide(Some(&lease), "me", at(30), D), Decision::Acquire);
    }

    #[test]
    fn a_holder_that_never_renewed_is_free() {
        let mut lease = held_by("other", 0);
        lease.renew_time = None;
        lease.acquire_time = None;
        assert_eq!(decide(Some(&lease), "me", at(0), D), Decision::Acquire);
    }

    #[test]
    fn acquiring_counts_a_transition_and_renewing_keeps_acquire_time() {
        let old = held_by("other", 0);
        let taken = claimed(Some(&old), &Decision::Acquire, "me", at(20), D);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(20))));
        let renewed = claimed(Some(&taken), &Decision::Renew, "me", at(25), D);
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(25))));
        assert_eq!(renewed.lease_transitions, Some(4));
        let first = claimed(None, &Decision::Acquire, "me", at(0), D);
        assert_eq!(
            (first.lease_transitions, first.lease_duration_seconds),
            (None, Some(15))
        );
        let after_release = claimed(
            Some(&released(&old, at(1))),
            &Decision::Acquire,
            "me",
            at(2),
            D,
        );
        assert_eq!(after_release.lease_transitions, Some(4));
    }

    #[test]
    fn released_lease_is_free_at_once() {
        let mine = held_by("me", 0);
        let free = released(&mine, at(1));
        assert_eq!(decide(Some(&free), "other", at(1), D), Decision::Acquire);
    }
}
