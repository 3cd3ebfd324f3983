//! The served certificate, swapped in memory when the Secret changes (a rustls resolver).
//!
//! A pair is swapped in only after it passes [`jobflow::certs::check_serving`]; otherwise the
//! last good one stays.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use jobflow::certs::{CertInfo, CheckError, San, SecretData, check_serving};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why an offered pair was not swapped in.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// The pair fails a check.
    #[error("checking the offered certificate")]
    Check(#[from] CheckError),
    /// rustls cannot use the key.
    #[error("loading the offered private key")]
    LoadKey(#[source] rustls::Error),
}

/// What an offer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offered {
    /// A new leaf is served now.
    Swapped {
        /// Its serial number.
        serial: String,
        /// Its NotAfter.
        not_after: Timestamp,
    },
    /// The same leaf was served already.
    Unchanged,
}

/// The certificate every TLS handshake gets.
#[derive(Debug, Default)]
pub struct Resolver {
    current: Mutex<Option<(CertInfo, Arc<CertifiedKey>)>>,
}

impl Resolver {
    /// Checks the pair in `data` at `now` for the names in `want`, and serves it if it passes.
    pub fn offer(
        &self,
        data: &SecretData,
        want: &[San],
        now: Timestamp,
    ) -> Result<Offered, OfferError> {
        let served = check_serving(data, want, now)?;
        let Some(leaf) = served.leaf().cloned() else {
            return Err(OfferError::Check(CheckError::ReadEntry {
                key: jobflow::certs::TLS_CRT,
            }));
        };
        if self.serial().as_deref() == Some(leaf.serial.as_str()) {
            return Ok(Offered::Unchanged);
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(served.key_der));
        let key =
            rustls::crypto::ring::sign::any_supported_type(&key).map_err(OfferError::LoadKey)?;
        let chain = served
            .chain
            .into_iter()
            .map(|cert| CertificateDer::from(cert.der))
            .collect();
        let certified = Arc::new(CertifiedKey::new(chain, key));
        let (serial, not_after) = (leaf.serial.clone(), leaf.not_after);
        *self.lock() = Some((leaf, certified));
        Ok(Offered::Swapped { serial, not_after })
    }

    /// The served leaf's serial, if any is served.
    pub fn serial(&self) -> Option<String> {
        self.lock().as_ref().map(|(leaf, _)| leaf.serial.clone())
    }

    /// The served leaf, if any is served.
    pub fn leaf(&self) -> Option<CertInfo> {
        self.lock().as_ref().map(|(leaf, _)| leaf.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(CertInfo, Arc<CertifiedKey>)>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lock().as_ref().map(|(_, key)| Arc::clone(key))
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jobflow::certs::{Names, TLS_KEY};

    fn names() -> Names {
        Names {
            service: "svc".to_owned(),
            namespace: "ns".to_owned(),
            extra: vec![San::parse("127.0.0.1")],
        }
    }

    fn fresh(now: Timestamp) -> SecretData {
        jobflow::certs::bootstrap(&names(), now).unwrap()
    }

    #[test]
    fn a_good_pair_is_swapped_in_and_a_bad_one_never_is() {
        let now = Timestamp::now();
        let resolver = Resolver::default();
        assert_eq!(resolver.serial(), None);
        let good = fresh(now);
        let Offered::Swapped { serial, .. } = resolver.offer(&good, &names().sans(), now).unwrap()
        else {
            panic!("not swapped");
        };
        assert_eq!(resolver.serial(), Some(serial.clone()));
        assert_eq!(
            resolver.offer(&good, &names().sans(), now).unwrap(),
            Offered::Unchanged
        );
        // A mismatched key: refused, the last good one stays.
        let mut bad = fresh(now);
        bad.insert(TLS_KEY.to_owned(), good[TLS_KEY].clone());
        assert!(matches!(
            resolver.offer(&bad, &names().sans(), now),
            Err(OfferError::Check(CheckError::MatchKey { .. }))
        ));
        // Expired: refused too.
        let later = now + jiff::SignedDuration::from_hours(24 * 31);
        assert!(resolver.offer(&fresh(now), &names().sans(), later).is_err());
        assert_eq!(resolver.serial(), Some(serial));
        // A new good one replaces it.
        let next = fresh(now);
        assert!(matches!(
            resolver.offer(&next, &names().sans(), now).unwrap(),
            Offered::Swapped { .. }
        ));
    }
}
