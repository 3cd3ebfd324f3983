//! `kubectl jobflow cert-status` and `cert-rotate` against a real agent serving its webhook on
//! the local control plane (called by URL), asserting what the cluster shows afterwards.

use std::time::Duration;

use anyhow::Context as _;
use jobflow::certs::{CA_CRT, ROTATED, TLS_CRT};
use jobflow_tests::fixture::{WebhookSetup, run_with_webhook};
use jobflow_tests::plugin::kubectl_jobflow;
use jobflow_tests::webhook::{bundle_cas, served_serial, wait_until_answering};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

const TIMEOUT: Duration = Duration::from_secs(90);
const SECRET: &str = "jobflow-webhook-tls";
const LEASE: &str = "jobflow-agent";

fn first_cert(secret: &Secret, key: &str) -> anyhow::Result<jobflow::certs::CertInfo> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .context("no such entry")?;
    bundle_cas(&bytes.0)
        .into_iter()
        .next()
        .context("no certificate")
}

#[tokio::test]
async fn cert_status_reports_and_cert_rotate_rotates_leaf_and_ca() {
    run_with_webhook(
        "plugin-certs",
        |setup| setup.elected(setup.addr, LEASE, "agent-a"),
        |setup, agent| async move {
            let WebhookSetup { ns, addr, name, .. } = setup;
            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let target = ["--agent-namespace", ns.name(), "--webhook-config", &name];
            let status = |extra: &'static [&'static str]| {
                let mut args = vec!["cert-status"];
                args.extend(target);
                args.extend(extra);
                let ns = ns.name().to_owned();
                async move { kubectl_jobflow(&ns, &args).await }
            };

            // All is well: exit 0 and every line says so.
            let run = status(&[]).await?.expect_code(0)?;
            eprintln!("kubectl jobflow cert-status:\n{}", run.stdout);
            for want in [
                "made by the agent",
                "in sync",
                "(the Secret's leaf)",
                "agent-a (renewed",
                "OK",
            ] {
                assert!(run.stdout.contains(want), "no {want:?} in:\n{}", run.stdout);
            }
            let json: serde_json::Value =
                serde_json::from_str(&status(&["-o", "json"]).await?.expect_code(0)?.stdout)?;
            assert_eq!(json["status"]["problems"], serde_json::json!([]));
            assert_eq!(json["status"]["leader"], "agent-a");

            // A leaf rotation, waited for: a new leaf, the same CA, served.
            let secrets: Api<Secret> = ns.api();
            let before = secrets.get(SECRET).await?;
            let mut args = vec!["cert-rotate", "--wait", "--timeout", "60s"];
            args.extend(target);
            let run = kubectl_jobflow(ns.name(), &args).await?.expect_code(0)?;
            assert!(run.stdout.contains("requested rotation"), "{}", run.stdout);
            let after = secrets.get(SECRET).await?;
            let leaf = first_cert(&after, TLS_CRT)?;
            assert_ne!(leaf.serial, first_cert(&before, TLS_CRT)?.serial);
            assert_eq!(first_cert(&after, CA_CRT)?, first_cert(&before, CA_CRT)?);
            let id = after.annotations().get(ROTATED).context("no ack")?;
            assert!(run.stdout.contains(id.as_str()), "{}", run.stdout);
            let bundle = after.data.as_ref().context("no data")?[CA_CRT].0.clone();
            assert_eq!(served_serial(addr, &bundle).await?, leaf.serial);

            // A CA key change, waited for through its phases.
            let mut args = vec!["cert-rotate", "--ca", "--wait", "--timeout", "80s"];
            args.extend(target);
            let run = kubectl_jobflow(ns.name(), &args).await?.expect_code(0)?;
            assert!(run.stdout.contains("staged CA"), "{}", run.stdout);
            let changed = secrets.get(SECRET).await?;
            let ca = first_cert(&changed, CA_CRT)?;
            assert_ne!(ca.public_key, first_cert(&after, CA_CRT)?.public_key);
            assert!(first_cert(&changed, TLS_CRT)?.signed_by(&ca));
            status(&[]).await?.expect_code(0)?;

            // Something wrong: named, and exit 1.
            let mut args = vec!["cert-status", "--secret", "nope"];
            args.extend(target);
            let run = kubectl_jobflow(ns.name(), &args).await?.expect_code(1)?;
            assert!(run.stdout.contains("problem: Secret"), "{}", run.stdout);
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}
