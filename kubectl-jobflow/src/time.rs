//! Ages and durations as kubectl prints them: `45s`, `5m30s`, `3h`, `2d4h`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A span in kubectl's short form (the rules of `duration.HumanDuration`).
pub fn human(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        match seconds % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// How long ago `time` was, or `<unknown>`.
pub fn age(time: Option<&Time>, now: Timestamp) -> String {
    time.map_or_else(
        || "<unknown>".to_owned(),
        |time| human(now.as_second() - time.0.as_second()),
    )
}

/// From `start` to `end` (or to `now` while running), or empty before the start.
pub fn duration(start: Option<&Time>, end: Option<&Time>, now: Timestamp) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let end = end.map_or(now, |end| end.0);
    human(end.as_second() - start.0.as_second())
}

/// A timestamp as RFC 3339 with its age, e.g. `2026-12-02T07:10:00Z (5m ago)`, or `<none>`.
pub fn stamp(time: Option<&Time>, now: Timestamp) -> String {
    time.map_or_else(
        || "<none>".to_owned(),
        |time| {
            format!(
                "{} ({} ago)",
                time.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                age(Some(time), now)
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_kubectl() {
        assert_eq!(human(-3), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(119), "119s");
        assert_eq!(human(330), "5m30s");
        assert_eq!(human(600), "10m");
        assert_eq!(human(3 * 3600 + 20 * 60), "3h20m");
        assert_eq!(human(30 * 3600), "30h");
        assert_eq!(human(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(human(100 * 86400), "100d");
        assert_eq!(human(800 * 86400), "2y");
    }
}
