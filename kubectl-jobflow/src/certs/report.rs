//! What `cert-status` reports, computed from what the cluster holds (pure: the clock is an
//! argument): the Secret's CA and leaf, the bundle, a key change under way, the last rotation
//! request, whether every webhook's caBundle is the Secret's `ca.crt`, and who leads.

use jiff::Timestamp;
use jobflow::certs::{
    self, Annotations, CA_CRT, CA_NEXT, CA_NEXT_TRUSTED, CertInfo, ROTATE, ROTATED, TLS_CRT,
};
use jobflow::labels;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;

/// One certificate, as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cert {
    /// Serial, colon-separated hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Whether it is valid at the report's time.
    pub valid: bool,
}

impl Cert {
    fn of(info: &CertInfo, now: Timestamp) -> Self {
        Self {
            serial: info.serial.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            valid: info.check_validity(CA_CRT, now).is_ok(),
        }
    }
}

/// One webhook's caBundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// The webhook's name.
    pub name: String,
    /// Whether its caBundle is exactly the Secret's `ca.crt`.
    pub in_sync: bool,
    /// Whether the Secret's leaf chains to a valid CA of its caBundle.
    pub trusts_leaf: bool,
    /// The serials of the CAs in its caBundle.
    pub cas: Vec<String>,
    /// Where the API server calls it: a URL, or `service <ns>/<name>`.
    pub target: String,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name` of the Secret.
    pub secret: String,
    /// Whether the Secret exists.
    pub found: bool,
    /// Whether the agent made it (else: external, e.g. cert-manager).
    pub made_by_agent: bool,
    /// The signing CA.
    pub ca: Option<Cert>,
    /// The serving leaf.
    pub leaf: Option<Cert>,
    /// Every CA of `ca.crt`, signing first.
    pub bundle: Vec<Cert>,
    /// The serial of the CA a key change has staged, if one is under way.
    pub staged_ca: Option<String>,
    /// When every caBundle was first seen holding it.
    pub staged_trusted_at: Option<String>,
    /// The last rotation request (`workflow.kube-zen.io/rotate`).
    pub requested: Option<String>,
    /// The id of the last one carried out (`workflow.kube-zen.io/rotated`).
    pub rotated: Option<String>,
    /// The webhook configuration's name.
    pub config: String,
    /// Whether it exists.
    pub config_found: bool,
    /// Its webhooks.
    pub hooks: Vec<Hook>,
    /// The Lease holder, and how long ago it renewed.
    pub leader: Option<String>,
    /// When the Lease was last renewed.
    pub leader_renewed: Option<Timestamp>,
    /// Problems, one a line; empty when all is well.
    pub problems: Vec<String>,
}

/// Builds the report.
pub fn report(
    (namespace, secret_name): (&str, &str),
    secret: Option<&Secret>,
    (config_name, config): (&str, Option<&ValidatingWebhookConfiguration>),
    lease: Option<&Lease>,
    now: Timestamp,
) -> Report {
    let mut report = Report {
        secret: format!("{namespace}/{secret_name}"),
        config: config_name.to_owned(),
        ..Report::default()
    };
    let empty = certs::SecretData::new();
    let data = secret.and_then(|s| s.data.as_ref()).unwrap_or(&empty);
    let no_annotations = Annotations::new();
    let annotations = secret
        .and_then(|s| s.metadata.annotations.as_ref())
        .unwrap_or(&no_annotations);
    report.found = secret.is_some();
    report.made_by_agent = secret
        .and_then(|s| s.metadata.labels.as_ref())
        .and_then(|l| l.get(labels::MANAGED_BY))
        .is_some_and(|v| v == labels::MANAGED_BY_VALUE);
    let bundle = data
        .get(CA_CRT)
        .map(|b| certs::bundle_cas(&b.0))
        .unwrap_or_default();
    let leaf = data
        .get(TLS_CRT)
        .and_then(|b| certs::bundle_cas(&b.0).into_iter().next());
    report.ca = bundle.first().map(|ca| Cert::of(ca, now));
    report.bundle = bundle.iter().map(|ca| Cert::of(ca, now)).collect();
    report.leaf = leaf.as_ref().map(|l| Cert::of(l, now));
    report.staged_ca = annotations.get(CA_NEXT).cloned();
    report.staged_trusted_at = annotations.get(CA_NEXT_TRUSTED).cloned();
    report.requested = annotations.get(ROTATE).cloned();
    report.rotated = annotations.get(ROTATED).cloned();
    report.config_found = config.is_some();
    let stored = data.get(CA_CRT).map(|b| b.0.as_slice());
    report.hooks = config
        .into_iter()
        .flat_map(|c| c.webhooks.iter().flatten())
        .map(|hook| {
            let held = hook
                .client_config
                .ca_bundle
                .as_ref()
                .map(|b| b.0.clone())
                .unwrap_or_default();
            Hook {
                name: hook.name.clone(),
                in_sync: stored.is_some_and(|s| s == held.as_slice()),
                trusts_leaf: leaf
                    .as_ref()
                    .is_some_and(|l| certs::chains_in_all(std::slice::from_ref(&held), l, now)),
                cas: certs::bundle_cas(&held)
                    .into_iter()
                    .map(|c| c.serial)
                    .collect(),
                target: hook.client_config.url.clone().unwrap_or_else(|| {
                    hook.client_config.service.as_ref().map_or_else(
                        || "nowhere".to_owned(),
                        |s| format!("service {}/{}", s.namespace, s.name),
                    )
                }),
            }
        })
        .collect();
    if let Some(spec) = lease.and_then(|l| l.spec.as_ref()) {
        report.leader = spec.holder_identity.clone().filter(|h| !h.is_empty());
        report.leader_renewed = spec.renew_time.as_ref().map(|t| t.0);
    }
    report.problems = problems(&report, now);
    report
}

/// What is wrong, in words that say what to do.
fn problems(report: &Report, now: Timestamp) -> Vec<String> {
    let mut problems = Vec::new();
    if !report.found {
        problems.push(format!(
            "Secret {} does not exist: is the agent running with the webhook on (--webhook-addr) in that namespace?",
            report.secret
        ));
        return problems;
    }
    let week = jiff::SignedDuration::from_hours(24 * 7);
    for (what, cert) in [("CA", &report.ca), ("leaf", &report.leaf)] {
        match cert {
            None => problems.push(format!("the Secret holds no {what} certificate")),
            Some(cert) if !cert.valid => {
                problems.push(format!("the {what} is not valid now (serial {})", cert.serial));
            }
            Some(cert) if cert.not_after.duration_since(now) < week => problems.push(format!(
                "the {what} expires within 7 days ({}); the agent renews a third of its life before: is the leader running?",
                cert.not_after
            )),
            Some(_) => {}
        }
    }
    if !report.config_found {
        problems.push(format!(
            "ValidatingWebhookConfiguration {} does not exist (kubectl apply -f deploy/agent/webhook.yaml)",
            report.config
        ));
    }
    for hook in report.hooks.iter().filter(|h| !h.in_sync) {
        problems.push(format!(
            "the caBundle of webhook {} is not the Secret's ca.crt (the leader puts it back within seconds; if it stays, is the leader running?)",
            hook.name
        ));
    }
    for hook in report.hooks.iter().filter(|h| !h.trusts_leaf) {
        problems.push(format!(
            "the caBundle of webhook {} does not trust the Secret's leaf: the API server would refuse the webhook's certificate",
            hook.name
        ));
    }
    problems
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use super::*;
    use jobflow::certs::{Names, San};
    use serde_json::json;

    pub(in crate::certs) fn t0() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    pub(in crate::certs) fn secret() -> Secret {
        let names = Names {
            service: "jobflow-webhook".to_owned(),
            namespace: "zen-flow-system".to_owned(),
            extra: vec![San::parse("127.0.0.1")],
        };
        let data = certs::bootstrap(&names, t0()).unwrap();
        Secret {
            metadata: kube::api::ObjectMeta {
                labels: Some(
                    [(
                        labels::MANAGED_BY.to_owned(),
                        labels::MANAGED_BY_VALUE.to_owned(),
                    )]
                    .into(),
                ),
                annotations: Some(
                    [
                        (ROTATE.to_owned(), "r2:ca".to_owned()),
                        (ROTATED.to_owned(), "r1".to_owned()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    pub(in crate::certs) fn config(bundle: &[u8]) -> ValidatingWebhookConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": "jobflow-validating"},
            "webhooks": [{"name": "validate.workflow.kube-zen.io", "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "zen-flow-system", "name": "jobflow-webhook"},
                                 "caBundle": k8s_openapi::ByteString(bundle.to_vec())}}],
        }))
        .unwrap()
    }

    #[test]
    fn a_healthy_secret_and_bundle_have_no_problem() {
        let secret = secret();
        let bundle = secret.data.as_ref().unwrap()[CA_CRT].0.clone();
        let config = config(&bundle);
        let now = t0() + jiff::SignedDuration::from_hours(1);
        let report = report(
            ("zen-flow-system", "jobflow-webhook-tls"),
            Some(&secret),
            ("jobflow-validating", Some(&config)),
            None,
            now,
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.made_by_agent);
        assert_eq!(
            report.hooks[0].target,
            "service zen-flow-system/jobflow-webhook"
        );
        assert!(report.hooks[0].in_sync && report.hooks[0].trusts_leaf);
    }

    #[test]
    fn a_foreign_bundle_and_an_expiring_leaf_are_problems() {
        let secret = secret();
        let other = {
            let data = certs::bootstrap(
                &Names {
                    service: "x".into(),
                    namespace: "y".into(),
                    extra: vec![],
                },
                t0(),
            )
            .unwrap();
            data[CA_CRT].0.clone()
        };
        let late = t0() + jiff::SignedDuration::from_hours(24 * 25);
        let report = report(
            ("zen-flow-system", "jobflow-webhook-tls"),
            Some(&secret),
            ("jobflow-validating", Some(&config(&other))),
            None,
            late,
        );
        let all = report.problems.join("\n");
        assert!(all.contains("the leaf expires within 7 days"), "{all}");
        assert!(all.contains("is not the Secret's ca.crt"), "{all}");
        assert!(all.contains("does not trust the Secret's leaf"), "{all}");
        let missing = super::report(("ns", "s"), None, ("c", None), None, late);
        assert!(missing.problems[0].starts_with("Secret ns/s does not exist"));
    }
}
