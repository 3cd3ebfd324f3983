//! The webhook under admission load: about 20 server-side dry-run creates a second (refused
//! with the exact message, or admitted) run through every rotation and a leader change, and
//! each test passes only if every one got our webhook's answer. Against the local control
//! plane; the API server calls the agent by URL.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use jobflow::certs::{
    self, CA_CRT, CA_NEXT, CaStep, CertInfo, Decision, LeafStep, Names, ROTATE, ROTATED, San, Seen,
    TLS_CRT, Why,
};
use jobflow::labels;
use jobflow_tests::admission_load::Load;
use jobflow_tests::agent::free_port;
use jobflow_tests::fixture::{WebhookSetup, run_with_webhook};
use jobflow_tests::webhook::{
    bundle_cas, config_bundles, served_serial, wait_until_answering, with_webhook_config,
};
use jobflow_tests::{POLL, run_in_namespace, wait_for};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const SECRET: &str = "jobflow-webhook-tls";
const LEASE: &str = "jobflow-agent";
/// Load before and after each event, so the test sees the transition from both sides.
const AROUND: Duration = Duration::from_secs(3);

fn names(ns: &str) -> Names {
    Names {
        service: "jobflow-webhook".to_owned(),
        namespace: ns.to_owned(),
        extra: vec![San::parse("127.0.0.1")],
    }
}

fn stored(secret: &Secret, key: &str) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| bytes.0.clone())
        .unwrap_or_default()
}

fn leaf_of(secret: &Secret) -> anyhow::Result<CertInfo> {
    bundle_cas(&stored(secret, TLS_CRT))
        .into_iter()
        .next()
        .context("no tls.crt")
}

async fn request_rotation(secrets: &Api<Secret>, value: &str) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {ROTATE: value}}});
    secrets
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

async fn wait_rotated(secrets: &Api<Secret>, id: &str) -> anyhow::Result<Secret> {
    wait_for(
        &format!("the rotation {id} to be acknowledged"),
        TIMEOUT,
        POLL,
        || async {
            let secret = secrets.get(SECRET).await?;
            Ok(
                (secret.annotations().get(ROTATED).map(String::as_str) == Some(id))
                    .then_some(secret),
            )
        },
    )
    .await
}

/// Waits until the webhook on `addr` serves the leaf stored in the Secret, and returns it.
async fn wait_served(secrets: &Api<Secret>, addr: std::net::SocketAddr) -> anyhow::Result<Secret> {
    wait_for("the stored leaf to be served", TIMEOUT, POLL, || async {
        let secret = secrets.get(SECRET).await?;
        let serial = leaf_of(&secret)?.serial;
        let served = served_serial(addr, &stored(&secret, CA_CRT)).await.ok();
        Ok((served.as_deref() == Some(serial.as_str())).then_some(secret))
    })
    .await
}

