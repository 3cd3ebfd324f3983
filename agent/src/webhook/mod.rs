//! The admission webhook: TLS server, admission decision and self-managed certificates.
//!
//! [`admit`] decides (pure), [`access`] checks the creator may create what the agent would
//! (no confused deputy), [`server`] serves `POST /validate` over TLS with what
//! [`resolver`] holds, [`sync`] watches the Secret and the configuration (every replica), sets
//! [`readiness`] and, in self mode, lets the leader make, renew and rotate certificates
//! ([`store`]) and keep the caBundle in line ([`ca_bundle`]). The
//! certificate rules themselves are `jobflow::certs`.

pub mod access;
pub mod admit;
pub mod ca_bundle;
pub mod readiness;
pub mod resolver;
pub mod server;
pub mod store;
pub mod sync;

use std::time::Duration;

use clap::ValueEnum;

/// The longest one webhook-related API call may take (see [`crate::kube::call::timed`]).
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Who makes the serving certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CertMode {
    /// The agent: the leader makes, renews and stores them and writes the caBundle.
    #[value(name = "self")]
    SelfManaged,
    /// Someone else (e.g. cert-manager): serve and watch the Secret, never write.
    External,
}
