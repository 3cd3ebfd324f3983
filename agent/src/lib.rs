//! `jobflow-agent`: the in-cluster controller that runs `JobFlows`.

pub mod args;
pub mod backoff;
pub mod caches;
pub mod compiled;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod strip;
pub mod telemetry;
pub mod triggers;