#[tokio::test]
async fn a_requested_leaf_rotation_loses_no_admission() {
    run_with_webhook(
        "webhook-load-leaf",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup { ns, addr, .. } = setup;
            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let secrets: Api<Secret> = ns.api();
            let before = wait_served(&secrets, addr).await?;
            let load = Load::start(ns.api())?;
            tokio::time::sleep(AROUND).await;
            request_rotation(&secrets, "leaf-1").await?;
            let rotated = wait_rotated(&secrets, "leaf-1").await?;
            assert_ne!(leaf_of(&rotated)?.serial, leaf_of(&before)?.serial);
            assert_eq!(
                stored(&rotated, CA_CRT),
                stored(&before, CA_CRT),
                "the CA stays"
            );
            wait_served(&secrets, addr).await?;
            tokio::time::sleep(AROUND).await;
            let report = load.stop().await?;
            eprintln!("leaf rotation under load: {}", report.summary());
            report.check(100)?;
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_ca_key_change_goes_in_phases_and_loses_no_admission() {
    run_with_webhook(
        "webhook-load-ca-key",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup {
                ns,
                client,
                addr,
                name,
            } = setup;
            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let secrets: Api<Secret> = ns.api();
            let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let before = wait_served(&secrets, addr).await?;
            let old_ca = bundle_cas(&stored(&before, CA_CRT)).remove(0);
            let load = Load::start(ns.api())?;
            tokio::time::sleep(AROUND).await;
            request_rotation(&secrets, "key-1:ca").await?;

            // Phase 1: the new CA is in the API server's caBundle while the old one still signs.
            let staged = wait_for("the new CA to be staged", TIMEOUT, POLL, || async {
                let secret = secrets.get(SECRET).await?;
                Ok(secret.annotations().get(CA_NEXT).cloned())
            })
            .await?;
            let trusted = wait_for("the staged CA in the caBundle", TIMEOUT, POLL, || async {
                let bundles = config_bundles(&configs, &name).await?;
                Ok(bundles
                    .iter()
                    .all(|b| bundle_cas(b).iter().any(|ca| ca.serial == staged))
                    .then_some(bundles))
            })
            .await?;
            let secret = secrets.get(SECRET).await?;
            if secret.annotations().get(ROTATED).map(String::as_str) != Some("key-1") {
                assert!(
                    leaf_of(&secret)?.signed_by(&old_ca),
                    "the leaf switched before the settle time"
                );
            }
            assert!(
                bundle_cas(&trusted[0])
                    .iter()
                    .any(|ca| ca.der == old_ca.der)
            );

            // Phase 2: after the settle time the new CA signs; the old one stays trusted.
            let rotated = wait_rotated(&secrets, "key-1").await?;
            let cas = bundle_cas(&stored(&rotated, CA_CRT));
            assert_eq!(cas[0].serial, staged, "the staged CA signs now");
            assert_ne!(cas[0].public_key, old_ca.public_key, "a new key");
            assert!(
                cas.iter().any(|ca| ca.der == old_ca.der),
                "the old CA is kept"
            );
            assert!(leaf_of(&rotated)?.signed_by(&cas[0]));
            assert!(rotated.annotations().get(CA_NEXT).is_none());
            wait_served(&secrets, addr).await?;
            tokio::time::sleep(AROUND).await;
            let report = load.stop().await?;
            eprintln!("CA key change under load: {}", report.summary());
            report.check(200)?;
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}

/// A Secret as the agent makes it, whose CA was issued 250 days ago (a third of its life is
/// left: due for renewal) and whose leaf is fresh.
fn secret_with_a_due_ca(ns: &str) -> anyhow::Result<Secret> {
    let names = names(ns);
    let now = Timestamp::now();
    let old = certs::bootstrap(&names, now - SignedDuration::from_hours(24 * 250))?;
    let fresh_leaf = Decision {
        ca: CaStep::Keep,
        leaf: LeafStep::Renew(Why::Due),
        prune: false,
        ack: None,
        renew_at: None,
    };
    let seen = Seen {
        data: Some(&old),
        ..Seen::default()
    };
    let data = certs::carry_out(&fresh_leaf, seen, &names, now)?.data;
    Ok(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.to_owned()),
            labels: Some(BTreeMap::from([(
                labels::MANAGED_BY.to_owned(),
                labels::MANAGED_BY_VALUE.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    })
}

/// A Lease held by someone else, so an agent serves but does not lead until it is deleted.
fn foreign_lease() -> anyhow::Result<Lease> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": LEASE},
        "spec": {
            "holderIdentity": "someone-else",
            "leaseDurationSeconds": 3600,
            "acquireTime": Timestamp::now().to_string(),
            "renewTime": Timestamp::now().to_string(),
        },
    }))?)
}

