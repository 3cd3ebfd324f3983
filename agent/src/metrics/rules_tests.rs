//! The shipped PrometheusRule (`deploy/monitoring/prometheusrule.yaml`) names only series the
//! agent exports, with the labels it gives them; every alert is complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::Timestamp;

use super::{Cert, Metrics, Source};

const RULE: &str = include_str!("../../../deploy/monitoring/prometheusrule.yaml");

/// The `zen_flow_*` names in `expr`.
fn series(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("zen_flow_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_alert_names_exported_series_and_is_complete() {
    let metrics = Metrics::new().unwrap();
    // Give every webhook series a child so the text format lists it.
    let w = &metrics.webhook;
    w.not_after(Cert::Leaf, Source::Stored, Timestamp::UNIX_EPOCH);
    w.rotation(Cert::Ca, "due", "ok");
    w.reload("refused");
    w.ca_bundle_write("restored", "ok");
    w.ca_bundle_in_sync(true);
    let text = metrics.encode().unwrap();
    let rule: serde_json::Value = serde_yaml_ng::from_str(RULE).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert!(
        rules.len() >= 3,
        "expiry, overdue renewal, caBundle out of sync"
    );
    for alert in rules {
        let name = alert["alert"].as_str().unwrap();
        for key in ["expr", "for"] {
            assert!(alert[key].is_string(), "{name} has no {key}");
        }
        assert!(alert["labels"]["severity"].is_string(), "{name}: severity");
        assert!(
            alert["annotations"]["summary"].is_string(),
            "{name}: summary"
        );
        let expr = alert["expr"].as_str().unwrap();
        let names = series(expr);
        assert!(!names.is_empty(), "{name} reads no zen_flow series");
        for series in names {
            assert!(
                text.contains(&format!("# TYPE {series} ")),
                "{name} reads {series}, which the agent does not export"
            );
        }
        for label in [
            "cert=\"leaf\"",
            "cert=\"ca\"",
            "source=\"stored\"",
            "result=\"refused\"",
        ] {
            if expr.contains(label) {
                let (key, value) = label.split_once('=').unwrap();
                assert!(
                    text.contains(&format!("{key}={value}")),
                    "{name} filters on {label}, a label value the agent never sets"
                );
            }
        }
    }
}
