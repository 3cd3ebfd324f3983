//! Helpers for the integration tests against the local control plane.
