//! `jobflow-agent`: the in-cluster controller that runs `JobFlows`.

pub mod args;
pub mod backoff;
pub mod error;
pub mod metrics;
pub mod telemetry;
