//! `jobflow-agent`: the in-cluster controller that runs `JobFlows`.
//!
//! Watch caches ([`caches`]) feed a pure planner (`jobflow::planner`) through [`observe`]; the
//! [`controller`] carries each plan out ([`apply`]). [`leader`] decides which replica acts,
//! [`admin`] serves metrics and probes, [`webhook`] the admission webhook and its certificates.

pub(crate) mod admin;
pub(crate) mod applied;
pub(crate) mod apply;
pub mod args;
pub(crate) mod by_flow;
pub(crate) mod cached;
pub(crate) mod caches;
pub(crate) mod confirm;
pub(crate) mod context;
pub(crate) mod controller;
pub mod error;
pub(crate) mod events;
pub(crate) mod flow_state;
pub(crate) mod key_locks;
pub(crate) mod leader;
pub(crate) mod metrics;
pub(crate) mod observe;
pub(crate) mod reconcile;
pub(crate) mod strip;
pub mod telemetry;
pub mod templates;
pub(crate) mod triggers;
pub(crate) mod webhook;
pub(crate) mod written;

mod run;

pub use run::run;
