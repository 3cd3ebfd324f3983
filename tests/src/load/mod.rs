//! The agent's load harness (`cargo run -p jobflow-tests --bin jobflow-load`): many JobFlows at
//! once on the local control plane, measured from the outside. See `docs/load.md`.
//!
//! - [`shape`]: the DAG every load flow has.
//! - [`process`]: the agent binary under test, as a child process.
//! - [`observe`]: the harness's own watch on Jobs and JobFlows, and the agent's memory.
//! - [`stats`]: percentiles, and Prometheus counter and histogram summaries.
//! - [`report`]: the figures, as a table or JSON.
//! - [`scenario`]: the named scenarios (`--scenario 10x5|100x10|1000x20|dag50|burst100|sustained`).
//! - [`engine`]: zen-flow or Argo Workflows (`--engine`).
//! - [`argo`]: the load flows as Argo `dag` Workflows, and the watches on Argo's pods and Workflows.

pub mod argo;
pub mod engine;
pub mod observe;
pub mod process;
pub mod report;
pub mod scenario;
pub mod shape;
pub mod stats;
