//! Reading what a Secret holds, and the checks a pair must pass to be served or kept.

use std::net::IpAddr;

use jiff::Timestamp;
use rcgen::KeyPair;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::{CA_CRT, CA_KEY, San, SecretData, TLS_CRT, TLS_KEY};

/// Why a Secret's certificates cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// An entry is missing or empty.
    #[error("reading {key}: the Secret has no such entry")]
    ReadEntry {
        /// The data key.
        key: &'static str,
    },
    /// An entry holds no PEM certificate that parses.
    #[error("parsing the certificates in {key}: {reason}")]
    ParseCertificate {
        /// The data key.
        key: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// An entry holds no PKCS #8 private key that parses.
    #[error("parsing the private key in {key}: {reason}")]
    ParseKey {
        /// The data key.
        key: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("matching {key} to its certificate: the public keys differ")]
    MatchKey {
        /// The key's data key.
        key: &'static str,
    },
    /// The first certificate of `ca.crt` is not a CA.
    #[error("confirming ca.crt is a CA: its first certificate has no CA basic constraint")]
    ConfirmCa,
    /// The leaf is signed by none of the CAs in `ca.crt`.
    #[error("chaining tls.crt to ca.crt: no CA there signed it")]
    ChainLeaf,
    /// The leaf lacks a name the webhook is called by, or has one it should not.
    #[error("matching the SANs of tls.crt: want {want}, have {have}")]
    MatchSans {
        /// The names wanted, comma-separated.
        want: String,
        /// The names the leaf has, comma-separated.
        have: String,
    },
    /// A certificate is not valid yet.
    #[error("using {key} at {now}: not valid before {not_before}")]
    StartValidity {
        /// The data key.
        key: &'static str,
        /// Its NotBefore.
        not_before: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// A certificate has expired.
    #[error("using {key} at {now}: expired at {not_after}")]
    Expire {
        /// The data key.
        key: &'static str,
        /// Its NotAfter.
        not_after: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The leaf would be valid after its CA has expired.
    #[error("bounding tls.crt by its CA: it ends at {leaf}, after the CA's end {ca}")]
    OutliveCa {
        /// The leaf's NotAfter.
        leaf: Timestamp,
        /// The CA's NotAfter.
        ca: Timestamp,
    },
}

/// What the checks need of one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// The serial number, as colon-separated hex.
    pub serial: String,
    /// Whether the basic constraints say CA.
    pub is_ca: bool,
    /// The subject alternative names, sorted.
    pub sans: Vec<San>,
    /// The subject public key's bits.
    pub public_key: Vec<u8>,
}

impl CertInfo {
    /// Reads one DER certificate.
    pub fn from_der(der: &[u8], key: &'static str) -> Result<Self, CheckError> {
        let fail = |reason: String| CheckError::ParseCertificate { key, reason };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| fail(e.to_string()))?;
        let validity = cert.validity();
        let time = |t: i64| Timestamp::from_second(t).map_err(|e| fail(e.to_string()));
        let mut sans = sans(&cert).map_err(fail)?;
        sans.sort();
        Ok(Self {
            der: der.to_vec(),
            not_before: time(validity.not_before.timestamp())?,
            not_after: time(validity.not_after.timestamp())?,
            serial: cert.raw_serial_as_string(),
            is_ca: cert.is_ca(),
            sans,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Ok when valid at `now`.
    pub fn check_validity(&self, key: &'static str, now: Timestamp) -> Result<(), CheckError> {
        if now < self.not_before {
            return Err(CheckError::StartValidity {
                key,
                not_before: self.not_before,
                now,
            });
        }
        if now >= self.not_after {
            return Err(CheckError::Expire {
                key,
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// Whether `ca`'s key signed this certificate.
    pub fn signed_by(&self, ca: &CertInfo) -> bool {
        let (Ok((_, leaf)), Ok((_, ca))) = (
            x509_parser::parse_x509_certificate(&self.der),
            x509_parser::parse_x509_certificate(&ca.der),
        ) else {
            return false;
        };
        leaf.verify_signature(Some(ca.public_key())).is_ok()
    }
}

fn sans(cert: &X509Certificate<'_>) -> Result<Vec<San>, String> {
    let Some(extension) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let mut sans = Vec::new();
    for name in &extension.value.general_names {
        match name {
            GeneralName::DNSName(dns) => sans.push(San::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).map(IpAddr::from).ok(),
                    16 => <[u8; 16]>::try_from(*bytes).map(IpAddr::from).ok(),
                    _ => None,
                };
                sans.push(San::Ip(ip.ok_or("an IP SAN of a bad length")?));
            }
            // Other kinds cannot be what the API server calls; ignored.
            _ => {}
        }
    }
    Ok(sans)
}

/// The bytes of an entry, or why there are none.
pub(super) fn entry<'a>(data: &'a SecretData, key: &'static str) -> Result<&'a [u8], CheckError> {
    data.get(key)
        .map(|bytes| bytes.0.as_slice())
        .filter(|bytes| !bytes.is_empty())
        .ok_or(CheckError::ReadEntry { key })
}

/// Every certificate of a PEM entry, in order (at least one).
pub(super) fn certificates(
    data: &SecretData,
    key: &'static str,
) -> Result<Vec<CertInfo>, CheckError> {
    parse_certificates(entry(data, key)?, key)
}

/// Every certificate of PEM `bytes` (read from `key`, for errors), in order (at least one).
pub(super) fn parse_certificates(
    bytes: &[u8],
    key: &'static str,
) -> Result<Vec<CertInfo>, CheckError> {
    let mut certs = Vec::new();
    for pem in Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| CheckError::ParseCertificate {
            key,
            reason: e.to_string(),
        })?;
        if pem.label == "CERTIFICATE" {
            certs.push(CertInfo::from_der(&pem.contents, key)?);
        }
    }
    if certs.is_empty() {
        return Err(CheckError::ParseCertificate {
            key,
            reason: "no PEM CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

/// The NotAfter of the first certificate in entry `key`, if it parses (for metrics).
pub fn not_after(data: &SecretData, key: &'static str) -> Option<Timestamp> {
    certificates(data, key)
        .ok()
        .and_then(|certs| certs.first().map(|cert| cert.not_after))
}

/// The private key of a PEM entry.
pub(super) fn private_key(data: &SecretData, key: &'static str) -> Result<KeyPair, CheckError> {
    let bytes = entry(data, key)?;
    let fail = |reason: String| CheckError::ParseKey { key, reason };
    let text = std::str::from_utf8(bytes).map_err(|e| fail(e.to_string()))?;
    KeyPair::from_pem(text).map_err(|e| fail(e.to_string()))
}

/// Ok when `pair` is the key of `cert`.
pub(super) fn check_key(
    pair: &KeyPair,
    cert: &CertInfo,
    key: &'static str,
) -> Result<(), CheckError> {
    if pair.public_key_raw() == cert.public_key.as_slice() {
        Ok(())
    } else {
        Err(CheckError::MatchKey { key })
    }
}

/// The signing CA (first in `ca.crt`), checked with its key: a CA, valid at `now`, its key.
pub(super) fn check_ca(
    data: &SecretData,
    now: Timestamp,
) -> Result<(CertInfo, KeyPair), CheckError> {
    let ca = certificates(data, CA_CRT)?.swap_remove(0);
    let key = private_key(data, CA_KEY)?;
    if !ca.is_ca {
        return Err(CheckError::ConfirmCa);
    }
    check_key(&key, &ca, CA_KEY)?;
    ca.check_validity(CA_CRT, now)?;
    Ok((ca, key))
}

/// A pair fit to serve: certificate chain and key, as DER for rustls.
#[derive(Clone, Debug)]
pub struct Served {
    /// `tls.crt`'s certificates, leaf first.
    pub chain: Vec<CertInfo>,
    /// `tls.key` as PKCS #8 DER.
    pub key_der: Vec<u8>,
}

impl Served {
    /// The leaf (first of the chain).
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.chain.first()
    }
}

/// Checks a pair before it is served: the key is the leaf's, the leaf is valid at `now`,
/// carries every name in `want` and is signed by a CA of `ca.crt` that is valid at `now`.
pub fn check_serving(
    data: &SecretData,
    want: &[San],
    now: Timestamp,
) -> Result<Served, CheckError> {
    let chain = certificates(data, TLS_CRT)?;
    let key = private_key(data, TLS_KEY)?;
    let leaf = &chain[0];
    check_key(&key, leaf, TLS_KEY)?;
    leaf.check_validity(TLS_CRT, now)?;
    if want.iter().any(|name| !leaf.sans.contains(name)) {
        return Err(mismatch(want, &leaf.sans));
    }
    let cas = certificates(data, CA_CRT)?;
    if !cas
        .iter()
        .any(|ca| ca.check_validity(CA_CRT, now).is_ok() && leaf.signed_by(ca))
    {
        return Err(CheckError::ChainLeaf);
    }
    Ok(Served {
        chain,
        key_der: key.serialize_der(),
    })
}

/// The SAN mismatch error.
pub(super) fn mismatch(want: &[San], have: &[San]) -> CheckError {
    let join = |sans: &[San]| {
        sans.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    CheckError::MatchSans {
        want: join(want),
        have: join(have),
    }
}
