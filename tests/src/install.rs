//! zen-flow installed the way users install it: `deploy/install.yaml`, through the test overlay
//! `tests/cluster/install` (which only adds what lets its pods onto the real node
//! `zen-flow-real` that `tests/cluster/up.sh` starts), from the images
//! `tests/cluster/import-images.sh` imports there.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::JobFlow;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::flows::{FlowBuilder, StepBuilder};
use crate::plugin::CommandRun;
use crate::wait::{POLL, wait_for};
use crate::workspace_root;

/// The agent's namespace in `deploy/install.yaml`.
pub const AGENT_NAMESPACE: &str = "zen-flow-system";
/// The agent's Deployment, and the Lease its replicas elect a leader with.
pub const AGENT: &str = "jobflow-agent";
/// The label selector of the agent's pods.
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=jobflow-agent";
pub use crate::flows::{BUSYBOX, REAL_NODE, REAL_NODE_TAINT};
/// How long the agent's rollout may take on the real node (image already imported).
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(180);

/// The folder of the control plane's binaries (kubectl among them), as `tests/cluster/paths.sh`
/// computes it: that script is the one home of the rule.
pub fn cluster_bin() -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("source tests/cluster/versions.env && source tests/cluster/paths.sh && printf %s \"$CLUSTER_BIN\"")
        .current_dir(workspace_root())
        .output()
        .context("running bash to read tests/cluster/paths.sh")?;
    anyhow::ensure!(output.status.success(), "tests/cluster/paths.sh failed");
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// Runs the control plane's `kubectl --kubeconfig <the tests' kubeconfig> args...` from the
/// workspace root.
pub async fn kubectl(args: &[&str]) -> anyhow::Result<CommandRun> {
    let binary = cluster_bin()?.join("kubectl");
    let output = tokio::process::Command::new(&binary)
        .arg("--kubeconfig")
        .arg(crate::kubeconfig_path())
        .args(args)
        .current_dir(workspace_root())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(CommandRun::new(&binary, &output))
}

/// Applies the install (server-side, as the README says) and waits until the agent's
/// Deployment is Available with every replica updated and ready, a leader holds the Lease, and
/// the API server reaches the webhook through its Service. Idempotent: applying it again
/// changes nothing.
pub async fn install(client: &Client) -> anyhow::Result<()> {
    kubectl(&["apply", "--server-side", "-k", "tests/cluster/install"])
        .await?
        .expect_code(0)?;
    wait_until_available(client).await?;
    wait_for_leader(client).await?;
    wait_for_admission(client).await?;
    Ok(())
}

/// Waits until a JobFlow create passes the webhook: a server-side dry run of a valid flow in
/// `default`, which goes through admission the way a user's `kubectl apply` does. Ready pods are
/// not enough: the webhook Service has no endpoints until the EndpointSlice controller and
/// kube-proxy have caught up, and until then the API server's call is refused (`connect:
/// connection refused`) and, with `failurePolicy: Fail`, so is the create.
pub async fn wait_for_admission(client: &Client) -> anyhow::Result<()> {
    let flows: Api<JobFlow> = Api::namespaced(client.clone(), "default");
    let probe = FlowBuilder::new("admission-probe")
        .step(StepBuilder::real("main", "true"))
        .build();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait_for(
        "the API server to reach the webhook through its Service",
        Duration::from_secs(60),
        POLL * 5,
        || async {
            match flows.create(&dry_run, &probe).await {
                Ok(_) => Ok(Some(())),
                // Only the webhook being unreachable is worth waiting out.
                Err(kube::Error::Api(status))
                    if status.message.contains("failed calling webhook") =>
                {
                    Ok(None)
                }
                Err(error) => Err(error).context("a dry-run create of a valid JobFlow"),
            }
        },
    )
    .await
}

/// Waits until the agent's Deployment has all its replicas updated, ready and available.
pub async fn wait_until_available(client: &Client) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let waited = wait_for(
        "the agent's Deployment to be Available",
        ROLLOUT_TIMEOUT,
        POLL * 5,
        || async {
            let deployment = deployments.get(AGENT).await?;
            let want = deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1);
            let status = deployment.status.unwrap_or_default();
            let current = deployment.metadata.generation == status.observed_generation;
            Ok((current
                && status.updated_replicas == Some(want)
                && status.ready_replicas == Some(want)
                && status.available_replicas == Some(want)
                && status.replicas == Some(want))
            .then_some(()))
        },
    )
    .await;
    if waited.is_err() {
        let pods = kubectl(&["-n", AGENT_NAMESPACE, "get", "pods,events", "-o", "wide"]).await?;
        eprintln!("{}{}", pods.stdout, pods.stderr);
    }
    waited
}

/// The agent's pods.
pub async fn agent_pods(client: &Client) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    Ok(pods
        .list(&ListParams::default().labels(AGENT_SELECTOR))
        .await?
        .items)
}

/// The agent pod holding the Lease (its identity is `<pod name>-<random>`), if one does.
pub async fn leader(client: &Client) -> anyhow::Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let Some(holder) = leases
        .get_opt(AGENT)
        .await?
        .and_then(|lease| lease.spec?.holder_identity)
    else {
        return Ok(None);
    };
    Ok(agent_pods(client)
        .await?
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .find(|pod| {
            holder
                .strip_prefix(pod.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        }))
}

/// Waits until one of the agent's pods holds the Lease, and returns its name.
pub async fn wait_for_leader(client: &Client) -> anyhow::Result<String> {
    wait_for(
        "an agent pod to hold the Lease",
        Duration::from_secs(60),
        POLL * 5,
        || leader(client),
    )
    .await
}
