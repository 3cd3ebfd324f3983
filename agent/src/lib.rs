//! `jobflow-agent`: the in-cluster controller that runs `JobFlows`.
//!
//! Where each thing is decided:
//! - [`kube`]: the Kubernetes layer every controller stands on. `kube::call` runs every API
//!   call (timed, counted, writes only while this replica leads: `kube::leadership`);
//!   `kube::caches` holds the watch caches of slim objects (`kube::slim`, `kube::strip`);
//!   `kube::index` is the ONE per-flow entry the watches feed (names of a flow's Jobs and pods,
//!   its templates, compiled spec, refusals, failures and read-your-writes overlay);
//!   `kube::owner` says which flow an object belongs to; `kube::events` publishes Events.
//! - [`flows`]: the JobFlow controller. `flows::triggers` turns cache changes into flows to
//!   reconcile; `flows::reconcile` is lock → view → plan → apply: `flows::key_locks`,
//!   `flows::view` (the only place that decides what a flow sees), the pure
//!   `jobflow::planner`, `flows::apply` (executes a plan, nothing else).
//! - [`leader`]: the Lease election that moves `kube::leadership`.
//! - [`webhook`]: the admission webhook and its self-managed certificates.
//! - [`metrics`] and `admin`: the series and the admin port (`/metrics`, `/healthz`, `/readyz`).
//! - `run`: the process that wires them; [`args`], [`telemetry`], [`error`] its shell.

pub(crate) mod admin;
pub mod args;
pub mod error;
pub(crate) mod flows;
pub(crate) mod kube;
pub(crate) mod leader;
pub(crate) mod metrics;
pub mod telemetry;
#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod testing;
pub(crate) mod webhook;

mod run;

pub use run::run;
