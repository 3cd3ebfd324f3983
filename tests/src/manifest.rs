//! The YAML manifests under `deploy/`, read as the tests install them: one JSON object per
//! document, and the API each object's kind is served by.

use std::path::Path;

use anyhow::Context as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::Value;

/// Every document of the YAML file at `path`, in order.
pub fn objects(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).with_context(|| format!("parsing {}", path.display()))
        })
        .collect()
}

/// The API of `object`'s `apiVersion` and `kind`: in its `metadata.namespace` when it has one,
/// cluster-wide otherwise.
pub fn api_for(client: &Client, object: &Value) -> Api<DynamicObject> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}
