//! What the leader does about the Secret: a pure function of (Secret data, names, now).

use jiff::{SignedDuration, Timestamp};

use super::inspect::{self, CertInfo, CheckError};
use super::{Names, RENEW_WHEN_LEFT_DIVISOR, SecretData, TLS_CRT, TLS_KEY};

/// Why something is made anew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// It is not there.
    Missing,
    /// Less than a third of its life is left.
    Due,
    /// It fails a check.
    Invalid(CheckError),
    /// Its CA is made anew, so it must be signed again.
    NewCa,
}

/// What to do about the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaStep {
    /// Keep it.
    Keep,
    /// Re-issue it from the same key (routine renewal: every leaf it signed keeps verifying).
    Renew,
    /// Make a new key and CA (nothing usable is there).
    Create(Why),
}

/// What to do about the serving leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafStep {
    /// Keep it.
    Keep,
    /// Make a new key and leaf, signed by the (kept, renewed or new) CA.
    Renew(Why),
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// About the CA.
    pub ca: CaStep,
    /// About the leaf.
    pub leaf: LeafStep,
    /// When kept, the earliest moment a renewal falls due: decide again by then.
    pub renew_at: Option<Timestamp>,
}

impl Decision {
    /// Whether nothing is to be written.
    pub fn is_keep(&self) -> bool {
        self.ca == CaStep::Keep && self.leaf == LeafStep::Keep
    }
}

/// Decides what to write: everything when the Secret or its CA is missing or unusable; the CA
/// re-issued from its key when a third of its life is left; the leaf when it is missing, fails
/// a check (key, chain, SANs exactly as `names` wants, validity, outliving the CA) or has a
/// third of its life left.
pub fn decide(data: Option<&SecretData>, names: &Names, now: Timestamp) -> Decision {
    let empty = SecretData::new();
    let data = data.unwrap_or(&empty);
    let (ca, _key) = match inspect::check_ca(data, now) {
        Ok(ca) => ca,
        Err(error) => {
            let why = match error {
                CheckError::ReadEntry { .. } => Why::Missing,
                other => Why::Invalid(other),
            };
            return Decision {
                ca: CaStep::Create(why),
                leaf: LeafStep::Renew(Why::NewCa),
                renew_at: None,
            };
        }
    };
    let ca_renew_at = renew_at(&ca);
    let ca_step = if now >= ca_renew_at {
        CaStep::Renew
    } else {
        CaStep::Keep
    };
    let (leaf_step, leaf_renew_at) = match check_leaf(data, &ca, names, now) {
        Err(CheckError::ReadEntry { .. }) => (LeafStep::Renew(Why::Missing), None),
        Err(error) => (LeafStep::Renew(Why::Invalid(error)), None),
        Ok(leaf) => {
            let at = renew_at(&leaf);
            if now >= at {
                (LeafStep::Renew(Why::Due), None)
            } else {
                (LeafStep::Keep, Some(at))
            }
        }
    };
    let renew_at = match (&ca_step, &leaf_step) {
        (CaStep::Keep, LeafStep::Keep) => leaf_renew_at.map(|leaf| leaf.min(ca_renew_at)),
        _ => None,
    };
    Decision {
        ca: ca_step,
        leaf: leaf_step,
        renew_at,
    }
}

/// When a third of `cert`'s life is left.
pub(super) fn renew_at(cert: &CertInfo) -> Timestamp {
    let life = cert.not_after.duration_since(cert.not_before);
    let left = life / i32::try_from(RENEW_WHEN_LEFT_DIVISOR).unwrap_or(3);
    cert.not_after
        .checked_sub(left)
        .unwrap_or(cert.not_before)
        .max(cert.not_before)
}

/// The leaf, checked against the CA and the names the webhook is called by.
fn check_leaf(
    data: &SecretData,
    ca: &CertInfo,
    names: &Names,
    now: Timestamp,
) -> Result<CertInfo, CheckError> {
    let leaf = inspect::certificates(data, TLS_CRT)?.swap_remove(0);
    let key = inspect::private_key(data, TLS_KEY)?;
    inspect::check_key(&key, &leaf, TLS_KEY)?;
    if !leaf.signed_by(ca) {
        return Err(CheckError::ChainLeaf);
    }
    let want = names.sans();
    if leaf.sans != want {
        return Err(inspect::mismatch(&want, &leaf.sans));
    }
    leaf.check_validity(TLS_CRT, now)?;
    if leaf.not_after > ca.not_after {
        return Err(CheckError::OutliveCa {
            leaf: leaf.not_after,
            ca: ca.not_after,
        });
    }
    Ok(leaf)
}

/// `duration` as a signed duration (saturating: ours are days, never near the limit).
pub(super) fn signed(duration: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
