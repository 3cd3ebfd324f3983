//! `cert-status`: the webhook's certificates, caBundle sync and leader, in words or as JSON.

use std::fmt::Write as _;
use std::io::Write;

use jiff::Timestamp;

use super::report::{self, Cert, Report};
use super::{read, served};
use crate::Verdict;
use crate::cli::{CertStatusArgs, StatusFormat};
use crate::connect::Cluster;
use crate::error::Error;
use crate::time::human;

/// Prints the status; negative when something needs attention.
pub async fn run(
    args: &CertStatusArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let target = &args.target;
    let held = read(cluster, target).await?;
    let now = Timestamp::now();
    let report = report::report(
        (&target.agent_namespace, &target.secret),
        held.secret.as_ref(),
        (&target.webhook_config, held.config.as_ref()),
        held.lease.as_ref(),
        now,
    );
    let bundle = held
        .secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(jobflow::certs::CA_CRT))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let mut served = Vec::new();
    for hook in &report.hooks {
        if hook.target.starts_with("https://") {
            let answer = served::served_serial(&hook.target, &bundle).await;
            served.push((hook.target.clone(), answer));
        }
    }
    match args.output {
        StatusFormat::Json => {
            let value = serde_json::json!({"status": report, "served": served.iter().map(|(url, a)| {
                serde_json::json!({"url": url, "serial": a.as_ref().ok(), "error": a.as_ref().err()})
            }).collect::<Vec<_>>()});
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?
            )?;
        }
        StatusFormat::Text => write!(out, "{}", render(&report, &served, now))?,
    }
    let served_ok = served.iter().all(|(_, answer)| {
        answer
            .as_ref()
            .is_ok_and(|serial| report.leaf.as_ref().is_some_and(|l| l.serial == *serial))
    });
    Ok(if report.problems.is_empty() && served_ok {
        Verdict::Positive
    } else {
        Verdict::Negative
    })
}

/// The report in words, one fact a line.
pub fn render(
    report: &Report,
    served: &[(String, Result<String, String>)],
    now: Timestamp,
) -> String {
    let mut lines = certificate_lines(report, now);
    lines.extend(rotation_lines(report));
    lines.extend(bundle_lines(report, served));
    let leader = match (&report.leader, report.leader_renewed) {
        (Some(who), Some(at)) => format!(
            "{who} (renewed {} ago)",
            human(now.duration_since(at).as_secs().max(0))
        ),
        (Some(who), None) => who.clone(),
        (None, _) => "no Lease holder (leader election off, or no agent running)".to_owned(),
    };
    lines.push(("Leader:", leader));
    let mut text = String::new();
    for (key, value) in &lines {
        let _ = writeln!(text, "{key:<12}{value}");
    }
    if report.problems.is_empty() {
        text.push_str("OK\n");
    }
    for problem in &report.problems {
        text.push_str("problem: ");
        text.push_str(problem);
        text.push('\n');
    }
    text
}

fn certificate_lines(report: &Report, now: Timestamp) -> Vec<(&'static str, String)> {
    let made = if !report.found {
        "not found"
    } else if report.made_by_agent {
        "made by the agent"
    } else {
        "not made by the agent: external, never written by it"
    };
    let mut lines = vec![("Secret:", format!("{} ({made})", report.secret))];
    let cert = |cert: &Cert| {
        let left = cert.not_after.duration_since(now).as_secs();
        let validity = if cert.valid {
            format!("{} left", human(left))
        } else {
            "NOT VALID NOW".to_owned()
        };
        format!(
            "serial {}, valid {} to {} ({validity})",
            cert.serial, cert.not_before, cert.not_after
        )
    };
    if let Some(ca) = &report.ca {
        lines.push(("CA:", cert(ca)));
    }
    if let Some(leaf) = &report.leaf {
        lines.push(("Leaf:", cert(leaf)));
    }
    if report.bundle.len() > 1 {
        let rest: Vec<String> = report.bundle[1..]
            .iter()
            .map(|ca| format!("{} (until {})", ca.serial, ca.not_after))
            .collect();
        lines.push(("Also trusts:", rest.join(", ")));
    }
    lines
}

fn rotation_lines(report: &Report) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    match (&report.staged_ca, &report.staged_trusted_at) {
        (Some(ca), Some(at)) => lines.push((
            "Key change:",
            format!("staged CA {ca}, in every caBundle since {at}: signs after the settle time"),
        )),
        (Some(ca), None) => lines.push((
            "Key change:",
            format!("staged CA {ca}, waiting for every caBundle to show it"),
        )),
        _ => {}
    }
    let asked = report
        .requested
        .as_deref()
        .and_then(jobflow::certs::parse_request);
    match (&report.requested, asked, &report.rotated) {
        (Some(value), Some(asked), Some(done)) if asked.id == *done => {
            lines.push(("Rotation:", format!("{value}: done")));
        }
        (Some(value), _, done) => lines.push((
            "Rotation:",
            format!(
                "{value}: pending{}",
                done.as_ref()
                    .map(|d| format!(" (last done: {d})"))
                    .unwrap_or_default()
            ),
        )),
        (None, _, Some(done)) => lines.push(("Rotation:", format!("last done: {done}"))),
        (None, _, None) => {}
    }
    lines
}

fn bundle_lines(
    report: &Report,
    served: &[(String, Result<String, String>)],
) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if !report.config_found {
        lines.push((
            "caBundle:",
            format!("no ValidatingWebhookConfiguration {}", report.config),
        ));
    }
    for hook in &report.hooks {
        let state = match (hook.in_sync, hook.trusts_leaf) {
            (true, _) => "in sync",
            (false, true) => "NOT IN SYNC (still trusts the leaf)",
            (false, false) => "NOT IN SYNC, does not trust the leaf",
        };
        lines.push((
            "caBundle:",
            format!(
                "{state} ({}/{}, {} CA(s))",
                report.config,
                hook.name,
                hook.cas.len()
            ),
        ));
    }
    let leaf = report.leaf.as_ref().map(|l| l.serial.as_str());
    for (url, answer) in served {
        let value = match answer {
            Ok(serial) if leaf == Some(serial.as_str()) => {
                format!("{url}: serial {serial} (the Secret's leaf)")
            }
            Ok(serial) => format!("{url}: serial {serial} (NOT the Secret's leaf yet)"),
            Err(error) => format!("{url}: {error}"),
        };
        lines.push(("Served:", value));
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::report::tests::{config, secret, t0};
    use super::*;
    use jobflow::certs::CA_CRT;

    #[test]
    fn a_healthy_secret_and_bundle_render_ok_with_the_pending_request() {
        let secret = secret();
        let bundle = secret.data.as_ref().unwrap()[CA_CRT].0.clone();
        let config = config(&bundle);
        let now = t0() + jiff::SignedDuration::from_hours(1);
        let report = report::report(
            ("zen-flow-system", "jobflow-webhook-tls"),
            Some(&secret),
            ("jobflow-validating", Some(&config)),
            None,
            now,
        );
        let text = render(&report, &[], now);
        assert!(
            text.contains("Rotation:   r2:ca: pending (last done: r1)"),
            "{text}"
        );
        assert!(
            text.contains(
                "caBundle:   in sync (jobflow-validating/validate.workflow.kube-zen.io, 1 CA(s))"
            ),
            "{text}"
        );
        assert!(text.ends_with("OK\n"), "{text}");
    }
}
