//! The Prometheus text exposition format of the agent's `/metrics`: [`parse_metrics`] and
//! [`sum_matching`].

use std::collections::BTreeMap;

use anyhow::Context as _;

/// One sample of the Prometheus text format: series name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `zen_flow_api_requests_total`.
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments and blank lines skipped; a trailing
/// timestamp ignored).
pub fn parse_metrics(text: &str) -> anyhow::Result<Vec<Sample>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).with_context(|| format!("parsing metric line {line:?}")))
        .collect()
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
pub fn sum_matching(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .reduce(|sum, value| sum + value)
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let end = loop {
            // Skip separators, find `key="value"` or the closing brace.
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_whitespace())
                .is_some()
            {}
            let Some(&(start, c)) = chars.peek() else {
                anyhow::bail!("unterminated label set");
            };
            if c == '}' {
                break start + 1;
            }
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            anyhow::ensure!(chars.next().is_some(), "label {key} without a value");
            anyhow::ensure!(
                chars.next().map(|(_, c)| c) == Some('"'),
                "label {key} without a quoted value"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => anyhow::bail!("unterminated value of label {key}"),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => anyhow::bail!("unterminated value of label {key}"),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        };
        rest = &after_brace[end..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("no value after the series")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .with_context(|| format!("value {other:?} is not a number"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_with_and_without_labels() {
        let text = "# HELP x y\n# TYPE zen_flow_api_requests_total counter\n\
            zen_flow_api_requests_total{operation=\"patch_status\",resource=\"jobflows\"} 7\n\
            zen_flow_api_requests_total{operation=\"apply\",resource=\"jobs\"} 3\n\
            zen_flow_api_requests_total{operation=\"apply\",resource=\"configmaps\"} 2\n\
            zen_flow_workqueue_depth 0\n\
            weird{msg=\"a \\\"q\\\", b\\\\c\"} 1.5e3 1700000000\n\
            zen_flow_x_bucket{le=\"+Inf\"} +Inf\n";
        let samples = parse_metrics(text).unwrap();
        assert_eq!(samples.len(), 6);
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "patch_status")]
            ),
            Some(7.0)
        );
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "apply")]
            ),
            Some(5.0)
        );
        assert_eq!(
            sum_matching(&samples, "zen_flow_api_requests_total", &[]),
            Some(12.0)
        );
        assert_eq!(
            sum_matching(&samples, "zen_flow_workqueue_depth", &[]),
            Some(0.0)
        );
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "delete")]
            ),
            None
        );
        assert_eq!(samples[4].labels["msg"], "a \"q\", b\\c");
        assert!((samples[4].value - 1500.0).abs() < f64::EPSILON);
        assert!(samples[5].value.is_infinite());
        assert!(parse_metrics("broken{a=\"1\" 2").is_err());
    }
}
