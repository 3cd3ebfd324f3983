//! Which workflow engine a load run drives: zen-flow's agent, or Argo Workflows' controller for
//! the side-by-side benchmark (bench/compare.sh).

use std::sync::{Arc, Mutex};

use clap::ValueEnum;
use kube::Client;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::argo;
use crate::observe::{Seen, Watches, zen_flow_watches};

/// The engine under test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// `jobflow-agent`, started by the harness; flows are JobFlows, steps are Jobs.
    #[default]
    ZenFlow,
    /// Argo's `workflow-controller`, started by the caller (`--controller-pid`); flows are `dag`
    /// Workflows, steps are the pods Argo creates.
    Argo,
}

impl Engine {
    /// Starts watching this engine's step workloads and flows in every namespace of
    /// `namespaces` (zen-flow: the agent's Jobs and the JobFlows; Argo: the Workflows' pods
    /// and the Workflows), once every watch has listed.
    pub async fn watch(self, client: &Client, namespaces: &[String]) -> anyhow::Result<Watches> {
        let start = |namespace: &str, seen: &Arc<Mutex<Seen>>| -> Vec<JoinHandle<()>> {
            match self {
                Self::ZenFlow => zen_flow_watches(client, namespace, seen).into(),
                Self::Argo => argo::watches(client, namespace, seen).into(),
            }
        };
        Watches::start(namespaces, start).await
    }
}
