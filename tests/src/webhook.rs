//! The admission webhook in cluster tests: a ValidatingWebhookConfiguration that calls one
//! test's agent by URL, matching only that test's namespace, and always deleted afterwards.
//!
//! The control plane is shared: a configuration that outlived its test, or matched other
//! namespaces, would refuse every other test's JobFlows. [`with_webhook_config`] gives each a
//! unique name, a `namespaceSelector` for its namespace alone, and deletes it on failure and
//! panic too.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use jobflow::api::JobFlow;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::flows::{FlowBuilder, StepBuilder};
use crate::{FakePod, POLL, wait_for};

/// The name of the one webhook inside each test configuration.
pub const WEBHOOK_NAME: &str = "validate.workflow.kube-zen.io";

/// The name of the test webhook configuration of `namespace` (unique per test namespace, so
/// tests running at once never share one).
pub fn config_name(namespace: &str) -> String {
    format!("jobflow-validating-{namespace}")
}

/// A configuration named `name` calling `https://<addr>/validate` for JobFlow CREATE and
/// UPDATE in `namespace` only, as the shipped one does (Fail, 5 s, no side effects), with
/// `ca_bundle` if given.
pub fn webhook_config(
    name: &str,
    namespace: &str,
    addr: SocketAddr,
    ca_bundle: Option<&[u8]>,
) -> anyhow::Result<ValidatingWebhookConfiguration> {
    let mut client_config = json!({"url": format!("https://{addr}/validate")});
    if let Some(bundle) = ca_bundle {
        client_config["caBundle"] = serde_json::to_value(k8s_openapi::ByteString(bundle.to_vec()))?;
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {crate::TEST_LABEL: "true"}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "clientConfig": client_config,
            "rules": [{
                "apiGroups": ["workflow.kube-zen.io"],
                "apiVersions": ["v1alpha1"],
                "resources": ["jobflows"],
                "operations": ["CREATE", "UPDATE"],
                "scope": "Namespaced",
            }],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": 5,
            "admissionReviewVersions": ["v1"],
        }],
    }))?)
}

/// Creates `config`, runs `body`, then deletes `config` whatever `body` did (a panic is
/// resumed after the deletion).
pub async fn with_webhook_config<F, Fut>(
    client: &Client,
    config: &ValidatingWebhookConfiguration,
    body: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let name = config.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), config)
        .await
        .with_context(|| format!("creating ValidatingWebhookConfiguration {name}"))?;
    let outcome = AssertUnwindSafe(body()).catch_unwind().await;
    let deleted = tokio::time::timeout(
        Duration::from_secs(10),
        api.delete(&name, &DeleteParams::default()),
    )
    .await;
    if !matches!(deleted, Ok(Ok(_))) {
        eprintln!("deleting ValidatingWebhookConfiguration {name} failed: {deleted:?}");
    }
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The agent flags for a webhook on `addr` (called by URL, so `127.0.0.1` is a SAN), whose
/// Secret lives in `namespace` and whose caBundle goes to `config`.
pub fn webhook_args(addr: SocketAddr, config: &str, namespace: &str) -> Vec<String> {
    let mut args = serving_args(addr, config);
    args.extend(["--lease-namespace".to_owned(), namespace.to_owned()]);
    args
}

/// [`webhook_args`] without `--lease-namespace`, for agents started with leader election
/// (which sets it): the Secret lives in the Lease's namespace.
pub fn serving_args(addr: SocketAddr, config: &str) -> Vec<String> {
    [
        "--webhook-addr",
        &addr.to_string(),
        "--webhook-extra-san",
        &addr.ip().to_string(),
        "--webhook-config",
        config,
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// The certificates of a PEM bundle, in order.
pub fn bundle_cas(pem: &[u8]) -> Vec<jobflow::certs::CertInfo> {
    jobflow::certs::bundle_cas(pem)
}

/// The caBundle of every webhook of the configuration `name`, as the API server holds it.
pub async fn config_bundles(
    configs: &Api<ValidatingWebhookConfiguration>,
    name: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let config = configs.get(name).await?;
    Ok(config
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|hook| {
            hook.client_config
                .ca_bundle
                .map(|b| b.0)
                .unwrap_or_default()
        })
        .collect())
}

/// Waits until the webhook refuses an invalid flow in `flows`' namespace with the exact
/// message: the API server has loaded the configuration and trusts the served certificate.
pub async fn wait_until_answering(flows: &Api<JobFlow>, timeout: Duration) -> anyhow::Result<()> {
    let flow = refused_flow("probe");
    let want = expected_denial(&flow)?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait_for("the webhook to answer", timeout, POLL, || async {
        Ok(match flows.create(&params, &flow).await {
            Err(kube::Error::Api(status)) if status.message == want => Some(()),
            _ => None,
        })
    })
    .await
}

/// A flow the webhook must refuse: a duplicate step and a dependency on a missing one.
pub fn refused_flow(name: &str) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &FakePod::succeed()).after(&["nope"]))
        .step(StepBuilder::new("a", &FakePod::succeed()))
        .build()
}

/// The API server's message when our webhook refuses `flow`.
pub fn expected_denial(flow: &JobFlow) -> anyhow::Result<String> {
    let errors = jobflow::validation::validate(flow)
        .err()
        .context("the flow meant to be refused passed validation")?;
    Ok(format!("{}{errors}", denied_prefix()))
}

/// The prefix of every refusal by our webhook, as the API server words it.
pub fn denied_prefix() -> String {
    format!("admission webhook \"{WEBHOOK_NAME}\" denied the request: ")
}

/// Creates `flow` until our webhook answers (the API server needs a moment to see a new
/// configuration or caBundle; until then the call fails closed with a TLS error), and returns
/// the API server's message: `Ok(None)` when admitted.
pub async fn create_through_webhook(
    flows: &Api<JobFlow>,
    flow: &JobFlow,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    let prefix = denied_prefix();
    let last = RefCell::new(String::new());
    let what = format!("the webhook to answer for flow {:?}", flow.metadata.name);
    wait_for(&what, timeout, POLL * 5, || {
        let last = &last;
        let prefix = &prefix;
        async move {
            match flows.create(&PostParams::default(), flow).await {
                Ok(_) => Ok(Some(None)),
                Err(kube::Error::Api(status)) if status.message.starts_with(prefix.as_str()) => {
                    Ok(Some(Some(status.message)))
                }
                Err(error) => {
                    // Not our answer yet (e.g. x509: unknown authority before the caBundle).
                    *last.borrow_mut() = format!("{error}");
                    Ok(None)
                }
            }
        }
    })
    .await
    .with_context(|| format!("last error: {}", last.borrow()))
}

/// The serial of the certificate the webhook on `addr` serves, after a TLS handshake that
/// verifies it against `ca_bundle` (PEM) for the IP of `addr`: the plugin's own check
/// (`kubectl jobflow cert-status`), called by the URL a test configuration registers.
pub async fn served_serial(addr: SocketAddr, ca_bundle: &[u8]) -> anyhow::Result<String> {
    kubectl_jobflow::certs::served::served_serial(&format!("https://{addr}/validate"), ca_bundle)
        .await
        .map_err(anyhow::Error::msg)
}
