//! The admission webhook's certificates: what to make, what a Secret holds, what to do about it.
//!
//! Pure logic, no IO: [`issue`] makes a CA and a serving leaf (rcgen, ECDSA P-256), [`inspect`]
//! reads and checks what a `kubernetes.io/tls` Secret holds (x509-parser), and [`decide`] turns
//! (Secret, caBundles seen, names, now) into what the leader should write; [`rotation`] is the
//! request protocol and the state of a CA key change, [`trust`] what the API server trusts. The clock is always an argument.

mod decide;
mod inspect;
mod issue;
mod names;
mod rotation;
mod trust;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;

pub use decide::{CaStep, Decision, LeafStep, Seen, Why, decide};
pub use inspect::{CertInfo, CheckError, Served, check_serving, not_after};
pub use issue::{IssueError, Written, bootstrap, carry_out};
pub use names::{Names, San};
pub use rotation::{
    Annotations, CA_NEXT, CA_NEXT_KEY, CA_NEXT_TRUSTED, ROTATE, ROTATED, Request, Staged,
    parse_request, pending, staged,
};
pub use trust::{bundle_cas, chains_in_all, trusted_by_all};

/// The Secret's data, as the API returns it.
pub type SecretData = BTreeMap<String, ByteString>;

/// The serving leaf's certificate chain (leaf first), PEM.
pub const TLS_CRT: &str = "tls.crt";
/// The serving leaf's private key, PKCS #8 PEM.
pub const TLS_KEY: &str = "tls.key";
/// The trusted CAs, PEM: the signing CA first, older still-valid CAs after it (the caBundle).
pub const CA_CRT: &str = "ca.crt";
/// The signing CA's private key, PKCS #8 PEM.
pub const CA_KEY: &str = "ca.key";

const DAY: u64 = 24 * 60 * 60;
/// How long a new CA is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(365 * DAY);
/// How long a new serving leaf is valid (never past its CA's end).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(30 * DAY);
/// How far NotBefore is set back from now, against clock skew between replicas and API servers.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// How long a staged CA must have been in every webhook's caBundle before it signs: time for
/// every API server to load the configuration it watches.
pub const TRUST_SETTLE: Duration = Duration::from_secs(10);
/// A certificate is renewed when less than its lifetime divided by this is left.
pub const RENEW_WHEN_LEFT_DIVISOR: u32 = 3;
