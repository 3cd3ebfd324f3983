//! The step graph of a flow, built once per spec on petgraph.
//!
//! Steps are indexed in declaration order: `spec.steps` first, then `spec.finally`.
//! (Interface fixed; implementation in progress.)
