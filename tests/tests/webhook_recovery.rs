//! The leader puts things back: a caBundle reverted by hand is rewritten (with a Warning Event
//! on the configuration), a deleted Secret is put back from the leader's copy with no
//! admission lost; against the local control plane.

use std::time::Duration;

use jobflow::api::JobFlow;
use jobflow::certs::CA_CRT;
use jobflow_tests::admission_load::Load;
use jobflow_tests::fixture::{WebhookSetup, run_with_webhook};
use jobflow_tests::flows::{FlowBuilder, StepBuilder};
use jobflow_tests::webhook::{create_through_webhook, wait_until_answering};
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};

/// Longer than the sync timer's longest wait (12.5 s) plus the API server's catching up.
const TIMEOUT: Duration = Duration::from_secs(60);
const SECRET: &str = "jobflow-webhook-tls";

/// The stored CA bundle, once the Secret exists.
async fn stored_bundle(secrets: &Api<Secret>) -> anyhow::Result<(Secret, Vec<u8>)> {
    wait_for("the agent's Secret", TIMEOUT, POLL, || async {
        Ok(secrets.get_opt(SECRET).await?.and_then(|secret| {
            let bundle = secret.data.as_ref()?.get(CA_CRT)?.0.clone();
            Some((secret, bundle))
        }))
    })
    .await
}

/// Waits until every webhook of `name` has `bundle` as its caBundle.
async fn wait_for_bundle(
    configs: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: &[u8],
) -> anyhow::Result<()> {
    wait_for(
        "the caBundle to match the Secret",
        TIMEOUT,
        POLL,
        || async {
            let config = configs.get(name).await?;
            let hooks = config.webhooks.unwrap_or_default();
            Ok((!hooks.is_empty()
                && hooks.iter().all(|h| {
                    h.client_config
                        .ca_bundle
                        .as_ref()
                        .is_some_and(|b| b.0 == bundle)
                }))
            .then_some(()))
        },
    )
    .await
}

fn valid(name: &str) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &FakePod::succeed()))
        .build()
}

#[tokio::test]
async fn a_reverted_ca_bundle_is_put_back() {
    run_with_webhook(
        "webhook-revert",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup {
                ns, client, name, ..
            } = setup;
            let secrets: Api<Secret> = ns.api();
            let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let (_, bundle) = stored_bundle(&secrets).await?;
            wait_for_bundle(&configs, &name, &bundle).await?;

            // A hand edit (an update, as `kubectl edit` makes) puts a stale bundle there.
            let stale = k8s_openapi::ByteString(b"-----BEGIN CERTIFICATE-----\nstale\n".to_vec());
            let mut config = configs.get(&name).await?;
            for hook in config.webhooks.iter_mut().flatten() {
                hook.client_config.ca_bundle = Some(stale.clone());
            }
            config.metadata.managed_fields = None;
            configs
                .replace(&name, &PostParams::default(), &config)
                .await?;
            let edited = configs.get(&name).await?;
            let current = edited.webhooks.unwrap_or_default()[0]
                .client_config
                .ca_bundle
                .clone();
            assert_eq!(current, Some(stale), "the hand edit did not land");

            wait_for_bundle(&configs, &name, &bundle).await?;
            // A Warning Event on the configuration says who changed it and what to do.
            let events: Api<Event> = Api::namespaced(client.clone(), "default");
            let event = wait_for("the CaBundleRestored Event", TIMEOUT, POLL, || async {
                Ok(events
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.reason.as_deref() == Some("CaBundleRestored")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                                == Some(name.as_str())
                    }))
            })
            .await?;
            let event_name = event.name_any();
            assert_eq!(event.type_.as_deref(), Some("Warning"));
            let note = event.note.unwrap_or_default();
            assert!(
                note.contains("was changed by") && note.contains("GitOps"),
                "{note}"
            );
            assert_eq!(
                event.regarding.and_then(|r| r.kind).as_deref(),
                Some("ValidatingWebhookConfiguration")
            );
            let flows: Api<JobFlow> = ns.api();
            assert_eq!(
                create_through_webhook(&flows, &valid("after"), TIMEOUT).await?,
                None
            );
            let restored = agent
                .metric_value(
                    "zen_flow_webhook_ca_bundle_writes_total",
                    &[("reason", "restored"), ("result", "ok")],
                )
                .await?;
            assert!(restored >= Some(1.0), "restored writes: {restored:?}");
            // The Event lives in `default`, outside the test namespace: clean it up.
            let _ = events.delete(&event_name, &DeleteParams::default()).await;
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_deleted_secret_is_put_back_with_no_admission_lost() {
    run_with_webhook(
        "webhook-deleted",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup {
                ns, client, name, ..
            } = setup;
            let secrets: Api<Secret> = ns.api();
            let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let (first, bundle) = stored_bundle(&secrets).await?;
            wait_for_bundle(&configs, &name, &bundle).await?;

            wait_until_answering(&ns.api(), TIMEOUT).await?;
            let load = Load::start(ns.api())?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            secrets.delete(SECRET, &DeleteParams::default()).await?;
            let (second, new_bundle) = wait_for("the Secret put back", TIMEOUT, POLL, || async {
                let (secret, bundle) = stored_bundle(&secrets).await?;
                Ok((secret.uid() != first.uid()).then_some((secret, bundle)))
            })
            .await?;
            assert_ne!(second.uid(), first.uid());
            assert_eq!(
                new_bundle, bundle,
                "put back from the leader's copy: the same CA"
            );
            assert_eq!(second.data, first.data, "the same pair");
            wait_for_bundle(&configs, &name, &new_bundle).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let report = load.stop().await?;
            eprintln!("Secret deleted, under load: {}", report.summary());
            report.check(100)?;
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}
