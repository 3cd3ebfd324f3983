//! The leader-election rules, as pure functions of the Lease, this replica's identity and two
//! clocks: the wall clock only to stamp what is written (`renewTime` is for people), and this
//! replica's monotonic clock to judge expiry.
//!
//! Another machine's wall clock is never compared with ours: a standby judges a holder's claim
//! from when *it* last saw the Lease change (client-go's `observedTime`), so clock skew of any
//! size neither lets a standby take a live Lease early nor keeps it from taking a dead one.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
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
        /// When, on this replica's monotonic clock, the holder's claim lapses unless the Lease
        /// changes before.
        expires: Instant,
    },
}

/// The Lease as this replica last saw it, and when it first saw it so (its monotonic clock).
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The spec (None: no Lease, or no spec).
    spec: Option<LeaseSpec>,
    /// The Lease's resourceVersion: any write changes it.
    resource_version: Option<String>,
    /// When this record was first seen.
    pub at: Instant,
}

/// The observation after reading `lease` at `now`: unchanged (spec and resourceVersion alike),
/// the Lease keeps the instant it was first seen so; any change is seen at `now`.
pub fn observe(previous: Option<&Observation>, lease: Option<&Lease>, now: Instant) -> Observation {
    let spec = lease.and_then(|l| l.spec.clone());
    let resource_version = lease.and_then(|l| l.metadata.resource_version.clone());
    let at = match previous {
        Some(seen) if seen.spec == spec && seen.resource_version == resource_version => seen.at,
        _ => now,
    };
    Observation {
        spec,
        resource_version,
        at,
    }
}

