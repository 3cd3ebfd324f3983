//! Rotation state kept on the Secret, so a new leader resumes where the old one stopped: the
//! request a user (or `kubectl jobflow cert-rotate`) makes, its acknowledgement, and a CA key
//! change under way (the staged key in the data, its serial and trust time in annotations).

use std::collections::BTreeMap;

use jiff::Timestamp;
use rcgen::KeyPair;

use super::inspect::{self, CertInfo};
use super::{CA_CRT, SecretData};

/// Annotation a user sets to ask for a rotation: `<id>` renews the leaf, `<id>:ca` changes the
/// CA key (in phases) and then the leaf. Ids are opaque (`date -Iseconds` works).
pub const ROTATE: &str = "workflow.kube-zen.io/rotate";
/// Annotation the leader sets to the id of the last request carried out.
pub const ROTATED: &str = "workflow.kube-zen.io/rotated";
/// Annotation naming the serial of the CA a key change has staged in the bundle.
pub const CA_NEXT: &str = "workflow.kube-zen.io/ca-next";
/// Annotation with the time the leader first saw the staged CA in every webhook's caBundle.
pub const CA_NEXT_TRUSTED: &str = "workflow.kube-zen.io/ca-next-trusted";
/// Data entry with the staged CA's private key, PKCS #8 PEM (present only during a key change).
pub const CA_NEXT_KEY: &str = "ca-next.key";

/// The Secret's annotations.
pub type Annotations = BTreeMap<String, String>;

/// A rotation request not yet carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The opaque id (the annotation's value without `:ca`).
    pub id: String,
    /// Whether the CA key changes too.
    pub ca: bool,
}

/// Splits an annotation value into the request it makes: `<id>` or `<id>:ca` (an id may hold
/// colons itself, as timestamps do). `None` when the value is blank.
pub fn parse_request(value: &str) -> Option<Request> {
    let value = value.trim();
    let (id, ca) = match value.rsplit_once(':') {
        Some((id, "ca")) => (id, true),
        _ => (value, false),
    };
    (!id.is_empty()).then(|| Request {
        id: id.to_owned(),
        ca,
    })
}

/// The request on `annotations` that the leader has not acknowledged yet.
pub fn pending(annotations: &Annotations) -> Option<Request> {
    let request = parse_request(annotations.get(ROTATE)?)?;
    let done = annotations.get(ROTATED).map(|id| id.trim());
    (done != Some(request.id.as_str())).then_some(request)
}

/// A CA key change under way: the new CA sits in the bundle, its key in [`CA_NEXT_KEY`].
#[derive(Debug)]
pub struct Staged {
    /// The new CA's certificate (in `ca.crt`, after the signing CA).
    pub ca: CertInfo,
    /// Its key.
    pub key: KeyPair,
    /// When every webhook's caBundle was first seen holding it.
    pub trusted_at: Option<Timestamp>,
}

/// The staged CA, if a key change is under way and intact: [`CA_NEXT_KEY`] parses and belongs
/// to a CA of the bundle other than the signing one that is valid at `now`.
pub fn staged(data: &SecretData, annotations: &Annotations, now: Timestamp) -> Option<Staged> {
    let key = inspect::private_key(data, CA_NEXT_KEY).ok()?;
    let ca = inspect::certificates(data, CA_CRT)
        .ok()?
        .into_iter()
        .skip(1)
        .find(|ca| {
            ca.is_ca
                && inspect::check_key(&key, ca, CA_NEXT_KEY).is_ok()
                && ca.check_validity(CA_CRT, now).is_ok()
        })?;
    let trusted_at = annotations
        .get(CA_NEXT_TRUSTED)
        .and_then(|at| at.parse::<Timestamp>().ok());
    Some(Staged {
        ca,
        key,
        trusted_at,
    })
}
