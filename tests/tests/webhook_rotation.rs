//! Certificate rotation while serving: a leaf the agent must replace is renewed by the leader
//! and swapped in by the server without a restart, and a pair that fails the checks is never
//! served; observed with real TLS handshakes against the agent.
//!
//! No ValidatingWebhookConfiguration is registered: the handshakes go straight to the agent,
//! so nothing here can touch other tests' admissions.

use std::time::Duration;

use anyhow::Context as _;
use jobflow::certs::{self, CA_CRT, Names, San, TLS_CRT, TLS_KEY};
use jobflow_tests::agent::{AgentProcess, free_port};
use jobflow_tests::webhook::{served_serial, webhook_args};
use jobflow_tests::{POLL, install_crd, run_in_namespace, wait_for};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
const SECRET: &str = "jobflow-webhook-tls";

/// The serial of the leaf stored in `secret`.
fn stored_serial(secret: &Secret) -> anyhow::Result<String> {
    let data = secret.data.clone().unwrap_or_default();
    let der = x509_der(&data.get(TLS_CRT).context("no tls.crt")?.0)?;
    Ok(certs::CertInfo::from_der(&der, TLS_CRT)?.serial)
}

fn x509_der(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    Ok(CertificateDer::from_pem_slice(pem)
        .context("no PEM certificate")?
        .to_vec())
}

#[tokio::test]
async fn a_refused_leaf_is_renewed_and_swapped_in_without_a_restart() {
    run_in_namespace("webhook-rotation", |ns| async move {
        install_crd(&ns.client()).await?;
        let addr = free_port()?;
        // A configuration that does not exist: the caBundle sync finds nothing to write.
        let config = format!("jobflow-validating-absent-{}", ns.name());
        let agent = AgentProcess::builder(ns.name())
            .args_from(webhook_args(addr, &config, ns.name()))
            .wait_ready(false)
            .start()
            .await?;
        let pid = agent.pid();
        let secrets: Api<Secret> = ns.api();
        let first = wait_for("the agent to create its Secret", TIMEOUT, POLL, || async {
            Ok(secrets.get_opt(SECRET).await?)
        })
        .await?;
        let bundle = first.data.clone().unwrap_or_default()[CA_CRT].0.clone();
        let old = stored_serial(&first)?;
        wait_for("the stored leaf to be served", TIMEOUT, POLL, || async {
            Ok(served_serial(addr, &bundle)
                .await
                .ok()
                .filter(|s| *s == old))
        })
        .await?;

        // A key that is not the leaf's: the server must not take it; the leader renews the leaf.
        let names = Names {
            service: "jobflow-webhook".to_owned(),
            namespace: ns.name().to_owned(),
            extra: vec![San::parse("127.0.0.1")],
        };
        let now = Timestamp::now();
        let other = certs::bootstrap(&names, now)?;
        let patch = json!({"data": {TLS_KEY: other[TLS_KEY]}});
        secrets
            .patch(SECRET, &PatchParams::default(), &Patch::Merge(patch))
            .await?;

        let handshakes = std::cell::Cell::new(0u32);
        let failures = std::cell::RefCell::new(Vec::new());
        let renewed = wait_for("a new leaf to be served", TIMEOUT, POLL, || {
            let (handshakes, failures) = (&handshakes, &failures);
            let (secrets, bundle, old) = (&secrets, &bundle, &old);
            async move {
                handshakes.set(handshakes.get() + 1);
                let served = match served_serial(addr, bundle).await {
                    Ok(served) => served,
                    Err(error) => {
                        failures.borrow_mut().push(format!("{error:#}"));
                        return Ok(None);
                    }
                };
                let secret = secrets.get(SECRET).await?;
                let stored = stored_serial(&secret)?;
                Ok((served != *old && served == stored).then_some(secret))
            }
        })
        .await?;
        // Serving, but not ready: no caBundle the API server holds trusts the leaf.
        let (status, body) = agent.get("/readyz").await?;
        assert_eq!(
            (status, body.trim()),
            (
                503,
                format!("no ValidatingWebhookConfiguration {config} to read the caBundle from")
                    .as_str()
            )
        );
        let (handshakes, failures) = (handshakes.get(), failures.into_inner());
        assert!(
            failures.is_empty(),
            "{} of {handshakes} handshakes failed: {failures:?}",
            failures.len()
        );
        // The CA was kept, so the bundle the API server trusts did not change.
        assert_eq!(renewed.data.clone().unwrap_or_default()[CA_CRT].0, bundle);
        assert_ne!(renewed.resource_version(), first.resource_version());
        assert_eq!(agent.pid(), pid);
        agent.ensure_running()?;
        let log = agent.log_tail(400);
        assert!(
            log.contains("keeping the last good one"),
            "the mismatched pair was not refused:\n{log}"
        );
        Ok(())
    })
    .await
    .unwrap();
}
