//! Making certificates: the CA (new, or re-issued from its key) and the serving leaf.

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::OffsetDateTime;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::decide::{CaStep, Decision, LeafStep, Seen, decide, signed};
use super::inspect::{self, CertInfo, CheckError};
use super::rotation::{self, Annotations, CA_NEXT, CA_NEXT_KEY, CA_NEXT_TRUSTED, ROTATED};
use super::{
    BACKDATE, CA_CRT, CA_KEY, CA_LIFETIME, LEAF_LIFETIME, Names, San, SecretData, TLS_CRT, TLS_KEY,
};

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The decision keeps something that cannot be read.
    #[error("reading what the decision keeps")]
    ReadKept(#[source] CheckError),
    /// The decision switches to a staged CA that is not there.
    #[error("reading the staged CA ({CA_NEXT_KEY} and its certificate in ca.crt)")]
    ReadStaged,
    /// A validity date is out of range.
    #[error("computing the validity period")]
    ComputeValidity,
    /// A SAN is not a valid DNS name.
    #[error("encoding the SAN {name}")]
    EncodeSan {
        /// The name.
        name: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// rcgen failed to make a key or a certificate.
    #[error("signing the {what}")]
    Sign {
        /// `CA key`, `CA`, `leaf key` or `leaf`.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
}

/// What to write: the Secret's whole data, and the annotations to set (`Some`) or remove
/// (`None`); annotations not named here stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Every data entry.
    pub data: SecretData,
    /// Annotation changes.
    pub annotations: BTreeMap<String, Option<String>>,
}

/// Carries `decision` out on what was `seen`. The CA bundle lists the signing CA first, then
/// the other CAs still valid at `now` (all of them when `decision.prune` is false); a renewed
/// CA keeps them, a created one starts afresh, a staged one joins at the end, a switch puts the
/// staged CA first and the former signing CA after it.
pub fn carry_out(
    decision: &Decision,
    seen: Seen<'_>,
    names: &Names,
    now: Timestamp,
) -> Result<Written, IssueError> {
    let empty = SecretData::new();
    let no_annotations = Annotations::new();
    let data = seen.data.unwrap_or(&empty);
    let annotations_seen = seen.annotations.unwrap_or(&no_annotations);
    let mut annotations = BTreeMap::new();
    let mut next_key = data.get(CA_NEXT_KEY).cloned();
    let kept = |now| inspect::check_ca(data, now).map_err(IssueError::ReadKept);
    // The CAs after the signing one, pruned when the decision says so.
    let others = || -> Result<Vec<CertInfo>, IssueError> {
        let all = inspect::certificates(data, CA_CRT).map_err(IssueError::ReadKept)?;
        Ok(all
            .into_iter()
            .skip(1)
            .filter(|ca| !decision.prune || ca.check_validity(CA_CRT, now).is_ok())
            .collect())
    };
    let (ca_key, ca, rest) = match &decision.ca {
        CaStep::Keep | CaStep::Trust | CaStep::Distrust => {
            let (ca, key) = kept(now)?;
            (key, ca, others()?)
        }
        CaStep::Renew => {
            let (old, key) = kept(now)?;
            let ca = parse(&ca_certificate(&key, names, now)?)?;
            let rest = std::iter::once(old)
                .chain(others()?)
                .filter(|old| old.check_validity(CA_CRT, now).is_ok())
                .collect();
            (key, ca, rest)
        }
        CaStep::Create(_) => {
            let key = new_key("CA key")?;
            let ca = parse(&ca_certificate(&key, names, now)?)?;
            next_key = None;
            annotations.insert(CA_NEXT.to_owned(), None);
            annotations.insert(CA_NEXT_TRUSTED.to_owned(), None);
            (key, ca, Vec::new())
        }
        CaStep::Stage => {
            let (ca, key) = kept(now)?;
            let next = new_key("CA key")?;
            let staged = parse(&ca_certificate(&next, names, now)?)?;
            next_key = Some(ByteString(next.serialize_pem().into_bytes()));
            annotations.insert(CA_NEXT.to_owned(), Some(staged.serial.clone()));
            annotations.insert(CA_NEXT_TRUSTED.to_owned(), None);
            let mut rest = others()?;
            rest.push(staged);
            (key, ca, rest)
        }
        CaStep::Switch => {
            let (old, _) = kept(now)?;
            let staged =
                rotation::staged(data, annotations_seen, now).ok_or(IssueError::ReadStaged)?;
            next_key = None;
            annotations.insert(CA_NEXT.to_owned(), None);
            annotations.insert(CA_NEXT_TRUSTED.to_owned(), None);
            let mut rest = vec![old];
            rest.extend(others()?.into_iter().filter(|ca| ca.der != staged.ca.der));
            (staged.key, staged.ca, rest)
        }
    };
    if decision.ca == CaStep::Trust {
        annotations.insert(CA_NEXT_TRUSTED.to_owned(), Some(now.to_string()));
    }
    if decision.ca == CaStep::Distrust {
        annotations.insert(CA_NEXT_TRUSTED.to_owned(), None);
    }
    if let Some(id) = &decision.ack {
        annotations.insert(ROTATED.to_owned(), Some(id.clone()));
    }
    let mut bundle = pem_of(&ca.der);
    for other in &rest {
        bundle.push_str(&pem_of(&other.der));
    }
    let (leaf_pem, leaf_key_pem) = leaf_pair(&decision.leaf, data, (&ca, &ca_key), names, now)?;
    let mut written: SecretData = [
        (TLS_CRT, leaf_pem),
        (TLS_KEY, leaf_key_pem),
        (CA_CRT, bundle.into_bytes()),
        (CA_KEY, ca_key.serialize_pem().into_bytes()),
    ]
    .into_iter()
    .map(|(key, bytes)| (key.to_owned(), ByteString(bytes)))
    .collect();
    if let Some(key) = next_key {
        written.insert(CA_NEXT_KEY.to_owned(), key);
    }
    Ok(Written {
        data: written,
        annotations,
    })
}

/// The leaf's certificate and key, PEM: kept, or made anew and signed by `ca`.
fn leaf_pair(
    step: &LeafStep,
    data: &SecretData,
    (ca, ca_key): (&CertInfo, &KeyPair),
    names: &Names,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<u8>), IssueError> {
    Ok(match step {
        LeafStep::Keep => (
            inspect::entry(data, TLS_CRT)
                .map_err(IssueError::ReadKept)?
                .to_vec(),
            inspect::entry(data, TLS_KEY)
                .map_err(IssueError::ReadKept)?
                .to_vec(),
        ),
        LeafStep::Renew(_) => {
            let key = new_key("leaf key")?;
            let pem = leaf_certificate(&key, ca, ca_key, names, now)?;
            (pem.into_bytes(), key.serialize_pem().into_bytes())
        }
    })
}

/// A fresh Secret's data: a new CA and leaf for `names` at `now`.
pub fn bootstrap(names: &Names, now: Timestamp) -> Result<SecretData, IssueError> {
    let seen = Seen::default();
    carry_out(&decide(seen, names, now), seen, names, now).map(|written| written.data)
}

fn new_key(what: &'static str) -> Result<KeyPair, IssueError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| IssueError::Sign { what, source })
}

fn parse(pem: &str) -> Result<CertInfo, IssueError> {
    let data: SecretData = [(CA_CRT.to_owned(), k8s_openapi::ByteString(pem.into()))].into();
    inspect::certificates(&data, CA_CRT)
        .map(|mut certs| certs.swap_remove(0))
        .map_err(IssueError::ReadKept)
}

fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// A fresh serial number: 128 bits from the standard library's randomly keyed hashers (rcgen's
/// default is derived from the public key, which a CA re-issued from its key would repeat).
fn serial(now: Timestamp) -> rcgen::SerialNumber {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = Vec::with_capacity(16);
    for part in 0..2u8 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(part);
        hasher.write_i128(now.as_nanosecond());
        bytes.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    // Positive, and never a leading zero byte the DER encoding would strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn offset(ts: Timestamp) -> Result<OffsetDateTime, IssueError> {
    OffsetDateTime::from_unix_timestamp(ts.as_second()).map_err(|_| IssueError::ComputeValidity)
}

fn start(now: Timestamp) -> Result<Timestamp, IssueError> {
    now.checked_sub(signed(BACKDATE))
        .map_err(|_| IssueError::ComputeValidity)
}

fn ca_params(names: &Names, now: Timestamp) -> Result<CertificateParams, IssueError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, names.ca_common_name());
    params.serial_number = Some(serial(now));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset(start(now)?)?;
    params.not_after = offset(
        now.checked_add(signed(CA_LIFETIME))
            .map_err(|_| IssueError::ComputeValidity)?,
    )?;
    Ok(params)
}

