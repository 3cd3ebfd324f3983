//! Making certificates: the CA (new, or re-issued from its key) and the serving leaf.

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::OffsetDateTime;

use super::decide::{CaStep, Decision, LeafStep, signed};
use super::inspect::{self, CertInfo, CheckError};
use super::{
    BACKDATE, CA_CRT, CA_KEY, CA_LIFETIME, LEAF_LIFETIME, Names, San, SecretData, TLS_CRT, TLS_KEY,
};

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The decision keeps something that cannot be read.
    #[error("reading what the decision keeps")]
    ReadKept(#[source] CheckError),
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

/// Carries `decision` out on `data`: returns the Secret data to write (all four entries).
/// The CA bundle lists the signing CA first; a renewed CA keeps the older still-valid CAs
/// (same key) after it, a new one starts the bundle afresh.
pub fn carry_out(
    decision: &Decision,
    data: Option<&SecretData>,
    names: &Names,
    now: Timestamp,
) -> Result<SecretData, IssueError> {
    let empty = SecretData::new();
    let data = data.unwrap_or(&empty);
    let (ca_key, ca, bundle) = match &decision.ca {
        CaStep::Keep => {
            let (ca, key) = inspect::check_ca(data, now).map_err(IssueError::ReadKept)?;
            let bundle = inspect::entry(data, CA_CRT)
                .map_err(IssueError::ReadKept)?
                .to_vec();
            (key, ca, bundle)
        }
        CaStep::Renew => {
            let (_, key) = inspect::check_ca(data, now).map_err(IssueError::ReadKept)?;
            let pem = ca_certificate(&key, names, now)?;
            let mut bundle = pem.clone();
            let older = inspect::certificates(data, CA_CRT).map_err(IssueError::ReadKept)?;
            for old in older
                .iter()
                .filter(|c| c.check_validity(CA_CRT, now).is_ok())
            {
                bundle.push_str(&pem_of(&old.der));
            }
            (key, parse(&pem)?, bundle.into_bytes())
        }
        CaStep::Create(_) => {
            let key = new_key("CA key")?;
            let pem = ca_certificate(&key, names, now)?;
            (key, parse(&pem)?, pem.into_bytes())
        }
    };
    let (leaf_pem, leaf_key_pem) = match &decision.leaf {
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
            let pem = leaf_certificate(&key, &ca, &ca_key, names, now)?;
            (pem.into_bytes(), key.serialize_pem().into_bytes())
        }
    };
    Ok([
        (TLS_CRT, leaf_pem),
        (TLS_KEY, leaf_key_pem),
        (CA_CRT, bundle),
        (CA_KEY, ca_key.serialize_pem().into_bytes()),
    ]
    .into_iter()
    .map(|(key, bytes)| (key.to_owned(), k8s_openapi::ByteString(bytes)))
    .collect())
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
