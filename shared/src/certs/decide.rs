//! What the leader does about the Secret: a pure function of (Secret, caBundles seen, names,
//! now).

use jiff::{SignedDuration, Timestamp};

use super::inspect::{self, CertInfo, CheckError};
use super::rotation::{self, Annotations, Request, Staged};
use super::trust;
use super::{CA_CRT, Names, RENEW_WHEN_LEFT_DIVISOR, SecretData, TLS_CRT, TLS_KEY, TRUST_SETTLE};

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
    /// A rotation request asks for it.
    Requested,
}

/// What to do about the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaStep {
    /// Keep it.
    Keep,
    /// Re-issue it from the same key (routine renewal: every leaf it signed keeps verifying).
    Renew,
    /// Make a new key and CA and start the bundle afresh (nothing usable is there).
    Create(Why),
    /// Start a key change: a new CA joins the bundle after the signing one; nothing signs
    /// with it yet.
    Stage,
    /// Record that every webhook's caBundle now holds the staged CA.
    Trust,
    /// Forget that record: a caBundle no longer holds the staged CA.
    Distrust,
    /// The staged CA has been trusted for the settle time: it signs from now on.
    Switch,
}

/// What to do about the serving leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafStep {
    /// Keep it.
    Keep,
    /// Make a new key and leaf, signed by the (kept, renewed or new) signing CA.
    Renew(Why),
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// About the CA.
    pub ca: CaStep,
    /// About the leaf.
    pub leaf: LeafStep,
    /// Whether expired CAs are dropped from the bundle.
    pub prune: bool,
    /// The rotation request this write carries out (acknowledged in the same write).
    pub ack: Option<String>,
    /// When kept, the earliest moment something falls due: decide again by then.
    pub renew_at: Option<Timestamp>,
}

impl Decision {
    /// Whether nothing is to be written.
    pub fn is_keep(&self) -> bool {
        self.ca == CaStep::Keep && self.leaf == LeafStep::Keep && !self.prune && self.ack.is_none()
    }
}

/// What the decision is made on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen<'a> {
    /// The Secret's data (`None`: there is no Secret).
    pub data: Option<&'a SecretData>,
    /// The Secret's annotations.
    pub annotations: Option<&'a Annotations>,
    /// The caBundle of each webhook in the configuration, as the API server's object holds
    /// them (empty: no configuration seen, so nothing new is ever trusted).
    pub bundles: &'a [Vec<u8>],
}

/// Decides what to write:
/// - everything when the Secret or its signing CA is missing or unusable;
/// - a CA key change in phases when a `:ca` request is pending: stage the new CA in the bundle,
///   record when every caBundle holds it, switch after [`TRUST_SETTLE`] (re-signing the leaf);
/// - otherwise the CA re-issued from its key when a third of its life is left;
/// - the leaf when it is missing, fails a check (key, chain to the signing CA, SANs exactly as
///   `names` wants, validity, outliving the CA), has a third of its life left, or a request
///   asks for it;
/// - expired CAs other than the signing one pruned from the bundle.
pub fn decide(seen: Seen<'_>, names: &Names, now: Timestamp) -> Decision {
    let empty = SecretData::new();
    let no_annotations = Annotations::new();
    let data = seen.data.unwrap_or(&empty);
    let annotations = seen.annotations.unwrap_or(&no_annotations);
    let request = rotation::pending(annotations);
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
                prune: false,
                ack: request.map(|r| r.id),
                renew_at: None,
            };
        }
    };
    let staged = rotation::staged(data, annotations, now);
    let (ca_step, ca_due) = ca_step(&ca, staged.as_ref(), request.as_ref(), seen.bundles, now);
    let (leaf_step, leaf_due) = if ca_step == CaStep::Switch {
        (LeafStep::Renew(Why::NewCa), None)
    } else {
        match check_leaf(data, &ca, names, now) {
            Err(CheckError::ReadEntry { .. }) => (LeafStep::Renew(Why::Missing), None),
            Err(error) => (LeafStep::Renew(Why::Invalid(error)), None),
            Ok(_) if request.as_ref().is_some_and(|r| !r.ca) => {
                (LeafStep::Renew(Why::Requested), None)
            }
            Ok(leaf) => {
                let at = renew_at(&leaf);
                if now >= at {
                    (LeafStep::Renew(Why::Due), None)
                } else {
                    (LeafStep::Keep, Some(at))
                }
            }
        }
    };
    let ack = request.and_then(|r| {
        let done = if r.ca {
            ca_step == CaStep::Switch
        } else {
            leaf_step != LeafStep::Keep
        };
        done.then_some(r.id)
    });
    let others = inspect::certificates(data, CA_CRT).unwrap_or_default();
    let expiries = others.iter().skip(1).map(|other| other.not_after);
    let prune = expiries.clone().any(|end| end <= now);
    let renew_at = match (&ca_step, &leaf_step) {
        (CaStep::Keep, LeafStep::Keep) if !prune => [leaf_due, ca_due]
            .into_iter()
            .flatten()
            .chain(expiries)
            .min(),
        _ => None,
    };
    Decision {
        ca: ca_step,
        leaf: leaf_step,
        prune,
        ack,
        renew_at,
    }
}

/// The CA's step, and when kept, the moment it falls due.
fn ca_step(
    ca: &CertInfo,
    staged: Option<&Staged>,
    request: Option<&Request>,
    bundles: &[Vec<u8>],
    now: Timestamp,
) -> (CaStep, Option<Timestamp>) {
    if let Some(staged) = staged {
        let held = trust::trusted_by_all(bundles, &staged.ca);
        return match staged.trusted_at {
            None if held => (CaStep::Trust, None),
            Some(_) if !held => (CaStep::Distrust, None),
            Some(at) => match at.checked_add(signed(TRUST_SETTLE)) {
                Ok(ready) if now < ready => (CaStep::Keep, Some(ready)),
                _ => (CaStep::Switch, None),
            },
            // Waiting for the caBundle to be written and seen.
            None => (CaStep::Keep, None),
        };
    }
    if request.is_some_and(|r| r.ca) {
        return (CaStep::Stage, None);
    }
    let due = renew_at(ca);
    if now >= due {
        (CaStep::Renew, None)
    } else {
        (CaStep::Keep, Some(due))
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

/// The leaf, checked against the signing CA and the names the webhook is called by.
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
