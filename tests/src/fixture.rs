//! One webhook test's prologue: a fresh namespace with the CRD installed, a free port for the
//! agent's webhook, the namespace's ValidatingWebhookConfiguration (created for the test and
//! always deleted) and an agent serving it.
//!
//! [`run_with_webhook`] is the whole of it; [`WebhookSetup`] is its first half, for the tests
//! that prepare something (a Secret, a Lease, a caBundle) before the configuration exists.

use std::future::Future;
use std::net::SocketAddr;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;

use crate::agent::{AgentBuilder, AgentProcess, free_port};
use crate::webhook::{
    config_name, serving_args, webhook_args, webhook_config, with_webhook_config,
};
use crate::{TestNamespace, install_crd, run_in_namespace};

/// What a webhook test works with: its namespace (the CRD installed), a client, a free address
/// for the webhook and the name of the namespace's configuration.
#[derive(Clone)]
pub struct WebhookSetup {
    /// The test's namespace.
    pub ns: TestNamespace,
    /// The namespace's client.
    pub client: Client,
    /// A loopback address nobody listens on yet, for the agent's webhook.
    pub addr: SocketAddr,
    /// The name of the namespace's configuration ([`config_name`]).
    pub name: String,
}

impl WebhookSetup {
    /// Installs the CRD, picks a free port and names the configuration of `ns`.
    pub async fn new(ns: TestNamespace) -> anyhow::Result<Self> {
        let client = ns.client();
        install_crd(&client).await?;
        let addr = free_port()?;
        let name = config_name(ns.name());
        Ok(Self {
            ns,
            client,
            addr,
            name,
        })
    }

    /// The configuration calling the webhook on [`addr`](Self::addr) for this namespace only
    /// ([`webhook_config`]), with `ca_bundle` if given.
    pub fn config(
        &self,
        ca_bundle: Option<&[u8]>,
    ) -> anyhow::Result<ValidatingWebhookConfiguration> {
        webhook_config(&self.name, self.ns.name(), self.addr, ca_bundle)
    }

    /// An agent watching the namespace and serving the webhook on [`addr`](Self::addr), its
    /// Secret in the namespace ([`webhook_args`]).
    pub fn agent(&self) -> AgentBuilder {
        AgentProcess::builder(self.ns.name()).args_from(webhook_args(
            self.addr,
            &self.name,
            self.ns.name(),
        ))
    }

    /// An agent watching the namespace and serving the webhook on `addr` under leader election:
    /// the Lease `lease` in the namespace, held as `identity` ([`serving_args`]).
    pub fn elected(&self, addr: SocketAddr, lease: &str, identity: &str) -> AgentBuilder {
        AgentProcess::builder(self.ns.name())
            .args_from(serving_args(addr, &self.name))
            .leader_election(lease, self.ns.name(), identity)
    }
}

/// Runs `body` in a fresh namespace ([`run_in_namespace`]) with a [`WebhookSetup`], its
/// configuration (no caBundle: the agent writes it) created for the body's run
/// ([`with_webhook_config`]), and the agent `agent` builds started (e.g.
/// [`WebhookSetup::agent`]). The agent is killed when `body` is done, then the configuration
/// is deleted.
pub async fn run_with_webhook<A, F, Fut>(test: &str, agent: A, body: F) -> anyhow::Result<()>
where
    A: FnOnce(&WebhookSetup) -> AgentBuilder,
    F: FnOnce(WebhookSetup, AgentProcess) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_in_namespace(test, |ns| async move {
        let setup = WebhookSetup::new(ns).await?;
        let config = setup.config(None)?;
        let client = setup.client.clone();
        with_webhook_config(&client, &config, || async move {
            let agent = agent(&setup).start().await?;
            body(setup, agent).await
        })
        .await
    })
    .await
}
