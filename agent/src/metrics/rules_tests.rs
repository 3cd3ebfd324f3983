//! The shipped monitoring (`deploy/monitoring/`) names only series the agent exports, grouped
//! and filtered by labels they have: the PrometheusRule's alerts and the Grafana dashboard's
//! panels. Every alert is complete; every panel queries at least one `zen_flow_*` series.
//! Every alert links its section of `docs/runbooks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{Cert, Metrics, Source};

const RULE: &str = include_str!("../../../deploy/monitoring/prometheusrule.yaml");
const DASHBOARD: &str = include_str!("../../../deploy/monitoring/grafana-dashboard.json");
const RUNBOOKS: &str = include_str!("../../../docs/runbooks.md");

/// Where an alert's `runbook_url` points: the runbooks as GitHub renders them.
const RUNBOOK_URL: &str = "https://github.com/kube-zen/zen-flow/blob/main/docs/runbooks.md#";

/// Labels Prometheus adds to every scraped series (deploy/monitoring/servicemonitor.yaml's
/// target labels), which an expression may group by although the agent never sets them.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "instance",
    "job",
    "service",
    "endpoint",
    "container",
];

/// The agent's `/metrics` text with a child in every series, so the text format lists each
/// one with its labels.
fn exported() -> String {
    let metrics = Metrics::new().unwrap();
    metrics
        .jobflows
        .with_label_values(&["Running", "team-a"])
        .set(1);
    metrics
        .phase_transitions
        .with_label_values(&["Pending", "Running"])
        .inc();
    metrics.steps.with_label_values(&["Running"]).set(1);
    metrics
        .step_duration
        .with_label_values(&["Succeeded"])
        .observe(1.0);
    metrics.step_errors.with_label_values(&["Failed"]).inc();
    metrics.reconcile_failed("PatchStatus");
    metrics.api_call(super::Operation::Delete, super::Resource::Jobs);
    metrics.state_entries.with_label_values(&["written"]).set(1);
    let w = &metrics.webhook;
    w.admission("CREATE", "allowed", 0.001);
    w.not_after(Cert::Leaf, Source::Stored, Timestamp::UNIX_EPOCH);
    w.rotation(Cert::Ca, "due", "ok");
    w.reload("refused");
    w.secret_write("ok");
    w.ca_bundle_write("restored", "ok");
    w.ca_bundle_in_sync(true);
    w.handshake_error();
    metrics.encode().unwrap()
}

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

/// The label names of the samples of `series` (a histogram's `_bucket` has `le`) in `text`, or
/// `None` when the agent exports no sample of that name.
fn labels_of(text: &str, series: &str) -> Option<BTreeSet<String>> {
    let mut found: Option<BTreeSet<String>> = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(series) else {
            continue;
        };
        if let Some((inner, _)) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            let labels = found.get_or_insert_with(BTreeSet::new);
            for pair in inner.split(',') {
                labels.insert(pair.split_once('=').unwrap().0.to_owned());
            }
        } else if rest.starts_with(' ') {
            found.get_or_insert_with(BTreeSet::new);
        }
    }
    found
}

/// The label names `expr` groups by (`by (a, b)`, `without (a)`) or matches on (`{a="x"}`).
fn labels_used(expr: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for keyword in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(&format!("{keyword} (")) {
            let inner = &rest[at + keyword.len() + 2..];
            let end = inner.find(')').unwrap();
            used.extend(inner[..end].split(',').map(|l| l.trim().to_owned()));
            rest = &inner[end..];
        }
    }
    let mut rest = expr;
    while let Some(at) = rest.find('{') {
        let inner = &rest[at + 1..];
        let end = inner.find('}').unwrap();
        for matcher in inner[..end].split(',').filter(|m| !m.trim().is_empty()) {
            let name = matcher.split(['=', '!', '~']).next().unwrap().trim();
            used.insert(name.to_owned());
        }
        rest = &inner[end..];
    }
    used.retain(|label| !label.is_empty() && !TARGET_LABELS.contains(&label.as_str()));
    used
}

/// Checks one expression (`what` names it in failures) against `text`: it reads at least one
/// `zen_flow_*` series, each is exported, every label it uses is on one of them, and every
/// `key="value"` filter names a value the agent sets.
fn check_expression(what: &str, expr: &str, text: &str) {
    let names = series(expr);
    assert!(!names.is_empty(), "{what} reads no zen_flow series");
    let mut available = BTreeSet::new();
    for series in &names {
        let labels = labels_of(text, series)
            .unwrap_or_else(|| panic!("{what} reads {series}, which the agent does not export"));
        available.extend(labels);
    }
    for label in labels_used(expr) {
        assert!(
            available.contains(&label),
            "{what} uses the label {label}, which none of {names:?} has"
        );
    }
    for label in [
        "cert=\"leaf\"",
        "cert=\"ca\"",
        "source=\"stored\"",
        "result=\"refused\"",
    ] {
        if expr.contains(label) {
            assert!(
                text.contains(label),
                "{what} filters on {label}, a label value the agent never sets"
            );
        }
    }
}

