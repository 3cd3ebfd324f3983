//! zen-flow's benchmarks against the local control plane (`tests/cluster/up.sh`), built on the
//! integration tests' helpers (`jobflow-tests`), which never depend on this crate:
//!
//! - `jobflow-load` (`cargo run -p jobflow-bench --bin jobflow-load`): many JobFlows at once,
//!   measured from the outside; see `docs/load.md`.
//! - `jobflow-webhook-bench`: admission latency of the agent's webhook; see `docs/benchmarks.md`.
//!
//! The load harness's modules:
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
