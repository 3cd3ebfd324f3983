//! `cert-status` and `cert-rotate`: the admission webhook's certificates, as the agent keeps
//! them in its Secret and the webhook configuration's caBundle.
//!
//! [`report`] computes what the status shows (pure), [`status`] reads the cluster and prints
//! it, [`rotate`] asks the leader for a rotation through the Secret's annotation and waits for
//! it to be carried out.

pub mod report;
pub mod rotate;
pub mod served;
pub mod status;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::cli::CertTarget;
use crate::connect::Cluster;
use crate::error::Error;

/// What the cluster holds about the webhook's certificates.
pub struct Held {
    /// The Secret.
    pub secret: Option<Secret>,
    /// The webhook configuration.
    pub config: Option<ValidatingWebhookConfiguration>,
    /// The agent's Lease.
    pub lease: Option<Lease>,
}

/// Reads the Secret, the configuration and the Lease named by `target`.
pub async fn read(cluster: &Cluster, target: &CertTarget) -> Result<Held, Error> {
    let ns = &target.agent_namespace;
    let api = |action: String| move |source| Error::Api { action, source };
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let secret = secrets
        .get_opt(&target.secret)
        .await
        .map_err(api(format!("get secret {ns}/{}", target.secret)))?;
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let config = configs
        .get_opt(&target.webhook_config)
        .await
        .map_err(api(format!(
            "get validatingwebhookconfiguration {}",
            target.webhook_config
        )))?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), ns);
    let lease = leases
        .get_opt(&target.lease)
        .await
        .map_err(api(format!("get lease {ns}/{}", target.lease)))?;
    Ok(Held {
        secret,
        config,
        lease,
    })
}
