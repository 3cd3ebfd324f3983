//! Go-style durations such as `1h30m`, `10s` or `500ms`.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// Nothing was given.
    #[error("the duration is empty; write one such as 10s, 1m30s or 2h")]
    Empty,
    /// A number or unit is missing or malformed.
    #[error(
        "{input:?} is not a duration; write numbers each followed by a unit (ns, us, ms, s, m, h), e.g. 10s, 1m30s or 2h"
    )]
    Malformed {
        /// What was given.
        input: String,
    },
    /// A unit that Go durations do not have.
    #[error("{input:?} has the unknown unit {unit:?}; use ns, us, ms, s, m or h, e.g. 10s or 2h")]
    UnknownUnit {
        /// What was given.
        input: String,
        /// The unit.
        unit: String,
    },
    /// Zero or negative.
    #[error("{input:?} is not positive; write a duration above zero, e.g. 10s")]
    NotPositive {
        /// What was given.
        input: String,
    },
    /// Longer than anyone would wait.
    #[error("{input:?} is too long; write at most a few years, e.g. 720h")]
    TooLong {
        /// What was given.
        input: String,
    },
}

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Reads a positive Go-style duration: numbers (with an optional fraction) each followed by a
/// unit, e.g. `1h30m`, `10s`, `1.5s`, `500ms`.
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(ParseDurationError::Empty);
    }
    let malformed = || ParseDurationError::Malformed {
        input: input.to_owned(),
    };
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(malformed)?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|&(_, scale)| scale)
            .ok_or_else(|| ParseDurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            })?;
        let part = scaled(number, scale).ok_or_else(malformed)?;
        nanos = nanos.saturating_add(part);
        rest = after;
    }
    if negative || nanos == 0 {
        return Err(ParseDurationError::NotPositive {
            input: input.to_owned(),
        });
    }
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| ParseDurationError::TooLong {
            input: input.to_owned(),
        })
}

/// `number` (digits with an optional fraction) times `scale` nanoseconds, truncated.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut result = whole_value.saturating_mul(scale);
    // Digits past 1 ns never change the result; 20 keep the arithmetic in range.
    let fraction = &fraction[..fraction.len().min(20)];
    if !fraction.is_empty() {
        let fraction_value: u128 = fraction.parse().ok()?;
        let denominator = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        result = result.saturating_add(fraction_value.saturating_mul(scale) / denominator);
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_go_durations() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5_400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1_500)),
            (".5m", Duration::from_secs(30)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("3µs", Duration::from_micros(3)),
            (" 10s ", Duration::from_secs(10)),
            ("+1s", Duration::from_secs(1)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_positive_duration() {
        assert_eq!(parse_duration(""), Err(ParseDurationError::Empty));
        for input in ["10", "s", "1.2.3s", "1 s", ".s", "abc"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(ParseDurationError::Malformed { .. }
                        | ParseDurationError::UnknownUnit { .. })
                ),
                "{input}"
            );
        }
        assert_eq!(
            parse_duration("10d").unwrap_err().to_string(),
            "\"10d\" has the unknown unit \"d\"; use ns, us, ms, s, m or h, e.g. 10s or 2h"
        );
        for input in ["0s", "-5s", "0.0000000001s"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(ParseDurationError::NotPositive { .. })
                ),
                "{input}"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999h"),
            Err(ParseDurationError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn hours_minutes_seconds_add_up(h in 0u64..10_000, m in 0u64..60, s in 1u64..60) {
            let input = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&input), Ok(Duration::from_secs(h * 3600 + m * 60 + s)));
        }

        #[test]
        fn never_panics(input in "\\PC{0,16}") {
            let _ = parse_duration(&input);
        }
    }
}
