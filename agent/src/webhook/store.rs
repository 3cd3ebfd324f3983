//! Writing the certificate Secret: create when missing, else replace at the resourceVersion
//! read, so a write based on a stale read fails (a conflict: re-read and decide again).

use std::collections::BTreeMap;

use jobflow::certs::{Annotations, Written};
use jobflow::labels;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use super::API_TIMEOUT;
use crate::kube::call::{CallError, timed};

/// Why the Secret was not written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first (created it, or changed it since it was read).
    #[error("writing Secret {name}: it changed since it was read")]
    Conflict {
        /// The Secret's name.
        name: String,
    },
    /// The API call failed.
    #[error("writing Secret {name}")]
    WriteSecret {
        /// The Secret's name.
        name: String,
        /// What went wrong.
        source: CallError,
    },
}

/// Whether this agent made `secret` (only such a Secret is ever rewritten).
pub fn made_by_us(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(labels::MANAGED_BY))
        .is_some_and(|value| value == labels::MANAGED_BY_VALUE)
}

/// Writes `written` as the `kubernetes.io/tls` Secret `name`: created when `current` is `None`
/// (its annotations start from `base`, e.g. those of a deleted Secret being put back), else
/// replaced with `current`'s resourceVersion as the precondition. Annotation changes apply
/// on top; other annotations and labels stay.
pub async fn write(
    api: &Api<Secret>,
    name: &str,
    current: Option<&Secret>,
    base: Option<&Annotations>,
    written: Written,
) -> Result<Secret, StoreError> {
    let Written {
        data,
        annotations: changes,
    } = written;
    let merge = |mut annotations: Annotations| {
        for (key, value) in &changes {
            match value {
                Some(value) => annotations.insert(key.clone(), value.clone()),
                None => annotations.remove(key),
            };
        }
        (!annotations.is_empty()).then_some(annotations)
    };
    let params = PostParams {
        field_manager: Some(labels::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let result = match current {
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(BTreeMap::from([(
                        labels::MANAGED_BY.to_owned(),
                        labels::MANAGED_BY_VALUE.to_owned(),
                    )])),
                    annotations: merge(base.cloned().unwrap_or_default()),
                    ..ObjectMeta::default()
                },
                type_: Some("kubernetes.io/tls".to_owned()),
                data: Some(data),
                ..Secret::default()
            };
            timed(API_TIMEOUT, api.create(&params, &secret)).await
        }
        Some(current) => {
            let mut secret = current.clone();
            secret.metadata.managed_fields = None;
            secret.metadata.annotations =
                merge(secret.metadata.annotations.take().unwrap_or_default());
            secret.data = Some(data);
            secret.string_data = None;
            timed(API_TIMEOUT, api.replace(name, &params, &secret)).await
        }
    };
    result.map_err(|source| match source {
        CallError::Api(kube::Error::Api(status))
            if status.is_conflict() || status.is_already_exists() =>
        {
            StoreError::Conflict {
                name: name.to_owned(),
            }
        }
        source => StoreError::WriteSecret {
            name: name.to_owned(),
            source,
        },
    })
}
