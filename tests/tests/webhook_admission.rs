//! The admission webhook against the local control plane, which calls the real agent by URL:
//! self-managed bootstrap, UPDATE checks, external mode, an expired Secret replaced.
//!
//! Each test registers its own ValidatingWebhookConfiguration (unique name, only its own
//! namespace, deleted afterwards: see `jobflow_tests::webhook`).

use std::time::Duration;

use anyhow::Context as _;

use jobflow::api::JobFlow;
use jobflow::certs::{self, CA_CRT, CA_KEY, Names, San, TLS_CRT, TLS_KEY};
use jobflow::labels;
use jobflow_tests::admission_load::{expected_denial, refused_flow as invalid_flow};
use jobflow_tests::agent::AgentProcess;
use jobflow_tests::fixture::{WebhookSetup, run_with_webhook};
use jobflow_tests::flows::{FlowBuilder, StepBuilder};
use jobflow_tests::webhook::{
    create_through_webhook, webhook_args, webhook_config, with_webhook_config,
};
use jobflow_tests::{FakePod, POLL, run_in_namespace, wait_for};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// How long the agent may take to make certificates and the API server to trust them.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The Secret's default name.
const SECRET: &str = "jobflow-webhook-tls";

/// A flow with two steps named alike and a dependency on a step that does not exist.
/// The caBundle of every webhook in the configuration `name`.
async fn ca_bundles(
    configs: &Api<ValidatingWebhookConfiguration>,
    name: &str,
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let config = configs.get(name).await?;
    Ok(config
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|hook| hook.client_config.ca_bundle.map(|b| b.0))
        .collect())
}

