//! The wait before a step's next attempt.

use std::time::Duration;

use crate::api::{BackoffType, RetryPolicy};
use crate::limits::{MAX_BACKOFF, MAX_BACKOFF_FACTOR};
use crate::validation::parse_duration;

/// The wait before the retry that follows `retries_made` earlier retries:
/// Exponential `duration * factor^n`, Linear `duration * (n+1)`, Fixed `duration`.
/// A duration that does not parse (validation rejects it) waits nothing; the factor and the
/// wait are clamped to the limits validation enforces, whatever the spec says.
pub fn backoff(policy: &RetryPolicy, retries_made: i32) -> Duration {
    let Some(backoff) = &policy.backoff else {
        return Duration::ZERO;
    };
    let Ok(base) = parse_duration(&backoff.duration) else {
        return Duration::ZERO;
    };
    let n = retries_made.max(0);
    let multiplier = match backoff.backoff_type {
        BackoffType::Fixed => 1.0,
        BackoffType::Linear => f64::from(n) + 1.0,
        BackoffType::Exponential => backoff
            .factor
            .unwrap_or(2.0)
            .clamp(1.0, MAX_BACKOFF_FACTOR)
            .powi(n),
    };
    let seconds = base.as_secs_f64() * multiplier;
    if !seconds.is_finite() || seconds >= MAX_BACKOFF.as_secs_f64() {
        return MAX_BACKOFF;
    }
    Duration::from_secs_f64(seconds)
}

#[cfg(test)]
mod tests {
    use crate::api::Backoff;

    use super::*;

    fn policy(backoff_type: BackoffType, duration: &str, factor: Option<f64>) -> RetryPolicy {
        RetryPolicy {
            limit: 5,
            backoff: Some(Backoff {
                backoff_type,
                duration: duration.into(),
                factor,
            }),
        }
    }

    #[test]
    fn exponential_multiplies_by_the_factor() {
        let p = policy(BackoffType::Exponential, "10s", Some(3.0));
        assert_eq!(backoff(&p, 0), Duration::from_secs(10));
        assert_eq!(backoff(&p, 1), Duration::from_secs(30));
        assert_eq!(backoff(&p, 2), Duration::from_secs(90));
        let default_factor = policy(BackoffType::Exponential, "1s", None);
        assert_eq!(backoff(&default_factor, 3), Duration::from_secs(8));
    }

    #[test]
    fn linear_and_fixed() {
        assert_eq!(
            backoff(&policy(BackoffType::Linear, "5s", None), 2),
            Duration::from_secs(15)
        );
        assert_eq!(
            backoff(&policy(BackoffType::Fixed, "5s", None), 7),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn no_backoff_and_huge_backoff() {
        assert_eq!(
            backoff(
                &RetryPolicy {
                    limit: 1,
                    backoff: None
                },
                3
            ),
            Duration::ZERO
        );
        assert_eq!(
            backoff(&policy(BackoffType::Exponential, "1h", Some(10.0)), 30),
            MAX_BACKOFF
        );
    }
}
