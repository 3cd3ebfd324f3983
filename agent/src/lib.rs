//! `jobflow-agent`: the in-cluster controller that runs `JobFlows`.
//!
//! Watch caches ([`caches`]) feed a pure planner (`jobflow::planner`) through [`observe`]; the
//! [`controller`] carries each plan out ([`apply`]). [`leader`] decides which replica acts,
//! [`admin`] serves metrics and probes, [`webhook`] the admission webhook and its certificates.

pub mod admin;
pub mod applied;
pub mod apply;
pub mod args;
pub mod caches;
pub mod confirm;
pub mod context;
pub mod controller;
pub mod error;
pub mod events;
pub mod flow_state;
pub mod key_locks;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod strip;
pub mod telemetry;
pub mod triggers;
pub mod webhook;
pub mod written;

mod run;

pub use run::run;
