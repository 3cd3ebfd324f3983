//! What the API server trusts: the caBundle of each webhook in the configuration it holds.

use jiff::Timestamp;

use super::CA_CRT;
use super::inspect::{self, CertInfo};

/// The CAs of a PEM bundle (empty when nothing parses).
pub fn bundle_cas(pem: &[u8]) -> Vec<CertInfo> {
    inspect::parse_certificates(pem, CA_CRT).unwrap_or_default()
}

/// Whether every bundle in `bundles` (one per webhook) holds `ca`; false when there are none.
pub fn trusted_by_all(bundles: &[Vec<u8>], ca: &CertInfo) -> bool {
    !bundles.is_empty()
        && bundles
            .iter()
            .all(|bundle| bundle_cas(bundle).iter().any(|held| held.der == ca.der))
}

/// Whether `leaf` chains to a CA valid at `now` in every bundle in `bundles`; false when there
/// are none.
pub fn chains_in_all(bundles: &[Vec<u8>], leaf: &CertInfo, now: Timestamp) -> bool {
    !bundles.is_empty()
        && bundles.iter().all(|bundle| {
            bundle_cas(bundle)
                .iter()
                .any(|ca| ca.check_validity(CA_CRT, now).is_ok() && leaf.signed_by(ca))
        })
}
