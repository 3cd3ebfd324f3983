//! Helpers for the integration tests against the local control plane started by
//! `tests/cluster/up.sh` (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok).
//!
//! - [`client`] connects to it, and fails with instructions when it is not running: cluster tests
//!   never skip silently.
//! - [`run_in_namespace`] runs a test body in a fresh namespace, dumps the namespace's objects
//!   when the body fails or panics, and deletes the namespace.
//! - [`wait_for`] and [`wait_for_object`] poll until something holds, with timeouts that say what
//!   was awaited.
//! - [`install_crd`] applies `deploy/crds/*.yaml` and waits until the CRDs are Established.
//! - [`FakePod`] sets the annotations that tell kwok how a pod "runs" (see
//!   `tests/cluster/kwok-stages.yaml`), and [`fake_job`] builds a Job around it.
//! - [`flows`] builds JobFlows and reads their status; [`jobs`] reads Jobs and their pods.
//! - [`manifest`] reads `deploy/`'s YAML manifests and finds the API of each object.
//! - [`plugin`] runs the built `kubectl-jobflow` binary against the control plane.
//! - [`fixture`]: a webhook test's namespace, configuration and serving agent in one call.
//! - [`webhook`] registers one test's admission webhook by URL, scoped to its namespace;
//!   [`admission_load`] sends it about 20 admission requests a second and counts every answer.

pub mod admission_load;
pub mod agent;
mod crd;
mod fake;
pub mod fixture;
pub mod flows;
pub mod install;
pub mod jobs;
pub mod manifest;
mod namespace;
pub mod plugin;
mod wait;
pub mod webhook;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use crd::install_crd;
pub use fake::{
    ANNOTATION_DURATION, ANNOTATION_EXIT_CODE, ANNOTATION_FAIL, ANNOTATION_MESSAGE,
    ANNOTATION_OUTPUT, FakePod, fake_job, job_condition,
};
pub use namespace::{KEEP_FAILED_ENV, TEST_LABEL, TestNamespace, run_in_namespace};
pub use wait::{POLL, wait_for, wait_for_deletion, wait_for_object};

/// The field manager of every server-side apply made by the tests.
pub const FIELD_MANAGER: &str = "jobflow-tests";

/// Environment variable naming the kubeconfig of the control plane to test against.
pub const KUBECONFIG_ENV: &str = "ZEN_FLOW_KUBECONFIG";

/// The workspace root (the folder holding `deploy/` and `tests/`).
pub fn workspace_root() -> PathBuf {
    // This crate lives in `<root>/tests`.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        Path::to_path_buf,
    )
}

/// The kubeconfig the tests use: `$ZEN_FLOW_KUBECONFIG`, else the one `tests/cluster/up.sh`
/// writes (`tests/cluster/.state/kubeconfig`).
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os(KUBECONFIG_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(
            || workspace_root().join("tests/cluster/.state/kubeconfig"),
            PathBuf::from,
        )
}

/// A client for the local control plane, checked to answer.
///
/// Fails (never skips) when the control plane is not running, saying how to start it. Create one
/// per test: a client belongs to the tokio runtime it was created on, and each `#[tokio::test]`
/// has its own.
pub async fn client() -> anyhow::Result<Client> {
    let path = kubeconfig_path();
    if !path.exists() {
        anyhow::bail!(
            "no control plane to test against: {} does not exist.\n\
             Start one with `bash tests/cluster/build.sh && bash tests/cluster/up.sh` (or run \
             everything with `bash tests/cluster/test.sh`), or point {KUBECONFIG_ENV} at another \
             cluster's kubeconfig.",
            path.display()
        );
    }
    client_for(&path).await
}

/// A client for the control plane of the kubeconfig at `path`, checked to answer.
pub async fn client_for(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;
    client.apiserver_version().await.with_context(|| {
        format!(
            "the control plane of {} does not answer; is it up? (`bash tests/cluster/up.sh`)",
            path.display()
        )
    })?;
    Ok(client)
}

/// A client for the local control plane acting as `user` in `groups` (the tests' admin
/// credentials may impersonate anyone); not checked to answer.
pub async fn impersonating(user: &str, groups: &[String]) -> anyhow::Result<Client> {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups.to_vec());
    Ok(Client::try_from(config)?)
}