#[tokio::test]
async fn a_same_key_ca_renewal_keeps_both_cas_and_loses_no_admission() {
    run_in_namespace("webhook-load-ca-renew", |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        let WebhookSetup {
            ns, client, name, ..
        } = setup.clone();
        let secrets: Api<Secret> = ns.api();
        let secret = secrets
            .create(&PostParams::default(), &secret_with_a_due_ca(ns.name())?)
            .await?;
        let old_ca = bundle_cas(&stored(&secret, CA_CRT)).remove(0);
        let leases: Api<Lease> = ns.api();
        leases
            .create(&PostParams::default(), &foreign_lease()?)
            .await?;
        // The API server already trusts the old CA, as on a cluster running for 250 days.
        let config = setup.config(Some(&stored(&secret, CA_CRT)))?;
        with_webhook_config(&client, &config, || async {
            let agent = setup.elected(setup.addr, LEASE, "agent-a").start().await?;
            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let load = Load::start(ns.api())?;
            tokio::time::sleep(AROUND).await;
            assert_eq!(
                secrets.get(SECRET).await?.resource_version(),
                secret.resource_version(),
                "a replica that does not lead wrote the Secret"
            );
            // The agent leads: it renews the CA from its key.
            leases.delete(LEASE, &DeleteParams::default()).await?;
            let renewed = wait_for("the CA to be renewed", TIMEOUT, POLL, || async {
                let now = secrets.get(SECRET).await?;
                let cas = bundle_cas(&stored(&now, CA_CRT));
                Ok((cas.len() == 2 && cas[0].der != old_ca.der).then_some(now))
            })
            .await?;
            let cas = bundle_cas(&stored(&renewed, CA_CRT));
            assert_eq!(cas[0].public_key, old_ca.public_key, "the same key");
            assert_eq!(cas[1].der, old_ca.der, "the old CA stays until it expires");
            assert!(cas[0].not_after > old_ca.not_after);
            assert_eq!(
                leaf_of(&renewed)?.serial,
                leaf_of(&secret)?.serial,
                "the leaf verifies with both: kept"
            );
            let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            wait_for(
                "the renewed bundle in the caBundle",
                TIMEOUT,
                POLL,
                || async {
                    let bundles = config_bundles(&configs, &name).await?;
                    Ok(bundles
                        .iter()
                        .all(|b| *b == stored(&renewed, CA_CRT))
                        .then_some(()))
                },
            )
            .await?;
            tokio::time::sleep(AROUND).await;
            let report = load.stop().await?;
            eprintln!("same-key CA renewal under load: {}", report.summary());
            report.check(100)?;
            agent.ensure_running()
        })
        .await
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_agents_starting_at_once_make_one_secret_and_serve_the_same_leaf() {
    run_in_namespace("webhook-two-agents", |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        let WebhookSetup {
            ns,
            client,
            addr: addr_a,
            ..
        } = setup.clone();
        let addr_b = free_port()?;
        let config = setup.config(None)?;
        with_webhook_config(&client, &config, || async {
            let start = |addr, identity: &'static str| setup.elected(addr, LEASE, identity).start();
            let (a, b) = tokio::join!(start(addr_a, "agent-a"), start(addr_b, "agent-b"));
            let (a, b) = (a?, b?);
            let secrets: Api<Secret> = ns.api();
            let secret = wait_served(&secrets, addr_a).await?;
            let bundle = stored(&secret, CA_CRT);
            assert_eq!(bundle_cas(&bundle).len(), 1, "one CA");
            let serial = leaf_of(&secret)?.serial;
            assert_eq!(served_serial(addr_b, &bundle).await?, serial);
            // Both are ready: each serves what the API server trusts.
            assert_eq!(a.get("/readyz").await?.0, 200);
            assert_eq!(b.get("/readyz").await?.0, 200);
            tokio::time::sleep(Duration::from_secs(13)).await;
            let later = secrets.get(SECRET).await?;
            assert_eq!(
                later.resource_version(),
                secret.resource_version(),
                "rewritten"
            );
            a.ensure_running()?;
            b.ensure_running()
        })
        .await
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_new_leader_resumes_a_ca_key_change_from_the_annotations() {
    run_in_namespace("webhook-load-resume", |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        // The API server calls the replica that survives.
        let WebhookSetup {
            ns,
            client,
            addr: addr_b,
            ..
        } = setup.clone();
        let addr_a = free_port()?;
        let config = setup.config(None)?;
        with_webhook_config(&client, &config, || async {
            let a = setup.elected(addr_a, LEASE, "agent-a").start().await?;
            let secrets: Api<Secret> = ns.api();
            // Only the leader creates the Secret: a leads.
            wait_for("a's Secret", TIMEOUT, POLL, || async {
                Ok(secrets.get_opt(SECRET).await?)
            })
            .await?;
            let b = setup.elected(addr_b, LEASE, "agent-b").start().await?;
            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let load = Load::start(ns.api())?;
            tokio::time::sleep(AROUND).await;
            request_rotation(&secrets, "key-1:ca").await?;
            let staged = wait_for("a to stage the new CA", TIMEOUT, POLL, || async {
                let secret = secrets.get(SECRET).await?;
                Ok(secret.annotations().get(CA_NEXT).cloned())
            })
            .await?;
            a.kill_9()?;
            let secret = secrets.get(SECRET).await?;
            assert_ne!(
                secret.annotations().get(ROTATED).map(String::as_str),
                Some("key-1"),
                "a finished before it was killed: nothing left to resume"
            );
            // b takes the Lease after it expires and finishes the same key change.
            let rotated = wait_rotated(&secrets, "key-1").await?;
            let cas = bundle_cas(&stored(&rotated, CA_CRT));
            assert_eq!(cas[0].serial, staged, "b switched to the CA a staged");
            wait_served(&secrets, addr_b).await?;
            tokio::time::sleep(AROUND).await;
            let report = load.stop().await?;
            eprintln!(
                "leader killed mid-rotation, under load: {}",
                report.summary()
            );
            report.check(300)?;
            b.ensure_running()
        })
        .await
    })
    .await
    .unwrap();
}