/// Decides from the Lease's spec (None: no Lease or no spec), seen unchanged since
/// `observed_at`, at `now` (both on this replica's monotonic clock).
///
/// A Lease without a holder is free. Another holder's claim lapses `leaseDurationSeconds`
/// (`default_duration` when unset) after this replica last saw the Lease change; the holder's
/// `renewTime` (its wall clock) plays no part.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    observed_at: Instant,
    now: Instant,
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
    let duration = spec.lease_duration_seconds.map_or(default_duration, |s| {
        Duration::from_secs(u64::try_from(s).unwrap_or(0))
    });
    if now.saturating_duration_since(observed_at) >= duration {
        return Decision::Acquire;
    }
    Decision::Follow {
        holder: holder.to_owned(),
        expires: observed_at.checked_add(duration).unwrap_or(now),
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
    const RETRY: Duration = Duration::from_secs(2);
    const HOURS: i64 = 6 * 3600;

    /// A wall-clock time `secs` after an arbitrary epoch (the holder's clock).
    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
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

    fn lease(spec: LeaseSpec, resource_version: &str) -> Lease {
        let mut lease = Lease {
            spec: Some(spec),
            ..Lease::default()
        };
        lease.metadata.resource_version = Some(resource_version.to_owned());
        lease
    }

    #[test]
    fn no_lease_or_no_holder_is_free() {
        let t0 = Instant::now();
        assert_eq!(decide(None, "me", t0, t0, D), Decision::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "me", t0, t0, D),
            Decision::Acquire
        );
        let mut empty = held_by("", 0);
        empty.holder_identity = Some(String::new());
        assert_eq!(decide(Some(&empty), "me", t0, t0, D), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed_even_if_late() {
        let t0 = Instant::now();
        assert_eq!(
            decide(Some(&held_by("me", 0)), "me", t0, t0 + secs(100), D),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_holder_is_followed_until_its_lease_expires() {
        let lease = held_by("other", 0);
        let seen = Instant::now();
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + secs(14), D),
            Decision::Follow {
                holder: "other".to_owned(),
                expires: seen + D
            }
        );
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + D, D),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + secs(60), D),
            Decision::Acquire
        );
    }

    #[test]
    fn the_holders_duration_wins_over_ours() {
        let mut lease = held_by("other", 0);
        lease.lease_duration_seconds = Some(60);
        let seen = Instant::now();
        assert!(matches!(
            decide(Some(&lease), "me", seen, seen + secs(30), D),
            Decision::Follow { .. }
        ));
        lease.lease_duration_seconds = None;
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + secs(30), D),
            Decision::Acquire
        );
    }

    #[test]
    fn a_holder_that_never_renewed_still_gets_its_duration() {
        // No renewTime is no evidence of death: the claim counts from when we saw it.
        let mut lease = held_by("other", 0);
        lease.renew_time = None;
        lease.acquire_time = None;
        let seen = Instant::now();
        assert!(matches!(
            decide(Some(&lease), "me", seen, seen, D),
            Decision::Follow { .. }
        ));
        assert_eq!(
            decide(Some(&lease), "me", seen, seen + D, D),
            Decision::Acquire
        );
    }

    #[test]
    fn an_unchanged_lease_keeps_the_instant_it_was_first_seen() {
        let t0 = Instant::now();
        let first = observe(None, Some(&lease(held_by("other", 0), "1")), t0);
        assert_eq!(first.at, t0);
        let same = observe(
            Some(&first),
            Some(&lease(held_by("other", 0), "1")),
            t0 + secs(5),
        );
        assert_eq!(same.at, t0);
        let renewed = observe(
            Some(&same),
            Some(&lease(held_by("other", 5), "2")),
            t0 + secs(7),
        );
        assert_eq!(renewed.at, t0 + secs(7));
        // Any write counts, even one that keeps the spec.
        let rewritten = observe(
            Some(&renewed),
            Some(&lease(held_by("other", 5), "3")),
            t0 + secs(9),
        );
        assert_eq!(rewritten.at, t0 + secs(9));
        let gone = observe(Some(&rewritten), None, t0 + secs(11));
        assert_eq!(gone.at, t0 + secs(11));
    }

    /// A standby polling every `RETRY` from `start`, while the holder (whose wall clock is
    /// `skew` seconds off ours) renews every 5 s until `dies_after` (None: never). Returns when
    /// the standby would acquire, on its monotonic clock, if within `horizon`.
    fn takeover(skew: i64, dies_after: Option<u64>, horizon: u64) -> Option<Duration> {
        let start = Instant::now();
        let mut seen: Option<Observation> = None;
        let mut elapsed = Duration::ZERO;
        while elapsed <= secs(horizon) {
            let now = start + elapsed;
            let renewals = elapsed.as_secs().min(dies_after.unwrap_or(u64::MAX)) / 5;
            let renewed_at = i64::try_from(renewals * 5).unwrap() + skew;
            let current = lease(held_by("other", renewed_at), &renewals.to_string());
            let observation = observe(seen.as_ref(), Some(&current), now);
            let decision = decide(current.spec.as_ref(), "me", observation.at, now, D);
            if decision == Decision::Acquire {
                return Some(elapsed);
            }
            seen = Some(observation);
            elapsed += RETRY;
        }
        None
    }

    #[test]
    fn clock_skew_never_lets_a_standby_take_a_live_lease() {
        for skew in [-HOURS, -60, 0, 60, HOURS] {
            assert_eq!(takeover(skew, None, 600), None, "skew {skew}s");
        }
    }

    #[test]
    fn clock_skew_never_delays_the_takeover_of_a_dead_lease() {
        // The holder renews last at 20 s; we see that by 22 s at the latest.
        for skew in [-HOURS, -60, 0, 60, HOURS] {
            let took = takeover(skew, Some(20), 600).unwrap();
            assert!(
                took >= secs(20) + D && took <= secs(20) + RETRY + D + RETRY,
                "skew {skew}s: took over after {took:?}"
            );
        }
    }

    #[test]
    fn a_standby_that_starts_late_waits_a_full_duration_from_its_first_look() {
        // Dead for hours by its wall clock: still a full duration from our first sight of it.
        let dead = lease(held_by("other", -HOURS), "7");
        let t0 = Instant::now();
        let first = observe(None, Some(&dead), t0);
        assert!(matches!(
            decide(dead.spec.as_ref(), "me", first.at, t0, D),
            Decision::Follow { .. }
        ));
        let later = observe(Some(&first), Some(&dead), t0 + D);
        assert_eq!(
            decide(dead.spec.as_ref(), "me", later.at, t0 + D, D),
            Decision::Acquire
        );
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
        let t0 = Instant::now();
        assert_eq!(decide(Some(&free), "other", t0, t0, D), Decision::Acquire);
    }
}
