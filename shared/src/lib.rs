//! zen-flow's core: the `JobFlow` API, validation, the DAG and the pure planner.
//!
//! Nothing here talks to the network; the agent and the kubectl plugin do IO around it.

pub mod api;
pub mod api_doc;
pub mod certs;
pub mod crd;
pub mod dag;
pub mod labels;
pub mod limits;
pub mod planner;
pub mod references;
pub mod status_diff;
pub mod unmodeled;
pub mod validation;
pub mod when;
