//! The admission webhook's series: admissions by result and their latency, certificate expiry
//! (stored and served), rotations, reloads, Secret and caBundle writes, whether the caBundle is in
//! sync, failed handshakes.

use jiff::Timestamp;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{FAST, RegisterError, counter, counter_vec, gauge, gauge_vec, histogram};

/// The webhook's series.
#[derive(Debug)]
pub struct WebhookMetrics {
    admissions: IntCounterVec,
    admission_duration: Histogram,
    not_after: IntGaugeVec,
    rotations: IntCounterVec,
    reloads: IntCounterVec,
    secret_writes: IntCounterVec,
    ca_bundle_writes: IntCounterVec,
    ca_bundle_in_sync: IntGauge,
    handshake_errors: IntCounter,
}

/// Which certificate (the `cert` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cert {
    /// The signing CA.
    Ca,
    /// The serving leaf.
    Leaf,
}

/// Where it was seen (the `source` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// In the Secret.
    Stored,
    /// In memory, handed to TLS handshakes.
    Served,
}

impl WebhookMetrics {
    /// Creates and registers the series in `r`.
    pub(super) fn new(r: &Registry) -> Result<Self, RegisterError> {
        Ok(Self {
            admissions: counter_vec(
                r,
                "zen_flow_webhook_admissions_total",
                "AdmissionReviews answered, by operation and result (allowed, denied, invalid)",
                &["operation", "result"],
            )?,
            admission_duration: histogram(
                r,
                "zen_flow_webhook_admission_duration_seconds",
                "Time to answer one AdmissionReview, reading to writing",
                FAST,
            )?,
            not_after: gauge_vec(
                r,
                "zen_flow_webhook_certificate_not_after_seconds",
                "NotAfter of the webhook's certificates (Unix seconds), stored and served",
                &["cert", "source"],
            )?,
            rotations: counter_vec(
                r,
                "zen_flow_webhook_rotations_total",
                "Certificates the leader made or changed, by cert (ca, leaf), reason and result",
                &["cert", "reason", "result"],
            )?,
            reloads: counter_vec(
                r,
                "zen_flow_webhook_certificate_reloads_total",
                "Certificates offered to the server, by result (swapped, refused)",
                &["result"],
            )?,
            secret_writes: counter_vec(
                r,
                "zen_flow_webhook_secret_writes_total",
                "Writes of the certificate Secret by the leader, by result (ok, conflict, error)",
                &["result"],
            )?,
            ca_bundle_writes: counter_vec(
                r,
                "zen_flow_webhook_ca_bundle_writes_total",
                "caBundle writes by the leader, by reason (injected, updated, restored) and result",
                &["reason", "result"],
            )?,
            ca_bundle_in_sync: gauge(
                r,
                "zen_flow_webhook_ca_bundle_in_sync",
                "1 when every webhook's caBundle, as the API server holds it, is the Secret's ca.crt",
            )?,
            handshake_errors: counter(
                r,
                "zen_flow_webhook_handshake_errors_total",
                "TLS handshakes on the webhook port that failed or timed out",
            )?,
        })
    }

    /// One answered AdmissionReview.
    pub fn admission(&self, operation: &str, result: &'static str, seconds: f64) {
        let operation = match operation {
            "CREATE" | "UPDATE" | "DELETE" | "CONNECT" => operation,
            _ => "unknown",
        };
        self.admissions
            .with_label_values(&[operation, result])
            .inc();
        self.admission_duration.observe(seconds);
    }

    /// A certificate's NotAfter, as seen at `source`.
    pub fn not_after(&self, cert: Cert, source: Source, at: Timestamp) {
        let cert = match cert {
            Cert::Ca => "ca",
            Cert::Leaf => "leaf",
        };
        let source = match source {
            Source::Stored => "stored",
            Source::Served => "served",
        };
        self.not_after
            .with_label_values(&[cert, source])
            .set(at.as_second());
    }

    /// An offer to the server: `swapped` or `refused`.
    pub fn reload(&self, result: &'static str) {
        self.reloads.with_label_values(&[result]).inc();
    }

    /// A Secret write: `ok`, `conflict` or `error`.
    pub fn secret_write(&self, result: &'static str) {
        self.secret_writes.with_label_values(&[result]).inc();
    }

    /// A certificate made or changed: `cert` is `ca` or `leaf`, `result` `ok`, `conflict` or
    /// `error`.
    pub fn rotation(&self, cert: Cert, reason: &str, result: &'static str) {
        let cert = match cert {
            Cert::Ca => "ca",
            Cert::Leaf => "leaf",
        };
        self.rotations
            .with_label_values(&[cert, reason, result])
            .inc();
    }

    /// A caBundle write for `reason` (`injected`, `updated`, `restored`): `ok` or `error`.
    pub fn ca_bundle_write(&self, reason: &'static str, result: &'static str) {
        self.ca_bundle_writes
            .with_label_values(&[reason, result])
            .inc();
    }

    /// Whether the caBundle is in sync with the Secret.
    pub fn ca_bundle_in_sync(&self, in_sync: bool) {
        self.ca_bundle_in_sync.set(i64::from(in_sync));
    }

    /// A failed handshake.
    pub fn handshake_error(&self) {
        self.handshake_errors.inc();
    }
}
