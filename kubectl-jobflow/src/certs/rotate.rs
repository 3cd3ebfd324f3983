//! `cert-rotate [--ca] [--wait]`: asks the leader for a rotation through the Secret's
//! `workflow.kube-zen.io/rotate` annotation, and waits until it is acknowledged, every caBundle
//! holds the new signing CA and (for webhooks called by URL) the new leaf is served.

use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use jobflow::certs::{CA_CRT, CA_NEXT, ROTATE, ROTATED};
use jobflow::labels;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::report::{self, Report};
use super::{read, served};
use crate::Verdict;
use crate::cli::CertRotateArgs;
use crate::connect::Cluster;
use crate::error::Error;
use crate::requests::{FIELD_MANAGER, fresh_request_id};

/// How often `--wait` looks.
const POLL: Duration = Duration::from_millis(500);

/// Makes the request and, with `--wait`, waits for it.
pub async fn run(
    args: &CertRotateArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let target = &args.target;
    let ns = &target.agent_namespace;
    let qualified = format!("{ns}/{}", target.secret);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let secret = secrets
        .get_opt(&target.secret)
        .await
        .map_err(|source| Error::Api {
            action: format!("get secret {qualified}"),
            source,
        })?
        .ok_or_else(|| {
            Error::Refused(format!(
                "Secret {qualified} does not exist: the agent makes it when it serves the webhook; check `kubectl jobflow cert-status --agent-namespace {ns}`"
            ))
        })?;
    if secret.labels().get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGED_BY_VALUE)
    {
        return Err(Error::Refused(format!(
            "Secret {qualified} was not made by the agent (external mode): rotate it with the tool that made it, e.g. cert-manager"
        )));
    }
    let id = fresh_request_id();
    let value = if args.ca {
        format!("{id}:ca")
    } else {
        id.clone()
    };
    let patch = json!({"metadata": {"annotations": {ROTATE: value}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    secrets
        .patch(&target.secret, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Api {
            action: format!("annotate secret {qualified}"),
            source,
        })?;
    let what = if args.ca {
        "a new CA key (staged in the caBundle first), then a new leaf"
    } else {
        "a new leaf"
    };
    writeln!(out, "requested rotation {id} on Secret {qualified}: {what}")?;
    if !args.wait.wait {
        writeln!(
            out,
            "follow it with `kubectl jobflow cert-status --agent-namespace {ns}`"
        )?;
        return Ok(Verdict::Positive);
    }
    let deadline = tokio::time::Instant::now() + args.wait.timeout;
    let mut said_staged = false;
    loop {
        let held = read(cluster, target).await?;
        let now = Timestamp::now();
        let report = report::report(
            (ns, &target.secret),
            held.secret.as_ref(),
            (&target.webhook_config, held.config.as_ref()),
            held.lease.as_ref(),
            now,
        );
        let annotations = held
            .secret
            .as_ref()
            .map(|s| s.annotations().clone())
            .unwrap_or_default();
        if let Some(staged) = annotations.get(CA_NEXT).filter(|_| !said_staged) {
            writeln!(
                out,
                "staged CA {staged}: waiting for every caBundle to hold it"
            )?;
            said_staged = true;
        }
        if annotations.get(ROTATED) == Some(&id) && done(&report, &held).await {
            let leaf = report.leaf.map(|l| l.serial).unwrap_or_default();
            let ca = report.ca.map(|c| c.serial).unwrap_or_default();
            writeln!(
                out,
                "rotated: CA {ca}, leaf {leaf}; every caBundle holds the CA and the leaf is served"
            )?;
            return Ok(Verdict::Positive);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Refused(format!(
                "rotation {id} not carried out within {}s; see `kubectl jobflow cert-status --agent-namespace {ns}` (is the leader running?)",
                args.wait.timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether every caBundle is the Secret's and every webhook called by URL serves its leaf.
async fn done(report: &Report, held: &super::Held) -> bool {
    if !report.config_found || report.hooks.iter().any(|h| !h.in_sync) {
        return false;
    }
    let bundle = held
        .secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(CA_CRT))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let Some(leaf) = &report.leaf else {
        return false;
    };
    for hook in report
        .hooks
        .iter()
        .filter(|h| h.target.starts_with("https://"))
    {
        if served::served_serial(&hook.target, &bundle)
            .await
            .as_deref()
            != Ok(leaf.serial.as_str())
        {
            return false;
        }
    }
    true
}
