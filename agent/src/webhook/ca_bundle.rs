//! The ValidatingWebhookConfiguration's caBundle, written with server-side apply by a field
//! manager that owns only that field of each webhook.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::call;
use crate::leader::CallError;

/// The field manager of the caBundle (and of nothing else).
pub const CA_BUNDLE_MANAGER: &str = "jobflow-agent-cabundle";

/// Why the caBundle was not brought in line.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// Reading the configuration failed.
    #[error("reading ValidatingWebhookConfiguration {name}")]
    ReadConfig {
        /// Its name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
    /// Applying the caBundle failed.
    #[error("applying the caBundle of ValidatingWebhookConfiguration {name}")]
    ApplyCaBundle {
        /// Its name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
}

/// What a sync did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    /// Every webhook already had the bundle.
    InSync,
    /// The bundle was written.
    Written,
    /// There is no such configuration (nothing to write).
    Missing,
}

/// The webhooks (by name) whose caBundle is not `bundle`.
pub fn out_of_sync<'a>(config: &'a ValidatingWebhookConfiguration, bundle: &[u8]) -> Vec<&'a str> {
    config
        .webhooks
        .iter()
        .flatten()
        .filter(|hook| {
            hook.client_config
                .ca_bundle
                .as_ref()
                .is_none_or(|current| current.0 != bundle)
        })
        .map(|hook| hook.name.as_str())
        .collect()
}

/// Puts `bundle` in every webhook of the configuration `name` that lacks it.
pub async fn sync(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: &[u8],
) -> Result<Synced, CaBundleError> {
    let config = call(api.get_opt(name))
        .await
        .map_err(|source| CaBundleError::ReadConfig {
            name: name.to_owned(),
            source,
        })?;
    let Some(config) = config else {
        return Ok(Synced::Missing);
    };
    if out_of_sync(&config, bundle).is_empty() {
        return Ok(Synced::InSync);
    }
    // Every webhook, so this manager owns the caBundle of each and nothing else.
    let webhooks: Vec<_> = config
        .webhooks
        .iter()
        .flatten()
        .map(|hook| {
            json!({
                "name": hook.name,
                "clientConfig": {"caBundle": ByteString(bundle.to_vec())},
            })
        })
        .collect();
    let patch = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks,
    });
    // Forced: a hand edit or a GitOps revert took the field; the agent takes it back.
    let params = PatchParams::apply(CA_BUNDLE_MANAGER).force();
    call(api.patch(name, &params, &Patch::Apply(patch)))
        .await
        .map_err(|source| CaBundleError::ApplyCaBundle {
            name: name.to_owned(),
            source,
        })?;
    Ok(Synced::Written)
}