#[tokio::test]
async fn bootstrap_creates_the_secret_injects_the_ca_bundle_and_refuses_invalid_flows() {
    run_with_webhook(
        "webhook-bootstrap",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup {
                ns, client, name, ..
            } = setup;
            let secrets: Api<Secret> = ns.api();
            let secret = wait_for("the agent to create its Secret", TIMEOUT, POLL, || async {
                Ok(secrets.get_opt(SECRET).await?)
            })
            .await?;
            assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
            let data = secret.data.clone().unwrap_or_default();
            for key in [TLS_CRT, TLS_KEY, CA_CRT, CA_KEY] {
                assert!(data.contains_key(key), "the Secret has no {key}");
            }
            assert_eq!(
                secret.labels().get(labels::MANAGED_BY).map(String::as_str),
                Some(labels::MANAGED_BY_VALUE)
            );
            let bundle = data[CA_CRT].0.clone();
            let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            wait_for("the caBundle to be injected", TIMEOUT, POLL, || async {
                let bundles = ca_bundles(&configs, &name).await?;
                Ok(bundles
                    .iter()
                    .all(|b| b.as_deref() == Some(bundle.as_slice()))
                    .then_some(()))
            })
            .await?;
            // Only the caBundle is owned by the agent's caBundle manager.
            let config = configs.get(&name).await?;
            let manager = config
                .managed_fields()
                .iter()
                .find(|entry| entry.manager.as_deref() == Some("jobflow-agent-cabundle"))
                .context("no managedFields entry of jobflow-agent-cabundle")?;
            let owned = serde_json::to_string(&manager.fields_v1)?;
            assert!(owned.contains("f:caBundle"), "{owned}");
            assert!(
                !owned.contains("f:url") && !owned.contains("f:rules"),
                "{owned}"
            );

            let flows: Api<JobFlow> = ns.api();
            let invalid = invalid_flow("invalid");
            let denial = create_through_webhook(&flows, &invalid, TIMEOUT).await?;
            assert_eq!(denial, Some(expected_denial(&invalid)?));
            assert!(flows.get_opt("invalid").await?.is_none());

            let valid = FlowBuilder::new("valid")
                .step(StepBuilder::new("a", &FakePod::succeed()))
                .build();
            assert_eq!(create_through_webhook(&flows, &valid, TIMEOUT).await?, None);

            // A name longer than a label value would have been accepted, and its first Job
            // refused by the API server (the flow label holds the name): refused at admission.
            let long_name = "a".repeat(70);
            let long = FlowBuilder::new(&long_name)
                .step(StepBuilder::new("a", &FakePod::succeed()))
                .build();
            let denial = create_through_webhook(&flows, &long, TIMEOUT).await?;
            assert_eq!(denial, Some(expected_denial(&long)?));
            let denial = denial.unwrap_or_default();
            assert!(
                denial.contains("metadata.name") && denial.contains("at most 63 characters"),
                "{denial}"
            );
            assert!(flows.get_opt(&long_name).await?.is_none());

            let metric = |labels: &'static [(&'static str, &'static str)]| {
                let agent = &agent;
                async move {
                    agent
                        .metric_value("zen_flow_webhook_admissions_total", labels)
                        .await
                        .map(Option::unwrap_or_default)
                }
            };
            assert!(metric(&[("operation", "CREATE"), ("result", "denied")]).await? >= 1.0);
            assert!(metric(&[("operation", "CREATE"), ("result", "allowed")]).await? >= 1.0);
            let served = agent
                .metric_value(
                    "zen_flow_webhook_certificate_not_after_seconds",
                    &[("cert", "leaf"), ("source", "served")],
                )
                .await?
                .context("no served leaf notAfter")?;
            let in_29_days = Timestamp::now() + SignedDuration::from_hours(24 * 29);
            #[allow(clippy::cast_precision_loss, reason = "Unix seconds fit in an f64")]
            let in_29_days = in_29_days.as_second() as f64;
            assert!(served > in_29_days, "served leaf ends at {served}");
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn updates_are_checked_and_a_started_flows_spec_is_fixed() {
    run_with_webhook(
        "webhook-update",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup { ns, .. } = setup;
            let flows: Api<JobFlow> = ns.api();
            let running = FakePod::succeed().running_for(Duration::from_secs(600));
            let flow = FlowBuilder::new("long")
                .step(StepBuilder::new("a", &running))
                .build();
            assert_eq!(create_through_webhook(&flows, &flow, TIMEOUT).await?, None);

            let started = wait_for("the flow to start", TIMEOUT, POLL, || async {
                let flow = flows.get("long").await?;
                Ok(flow
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_some()
                    .then_some(flow))
            })
            .await?;
            // A spec change on a started flow is refused (the CRD's transition rule runs before
            // admission webhooks; the webhook's own copy of the check is unit-tested).
            let mut steps = started.spec.steps.clone();
            steps[0].name = "b".to_owned();
            // A merge patch: no resourceVersion to race the agent's status writes.
            let change = Patch::Merge(json!({"spec": {"steps": steps}}));
            let error = flows
                .patch("long", &PatchParams::default(), &change)
                .await
                .err()
                .context("changing a started flow's steps was allowed")?;
            let message = format!("{error}");
            assert!(
                message.contains("immutable once the flow has started")
                    || message.contains("cannot change once the flow has started"),
                "{message}"
            );

            // suspend may change: admitted by the webhook.
            let patch = Patch::Merge(json!({"spec": {"suspend": true}}));
            flows.patch("long", &PatchParams::default(), &patch).await?;

            // An UPDATE that makes an unstarted flow invalid reaches the webhook (the CRD
            // allows it) and is refused with validation's message.
            let unstarted = FlowBuilder::new("unstarted")
                .with(|f| f.spec.suspend = Some(true))
                .step(StepBuilder::new("a", &FakePod::succeed()))
                .build();
            assert_eq!(
                create_through_webhook(&flows, &unstarted, TIMEOUT).await?,
                None
            );
            let mut broken = invalid_flow("unstarted");
            broken.spec.suspend = Some(true);
            // A merge patch: no resourceVersion to race the agent's status writes.
            let patch = Patch::Merge(json!({"spec": {"steps": broken.spec.steps}}));
            let error = flows
                .patch("unstarted", &PatchParams::default(), &patch)
                .await
                .err()
                .context("an invalid update was admitted")?;
            let kube::Error::Api(status) = error else {
                anyhow::bail!("not an API refusal: {error}");
            };
            assert_eq!(status.message, expected_denial(&broken)?);
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}

/// A Secret made elsewhere (as cert-manager would), valid for the agent's names at `now`.
fn external_secret(ns: &str, now: Timestamp) -> anyhow::Result<Secret> {
    let names = Names {
        service: "jobflow-webhook".to_owned(),
        namespace: ns.to_owned(),
        extra: vec![San::parse("127.0.0.1")],
    };
    let data = certs::bootstrap(&names, now)?;
    Ok(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    })
}

#[tokio::test]
async fn external_mode_serves_the_secret_and_writes_nothing() {
    run_in_namespace("webhook-external", |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        let WebhookSetup {
            ns,
            client,
            addr,
            name,
        } = setup.clone();
        let secrets: Api<Secret> = ns.api();
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());

        // First with no Secret at all: nothing may be created, no caBundle written.
        let config = setup.config(None)?;
        with_webhook_config(&client, &config, || async {
            let agent = setup
                .agent()
                .arg("--cert-mode=external")
                .wait_ready(false)
                .start()
                .await?;
            // Longer than the sync timer's longest wait (12.5 s), after the first sync.
            tokio::time::sleep(Duration::from_secs(15)).await;
            // Nothing to serve: alive, not ready.
            let (status, body) = agent.get("/readyz").await?;
            assert_eq!(
                (status, body.as_str()),
                (503, "no webhook certificate served yet\n")
            );
            assert!(
                secrets.get_opt(SECRET).await?.is_none(),
                "external mode created the Secret"
            );
            assert_eq!(
                ca_bundles(&configs, &name).await?,
                [None],
                "external mode wrote the caBundle"
            );
            agent.ensure_running()
        })
        .await?;

        // Then with a Secret made elsewhere and the caBundle set by hand: served, untouched.
        let secret = secrets
            .create(
                &PostParams::default(),
                &external_secret(ns.name(), Timestamp::now())?,
            )
            .await?;
        let bundle = secret
            .data
            .as_ref()
            .map(|d| d[CA_CRT].0.clone())
            .unwrap_or_default();
        let name = format!("{name}-2");
        let config = webhook_config(&name, ns.name(), addr, Some(&bundle))?;
        with_webhook_config(&client, &config, || async {
            let agent = AgentProcess::builder(ns.name())
                .args_from(webhook_args(addr, &name, ns.name()))
                .arg("--cert-mode=external")
                .start()
                .await?;
            let flows: Api<JobFlow> = ns.api();
            let invalid = invalid_flow("invalid");
            let denial = create_through_webhook(&flows, &invalid, TIMEOUT).await?;
            assert_eq!(denial, Some(expected_denial(&invalid)?));
            tokio::time::sleep(Duration::from_secs(13)).await;
            let now = secrets.get(SECRET).await?;
            assert_eq!(
                now.resource_version(),
                secret.resource_version(),
                "the Secret was written"
            );
            let config = configs.get(&name).await?;
            assert!(
                !config
                    .managed_fields()
                    .iter()
                    .any(|entry| entry.manager.as_deref() == Some("jobflow-agent-cabundle")),
                "external mode wrote the caBundle"
            );
            agent.ensure_running()
        })
        .await
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_expired_secret_is_replaced_and_the_new_pair_served() {
    // Made 400 days ago: CA and leaf long expired.
    replaced_and_never_served("webhook-expired", -SignedDuration::from_hours(24 * 400)).await;
}

#[tokio::test]
async fn a_not_yet_valid_secret_is_replaced_and_the_new_pair_served() {
    // Made "tomorrow" (a clock far ahead): nothing in it is valid yet.
    replaced_and_never_served("webhook-not-yet-valid", SignedDuration::from_hours(24)).await;
}

/// A Secret made by the agent (its label) at now + `made_at`, unusable now: the agent replaces
/// it, never serves it, and the API server gets answers from the new pair.
#[allow(clippy::unwrap_used)]
async fn replaced_and_never_served(prefix: &str, made_at: SignedDuration) {
    run_in_namespace(prefix, |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        let WebhookSetup { ns, client, .. } = setup.clone();
        let secrets: Api<Secret> = ns.api();
        let mut expired = external_secret(ns.name(), Timestamp::now() + made_at)?;
        expired.metadata.labels = Some(
            [(
                labels::MANAGED_BY.to_owned(),
                labels::MANAGED_BY_VALUE.to_owned(),
            )]
            .into(),
        );
        let old = secrets.create(&PostParams::default(), &expired).await?;
        let old_ca = old
            .data
            .as_ref()
            .map(|d| d[CA_CRT].0.clone())
            .unwrap_or_default();
        let config = setup.config(None)?;
        with_webhook_config(&client, &config, || async {
            let agent = setup.agent().start().await?;
            let replaced = wait_for(
                "the unusable Secret to be replaced",
                TIMEOUT,
                POLL,
                || async {
                    let secret = secrets.get(SECRET).await?;
                    Ok((secret.resource_version() != old.resource_version()).then_some(secret))
                },
            )
            .await?;
            let data = replaced.data.clone().unwrap_or_default();
            assert_ne!(data[CA_CRT].0, old_ca, "the CA was not replaced");
            let now = Timestamp::now();
            let served = certs::check_serving(&data, &[San::parse("127.0.0.1")], now)?;
            assert!(served.leaf().is_some_and(|leaf| leaf.not_after > now));
            // The API server trusts only the new CA: an answer proves the new pair is served.
            let flows: Api<JobFlow> = ns.api();
            let invalid = invalid_flow("invalid");
            let denial = create_through_webhook(&flows, &invalid, TIMEOUT).await?;
            assert_eq!(denial, Some(expected_denial(&invalid)?));
            let log = agent.log_tail(400);
            assert!(
                log.contains("keeping the last good one"),
                "the unusable pair was not refused:\n{log}"
            );
            agent.ensure_running()
        })
        .await
    })
    .await
    .unwrap();
}