fn ca_certificate(key: &KeyPair, names: &Names, now: Timestamp) -> Result<String, IssueError> {
    let params = ca_params(names, now)?;
    params
        .self_signed(key)
        .map(|cert| cert.pem())
        .map_err(|source| IssueError::Sign { what: "CA", source })
}

fn leaf_certificate(
    key: &KeyPair,
    ca: &CertInfo,
    ca_key: &KeyPair,
    names: &Names,
    now: Timestamp,
) -> Result<String, IssueError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{}.svc", names.service, names.namespace),
    );
    params.subject_alt_names = names
        .sans()
        .into_iter()
        .map(|san| match san {
            San::Ip(ip) => Ok(SanType::IpAddress(ip)),
            San::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|source| IssueError::EncodeSan { name, source }),
        })
        .collect::<Result<_, _>>()?;
    params.serial_number = Some(serial(now));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset(start(now)?)?;
    // Never past the CA's end.
    let end = now
        .checked_add(signed(LEAF_LIFETIME))
        .map_err(|_| IssueError::ComputeValidity)?
        .min(ca.not_after);
    params.not_after = offset(end)?;
    let ca_der = rustls_pki_types::CertificateDer::from(ca.der.clone());
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(|source| IssueError::Sign {
        what: "leaf",
        source,
    })?;
    params
        .signed_by(key, &issuer)
        .map(|cert| cert.pem())
        .map_err(|source| IssueError::Sign {
            what: "leaf",
            source,
        })
}
