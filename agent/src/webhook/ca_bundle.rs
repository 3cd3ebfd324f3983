//! The ValidatingWebhookConfiguration's caBundle, written with server-side apply by a field
//! manager that owns only that field of each webhook. What to do is decided on the watched
//! configuration: in sync, or a write that injects, updates (a rotation) or restores (someone
//! else changed the field: a hand edit, a GitOps revert).

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::API_TIMEOUT;
use crate::kube::call::{CallError, timed};

/// The field manager of the caBundle (and of nothing else).
pub const CA_BUNDLE_MANAGER: &str = "jobflow-agent-cabundle";

/// The Event reason when the agent puts back a caBundle someone else changed.
pub const RESTORED_REASON: &str = "CaBundleRestored";

/// Why the caBundle was not brought in line.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// Applying the caBundle failed.
    #[error("applying the caBundle of ValidatingWebhookConfiguration {name}")]
    ApplyCaBundle {
        /// Its name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
}

/// What the caBundle needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Needed {
    /// Every webhook has the bundle.
    InSync,
    /// No webhook had any caBundle: the first write.
    Inject,
    /// The agent's own earlier bundle is outdated (the Secret's CAs changed).
    Update,
    /// Someone else changed or emptied it.
    Restore {
        /// The webhooks whose caBundle differs.
        webhooks: Vec<String>,
        /// The field managers that own the differing caBundles (empty when it was removed).
        changed_by: Vec<String>,
    },
}

impl Needed {
    /// The metric reason of a write.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InSync => "none",
            Self::Inject => "injected",
            Self::Update => "updated",
            Self::Restore { .. } => "restored",
        }
    }
}

/// The caBundle of every webhook of `config` (empty ones included), in order.
pub fn bundles(config: &ValidatingWebhookConfiguration) -> Vec<Vec<u8>> {
    config
        .webhooks
        .iter()
        .flatten()
        .map(|hook| {
            hook.client_config
                .ca_bundle
                .as_ref()
                .map(|bundle| bundle.0.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// What `config` needs for every webhook to hold `bundle`. `was_in_sync` says this process saw
/// the bundle in place before, so an emptied caBundle is a removal, not a first injection.
pub fn needed(config: &ValidatingWebhookConfiguration, bundle: &[u8], was_in_sync: bool) -> Needed {
    let hooks: Vec<_> = config.webhooks.iter().flatten().collect();
    let differing: Vec<_> = hooks
        .iter()
        .filter(|hook| {
            hook.client_config
                .ca_bundle
                .as_ref()
                .is_none_or(|current| current.0 != bundle)
        })
        .collect();
    if differing.is_empty() {
        return Needed::InSync;
    }
    let mut changed_by: Vec<String> = differing
        .iter()
        .flat_map(|hook| owners(config, &hook.name))
        .filter(|manager| manager != CA_BUNDLE_MANAGER)
        .collect();
    changed_by.sort();
    changed_by.dedup();
    let all_empty = hooks.iter().all(|hook| {
        hook.client_config
            .ca_bundle
            .as_ref()
            .is_none_or(|b| b.0.is_empty())
    });
    if changed_by.is_empty() && !(all_empty && was_in_sync) {
        return if all_empty {
            Needed::Inject
        } else {
            Needed::Update
        };
    }
    Needed::Restore {
        webhooks: differing.iter().map(|hook| hook.name.clone()).collect(),
        changed_by,
    }
}

/// The field managers that own the caBundle of webhook `hook`.
fn owners(config: &ValidatingWebhookConfiguration, hook: &str) -> Vec<String> {
    config
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| owns_ca_bundle(&fields.0, hook))
        })
        .filter_map(|entry| entry.manager.clone())
        .collect()
}

/// Whether a managedFields `fieldsV1` tree holds `webhooks[name=hook].clientConfig.caBundle`.
fn owns_ca_bundle(fields: &Value, hook: &str) -> bool {
    let Some(webhooks) = fields.get("f:webhooks").and_then(Value::as_object) else {
        return false;
    };
    webhooks.iter().any(|(key, entry)| {
        key.strip_prefix("k:")
            .and_then(|k| serde_json::from_str::<Value>(k).ok())
            .is_some_and(|k| k.get("name").and_then(Value::as_str) == Some(hook))
            && entry
                .get("f:clientConfig")
                .and_then(|c| c.get("f:caBundle"))
                .is_some()
    })
}

/// Puts `bundle` in every webhook of `config` (server-side apply, forced: a hand edit or a
/// GitOps revert took the field; the agent takes it back).
pub async fn apply(
    api: &Api<ValidatingWebhookConfiguration>,
    config: &ValidatingWebhookConfiguration,
    bundle: &[u8],
) -> Result<(), CaBundleError> {
    let name = config.metadata.name.clone().unwrap_or_default();
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
    let params = PatchParams::apply(CA_BUNDLE_MANAGER).force();
    timed(API_TIMEOUT, api.patch(&name, &params, &Patch::Apply(patch)))
        .await
        .map(drop)
        .map_err(|source| CaBundleError::ApplyCaBundle { name, source })
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn config(bundles: &[&[u8]], owners: &[(&str, &str)]) -> ValidatingWebhookConfiguration {
        let hooks: Vec<Value> = bundles
            .iter()
            .enumerate()
            .map(|(i, bundle)| {
                let mut client = json!({"url": "https://127.0.0.1:9443/validate"});
                if !bundle.is_empty() {
                    client["caBundle"] = json!(ByteString(bundle.to_vec()));
                }
                json!({"name": format!("h{i}.kube-zen.io"), "clientConfig": client,
                       "sideEffects": "None", "admissionReviewVersions": ["v1"]})
            })
            .collect();
        let managed: Vec<Value> = owners
            .iter()
            .map(|(manager, hook)| {
                let key = format!("k:{{\"name\":\"{hook}\"}}");
                json!({"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1",
                       "fieldsV1": {"f:webhooks": {key: {".": {}, "f:clientConfig": {"f:caBundle": {}}}}}})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "cfg", "managedFields": managed},
            "webhooks": hooks,
        }))
        .unwrap()
    }

    #[test]
    fn injects_updates_and_restores() {
        let ours = CA_BUNDLE_MANAGER;
        assert_eq!(needed(&config(&[b""], &[]), b"new", false), Needed::Inject);
        assert_eq!(
            needed(&config(&[b"new", b"new"], &[]), b"new", true),
            Needed::InSync
        );
        assert_eq!(
            needed(
                &config(&[b"old"], &[(ours, "h0.kube-zen.io")]),
                b"new",
                true
            ),
            Needed::Update
        );
        assert_eq!(
            needed(
                &config(
                    &[b"new", b"bad"],
                    &[(ours, "h0.kube-zen.io"), ("kubectl-edit", "h1.kube-zen.io")]
                ),
                b"new",
                true
            ),
            Needed::Restore {
                webhooks: vec!["h1.kube-zen.io".to_owned()],
                changed_by: vec!["kubectl-edit".to_owned()],
            }
        );
        // Emptied after this process had it in sync: a removal.
        assert_eq!(
            needed(&config(&[b""], &[]), b"new", true),
            Needed::Restore {
                webhooks: vec!["h0.kube-zen.io".to_owned()],
                changed_by: vec![],
            }
        );
        assert_eq!(
            bundles(&config(&[b"a", b""], &[])),
            vec![b"a".to_vec(), Vec::new()]
        );
    }
}
