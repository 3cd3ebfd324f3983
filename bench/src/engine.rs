//! Which workflow engine a load run drives: zen-flow's agent, or Argo Workflows' controller for
//! the side-by-side benchmark (bench/compare.sh).

use clap::ValueEnum;
use serde::Serialize;

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