#[test]
fn every_alert_names_exported_series_and_is_complete() {
    let text = exported();
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
        check_expression(name, alert["expr"].as_str().unwrap(), &text);
    }
}

/// The anchors GitHub gives the headings of `markdown` (outside code fences): the heading's
/// text lowercased, every character but letters, digits, `-`, `_` and spaces dropped, spaces
/// turned into `-`; a repeated anchor gets `-1`, `-2`, ...
fn anchors(markdown: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(text) = line
            .strip_prefix('#')
            .map(|rest| rest.trim_start_matches('#'))
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            continue;
        };
        if fenced {
            continue;
        }
        let base: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.push(anchor);
    }
    anchors
}

/// Every alert's `runbook_url` in `rule` that is missing or names no heading of `runbooks`.
fn runbook_problems(rule: &str, runbooks: &str) -> Vec<String> {
    let rule: serde_json::Value = serde_yaml_ng::from_str(rule).unwrap();
    let anchors = anchors(runbooks);
    let mut problems = Vec::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for alert in group["rules"].as_array().unwrap() {
            let name = alert["alert"].as_str().unwrap();
            let Some(url) = alert["annotations"]["runbook_url"].as_str() else {
                problems.push(format!("{name} has no runbook_url"));
                continue;
            };
            match url.strip_prefix(RUNBOOK_URL) {
                Some(anchor) if anchors.iter().any(|a| a == anchor) => {}
                Some(anchor) => problems.push(format!(
                    "{name}: docs/runbooks.md has no heading with the anchor #{anchor}"
                )),
                None => problems.push(format!("{name}: {url} does not start with {RUNBOOK_URL}")),
            }
        }
    }
    problems
}

#[test]
fn every_alert_links_its_runbook_section() {
    let problems = runbook_problems(RULE, RUNBOOKS);
    assert!(problems.is_empty(), "{problems:#?}");
    // The runbooks' own links between sections land too.
    let anchors = anchors(RUNBOOKS);
    for link in RUNBOOKS.split("](#").skip(1) {
        let anchor = &link[..link.find(')').unwrap()];
        assert!(
            anchors.iter().any(|a| a == anchor),
            "docs/runbooks.md links #{anchor}, which is none of its headings"
        );
    }
}

#[test]
fn a_missing_or_dangling_runbook_url_is_found() {
    let runbooks = "# Runbooks\n\n## ZenFlowA\n\n```sh\n# ZenFlowB\n```\n\n## Moving to cert-manager (`--cert-mode external`)\n";
    assert_eq!(
        anchors(runbooks),
        [
            "runbooks",
            "zenflowa",
            "moving-to-cert-manager---cert-mode-external"
        ]
    );
    let rule = |annotations: &str| {
        format!(
            "spec:\n  groups:\n    - rules:\n        - alert: ZenFlowA\n          annotations: {{{annotations}}}\n"
        )
    };
    let url = |anchor: &str| format!("runbook_url: \"{RUNBOOK_URL}{anchor}\"");
    assert_eq!(
        runbook_problems(&rule(&url("zenflowa")), runbooks),
        Vec::<String>::new()
    );
    assert_eq!(
        runbook_problems(&rule("summary: x"), runbooks),
        ["ZenFlowA has no runbook_url"]
    );
    assert_eq!(
        runbook_problems(&rule(&url("zenflowb")), runbooks),
        ["ZenFlowA: docs/runbooks.md has no heading with the anchor #zenflowb"]
    );
    assert_eq!(anchors("## A\n## A\n## A-1\n"), ["a", "a-1", "a-1-1"]);
}

#[test]
fn every_dashboard_panel_queries_exported_series() {
    let text = exported();
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = BTreeSet::new();
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            check_expression(&format!("panel {title}"), expr, &text);
            queried.extend(series(expr));
        }
    }
    // Every family the agent exports is on the dashboard (a histogram through its _bucket).
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = rest.split(' ').next().unwrap();
            assert!(
                queried
                    .iter()
                    .any(|q| q == family || q.strip_suffix("_bucket") == Some(family)),
                "the dashboard shows nothing of {family}"
            );
        }
    }
}

#[test]
fn the_label_parsing_sees_groupings_and_matchers() {
    let used = labels_used(
        "sum by (le, result) (rate(x_bucket{cert=\"ca\", pod=~\"a.*\"}[5m])) - min without (source) (y)",
    );
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["cert", "le", "result", "source"]
    );
    let text = "# TYPE a counter\na_total{x=\"1\",y=\"2\"} 1\nab 2\n";
    assert_eq!(
        labels_of(text, "a_total")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert_eq!(labels_of(text, "a"), None);
}
