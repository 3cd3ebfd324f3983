//! The leadership guard: every API write of the controllers asks it first (through
//! [`super::call::Calls`]); the elector ([`crate::leader`]) moves it.
//!
//! The elector moves "leading until" forward after each successful claim or renewal, to the
//! monotonic instant that renewal *started* plus the renew deadline. The renew deadline is
//! shorter than the Lease duration, and a standby counts the Lease duration from when it saw the
//! renewal (after it started), so once "leading until" has passed on this replica's own
//! monotonic clock another replica may be leading, and nothing may be written. A process that
//! was frozen (SIGSTOP, a VM pause, a long GC-like stall) wakes up past its deadline and is
//! refused before its first write, whatever its tasks run first.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lapsed {
    /// This replica has not (yet, or any more) claimed the Lease.
    #[error("confirming leadership: this replica does not hold the Lease")]
    HoldLease,
    /// The last successful renewal is too old: another replica may hold the Lease now.
    #[error("confirming leadership: the Lease's last renewal is {late:?} past its deadline")]
    RenewLease {
        /// How long ago leadership may have lapsed.
        late: Duration,
    },
}

/// Whether this replica may write, shared between the elector and the controllers.
///
/// Cheap to clone; clones share the deadline.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// `None`: leader election is off and every write is allowed.
    until: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Leadership {
    /// Without leader election: always allows.
    pub fn unelected() -> Self {
        Self { until: None }
    }

    /// With leader election: refuses until the elector claims the Lease.
    pub fn elected() -> Self {
        Self {
            until: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// Ok when this replica may write now (on its monotonic clock).
    pub fn confirm(&self) -> Result<(), Lapsed> {
        self.confirm_at(Instant::now())
    }

    /// Ok when this replica may write at `now`.
    pub fn confirm_at(&self, now: Instant) -> Result<(), Lapsed> {
        let Some(until) = &self.until else {
            return Ok(());
        };
        match *lock(until) {
            None => Err(Lapsed::HoldLease),
            Some(until) if now < until => Ok(()),
            Some(until) => Err(Lapsed::RenewLease {
                late: now.saturating_duration_since(until),
            }),
        }
    }

    /// The instant leadership lapses unless renewed (`None`: not leading, or election off).
    pub fn until(&self) -> Option<Instant> {
        self.until.as_ref().and_then(|until| *lock(until))
    }

    /// A claim or renewal that started at `started` succeeded: lead until `started + deadline`.
    /// Never moves the deadline back (a slow success reported after a faster one).
    pub(crate) fn renewed(&self, started: Instant, deadline: Duration) {
        if let Some(until) = &self.until {
            let next = started + deadline;
            let mut until = lock(until);
            if until.is_none_or(|current| current < next) {
                *until = Some(next);
            }
        }
    }

    /// Leadership ended (lost, given up or released): refuse every write from now on.
    pub(crate) fn lapse(&self) {
        if let Some(until) = &self.until {
            *lock(until) = None;
        }
    }
}

/// The guarded deadline (a poisoned lock is still usable: an `Option<Instant>` has no invariant).
fn lock(until: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    until.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn without_election_every_write_is_allowed() {
        let guard = Leadership::unelected();
        assert_eq!(guard.confirm(), Ok(()));
        guard.lapse();
        assert_eq!(guard.confirm(), Ok(()));
    }

    #[test]
    fn with_election_writes_wait_for_the_claim() {
        let guard = Leadership::elected();
        assert_eq!(guard.confirm(), Err(Lapsed::HoldLease));
        let started = Instant::now();
        guard.clone().renewed(started, DEADLINE);
        assert_eq!(guard.confirm_at(started), Ok(()));
        assert_eq!(guard.until(), Some(started + DEADLINE));
    }

    #[test]
    fn leadership_lapses_at_the_deadline_counted_from_the_renewals_start() {
        let guard = Leadership::elected();
        let started = Instant::now();
        guard.renewed(started, DEADLINE);
        let almost = started + DEADLINE.saturating_sub(Duration::from_millis(1));
        assert_eq!(guard.confirm_at(almost), Ok(()));
        assert_eq!(
            guard.confirm_at(started + DEADLINE),
            Err(Lapsed::RenewLease {
                late: Duration::ZERO
            })
        );
        // A frozen process wakes long after: refused.
        let woke = started + Duration::from_secs(40);
        assert_eq!(
            guard.confirm_at(woke),
            Err(Lapsed::RenewLease {
                late: Duration::from_secs(30)
            })
        );
    }

    #[test]
    fn an_older_renewal_never_moves_the_deadline_back() {
        let guard = Leadership::elected();
        let first = Instant::now();
        let second = first + Duration::from_secs(5);
        guard.renewed(second, DEADLINE);
        guard.renewed(first, DEADLINE);
        assert_eq!(guard.until(), Some(second + DEADLINE));
    }

    #[test]
    fn a_lapse_refuses_at_once() {
        let guard = Leadership::elected();
        let started = Instant::now();
        guard.renewed(started, DEADLINE);
        guard.lapse();
        assert_eq!(guard.confirm_at(started), Err(Lapsed::HoldLease));
        assert_eq!(guard.until(), None);
    }
}
