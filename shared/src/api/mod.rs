//! The `workflow.kube-zen.io/v1alpha1` API.

pub mod conditions;
pub mod reasons;
pub mod schema;
mod spec;
mod status;

pub use spec::*;
pub use status::*;

/// The API group.
pub const GROUP: &str = "workflow.kube-zen.io";
