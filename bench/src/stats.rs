//! Percentiles of measured durations, and summaries of Prometheus counters and histograms.

use std::collections::BTreeMap;

use serde::Serialize;

use jobflow_tests::agent::Sample;

/// Percentiles of a set of durations, in milliseconds (nearest rank: every figure is a measured
/// value).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many values.
    pub count: usize,
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The largest value.
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `values_ms` (all zero when there are none).
    pub fn of(mut values_ms: Vec<f64>) -> Self {
        values_ms.sort_by(f64::total_cmp);
        let rank = |quantile: f64| nearest_rank(&values_ms, quantile);
        Self {
            count: values_ms.len(),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: values_ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// The smallest value with at least `quantile` of `sorted` at or below it.
fn nearest_rank(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank among at most millions of values, rounded up on purpose"
    )]
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A Prometheus histogram's count, mean and estimated quantiles.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramSummary {
    /// Observations.
    pub count: f64,
    /// Sum of observations / count, in milliseconds.
    pub mean_ms: f64,
    /// Estimated median (linear interpolation in its bucket, as `histogram_quantile` does).
    pub p50_ms: f64,
    /// Estimated 90th percentile.
    pub p90_ms: f64,
    /// Estimated 99th percentile.
    pub p99_ms: f64,
}

/// The summary of histogram `name` (seconds) from `samples`, minus what `baseline` held; `None`
/// when it has no observations.
pub fn histogram(samples: &[Sample], baseline: &[Sample], name: &str) -> Option<HistogramSummary> {
    let value = |set: &[Sample], series: &str, le: Option<&str>| {
        set.iter()
            .filter(|s| s.name == series && s.labels.get("le").map(String::as_str) == le)
            .map(|s| s.value)
            .sum::<f64>()
    };
    let delta =
        |series: &str, le: Option<&str>| value(samples, series, le) - value(baseline, series, le);
    let count = delta(&format!("{name}_count"), None);
    if count <= 0.0 {
        return None;
    }
    let bucket = format!("{name}_bucket");
    let mut bounds: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == bucket)
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(&bucket, Some(le))))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |q: f64| bucket_quantile(&bounds, q) * 1000.0;
    Some(HistogramSummary {
        count,
        mean_ms: delta(&format!("{name}_sum"), None) / count * 1000.0,
        p50_ms: quantile(0.50),
        p90_ms: quantile(0.90),
        p99_ms: quantile(0.99),
    })
}

/// `histogram_quantile` over cumulative `(upper bound, count)` buckets sorted by bound: linear
/// interpolation inside the bucket holding the rank; the highest finite bound if it falls in
/// `+Inf`.
fn bucket_quantile(buckets: &[(f64, f64)], quantile: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    let rank = quantile * total;
    let mut previous = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return previous.0;
            }
            let width = count - previous.1;
            let into = if width > 0.0 {
                (rank - previous.1) / width
            } else {
                1.0
            };
            return previous.0 + (bound - previous.0) * into;
        }
        previous = (bound, count);
    }
    previous.0
}

/// Counter `name` summed by the values of `keys`, minus `baseline`; rows that did not grow are
/// left out.
pub fn counter_by(
    samples: &[Sample],
    baseline: &[Sample],
    name: &str,
    keys: &[&str],
) -> BTreeMap<Vec<String>, f64> {
    let group = |set: &[Sample]| {
        let mut sums: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for sample in set.iter().filter(|s| s.name == name) {
            let key = keys
                .iter()
                .map(|k| sample.labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *sums.entry(key).or_default() += sample.value;
        }
        sums
    };
    let before = group(baseline);
    group(samples)
        .into_iter()
        .map(|(key, value)| {
            let grown = value - before.get(&key).copied().unwrap_or(0.0);
            (key, grown)
        })
        .filter(|(_, grown)| *grown > 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobflow_tests::agent::parse_metrics;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < f64::EPSILON);
        assert!((p.p90_ms - 90.0).abs() < f64::EPSILON);
        assert!((p.p99_ms - 99.0).abs() < f64::EPSILON);
        assert!((p.max_ms - 100.0).abs() < f64::EPSILON);
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
        assert!((Percentiles::of(vec![7.0]).p99_ms - 7.0).abs() < f64::EPSILON);
    }

    #[test]
    fn histograms_interpolate_within_buckets_and_subtract_the_baseline() {
        let before = parse_metrics(
            "h_bucket{le=\"0.01\"} 10\nh_bucket{le=\"0.1\"} 10\nh_bucket{le=\"+Inf\"} 10\n\
             h_sum 0.05\nh_count 10\n",
        )
        .unwrap();
        let after = parse_metrics(
            "h_bucket{le=\"0.01\"} 10\nh_bucket{le=\"0.1\"} 110\nh_bucket{le=\"+Inf\"} 110\n\
             h_sum 5.05\nh_count 110\n",
        )
        .unwrap();
        let summary = histogram(&after, &before, "h").unwrap();
        assert!((summary.count - 100.0).abs() < f64::EPSILON);
        assert!((summary.mean_ms - 50.0).abs() < 1e-9);
        // 100 new observations, all in (0.01, 0.1]: the median is half way.
        assert!((summary.p50_ms - 55.0).abs() < 1e-9, "{summary:?}");
        assert!(histogram(&before, &before, "h").is_none());
        assert!(histogram(&after, &before, "missing").is_none());
    }

    #[test]
    fn counters_group_and_subtract() {
        let before = parse_metrics("c{op=\"a\",r=\"x\"} 1\n").unwrap();
        let after =
            parse_metrics("c{op=\"a\",r=\"x\"} 4\nc{op=\"a\",r=\"y\"} 2\nc{op=\"b\",r=\"x\"} 0\n")
                .unwrap();
        let rows = counter_by(&after, &before, "c", &["op", "r"]);
        assert_eq!(rows.len(), 2);
        assert!((rows[&vec!["a".to_owned(), "x".to_owned()]] - 3.0).abs() < f64::EPSILON);
        let by_op = counter_by(&after, &before, "c", &["op"]);
        assert!((by_op[&vec!["a".to_owned()]] - 5.0).abs() < f64::EPSILON);
    }
}
