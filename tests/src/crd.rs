//! Installing the project's CRDs into the test control plane.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt as _};

use crate::{FIELD_MANAGER, workspace_root};

/// How long a CRD may take to be Established (it is usually well under a second).
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies every CRD in `deploy/crds/*.yaml` (server-side apply, field manager
/// [`FIELD_MANAGER`], forced) and waits until each is Established. Returns the CRDs' names.
///
/// Safe to call from many tests at once: applying the same CRD again changes nothing.
pub async fn install_crd(client: &Client) -> anyhow::Result<Vec<String>> {
    let dir = workspace_root().join("deploy/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    if files.is_empty() {
        anyhow::bail!(
            "no CRD in {}: generate it with `cargo run -p jobflow --bin crdgen`",
            dir.display()
        );
    }

    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in files {
        for object in crate::manifest::objects(&file)? {
            let crd: CustomResourceDefinition = serde_json::from_value(object)
                .with_context(|| format!("parsing a CRD in {}", file.display()))?;
            let name = crd.name_any();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }
    for name in &names {
        tokio::time::timeout(
            ESTABLISHED_TIMEOUT,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| {
            format!(
                "timed out after {ESTABLISHED_TIMEOUT:?} waiting for CRD {name} to be Established"
            )
        })?
        .with_context(|| format!("watching CRD {name}"))?;
    }
    Ok(names)
}
