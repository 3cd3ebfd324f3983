//! The certificate decisions on an injected clock, threshold by threshold.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;

use super::decide::renew_at;
use super::inspect::{self, CertInfo};
use super::*;

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// Decides on a Secret with `data` and no annotations, no caBundle seen.
fn decide_data(data: Option<&SecretData>, names: &Names, now: Timestamp) -> Decision {
    decide(
        Seen {
            data,
            ..Seen::default()
        },
        names,
        now,
    )
}

/// Carries out `decision` on `data`, returning the new data.
fn carry_data(
    decision: &Decision,
    data: Option<&SecretData>,
    names: &Names,
    now: Timestamp,
) -> Result<SecretData, IssueError> {
    let seen = Seen {
        data,
        ..Seen::default()
    };
    carry_out(decision, seen, names, now).map(|written| written.data)
}

fn names() -> Names {
    Names {
        service: "jobflow-webhook".to_owned(),
        namespace: "zen-flow-system".to_owned(),
        extra: vec![San::parse("127.0.0.1")],
    }
}

/// A fresh Secret made at `now`.
fn fresh(now: Timestamp) -> SecretData {
    let decision = decide_data(None, &names(), now);
    carry_data(&decision, None, &names(), now).unwrap()
}

fn first(data: &SecretData, key: &'static str) -> CertInfo {
    inspect::certificates(data, key).unwrap().swap_remove(0)
}

#[test]
fn no_secret_means_create_everything() {
    let decision = decide_data(None, &names(), t0());
    assert_eq!(decision.ca, CaStep::Create(Why::Missing));
    assert_eq!(decision.leaf, LeafStep::Renew(Why::NewCa));
    assert!(!decision.is_keep());
    let partial: SecretData = [(TLS_CRT.to_owned(), ByteString(b"x".to_vec()))].into();
    assert_eq!(
        decide_data(Some(&partial), &names(), t0()).ca,
        CaStep::Create(Why::Missing)
    );
}

#[test]
fn a_fresh_secret_is_kept_and_serves() {
    let data = fresh(t0());
    let decision = decide_data(Some(&data), &names(), t0());
    assert!(decision.is_keep(), "{decision:?}");
    let served = check_serving(&data, &names().sans(), t0()).unwrap();
    assert_eq!(served.chain.len(), 1);
    assert!(!served.key_der.is_empty());
}

#[test]
fn lifetimes_backdating_and_sans() {
    let data = fresh(t0());
    let ca = first(&data, CA_CRT);
    let leaf = first(&data, TLS_CRT);
    let backdated = t0() - SignedDuration::from_mins(5);
    assert!(ca.is_ca);
    assert!(!leaf.is_ca);
    assert_eq!(ca.not_before, backdated);
    assert_eq!(ca.not_after, t0() + days(365));
    assert_eq!(leaf.not_before, backdated);
    assert_eq!(leaf.not_after, t0() + days(30));
    let sans: Vec<String> = leaf.sans.iter().map(ToString::to_string).collect();
    assert_eq!(
        sans,
        [
            "jobflow-webhook",
            "jobflow-webhook.zen-flow-system",
            "jobflow-webhook.zen-flow-system.svc",
            "127.0.0.1",
        ]
    );
    assert!(leaf.signed_by(&ca));
    assert_ne!(ca.public_key, leaf.public_key);
}

#[test]
fn the_leaf_is_renewed_when_a_third_of_its_life_is_left() {
    let data = fresh(t0());
    let leaf = first(&data, TLS_CRT);
    let at = renew_at(&leaf);
    // 30 d + 5 min of life: renewed 10 d + 100 s before the end.
    assert_eq!(
        at,
        leaf.not_after - SignedDuration::from_secs((30 * 86400 + 300) / 3)
    );
    let before = decide_data(Some(&data), &names(), at - SignedDuration::from_secs(1));
    assert!(before.is_keep());
    assert_eq!(before.renew_at, Some(at));
    let due = decide_data(Some(&data), &names(), at);
    assert_eq!(due.ca, CaStep::Keep);
    assert_eq!(due.leaf, LeafStep::Renew(Why::Due));

    let renewed = carry_data(&due, Some(&data), &names(), at).unwrap();
    let new_leaf = first(&renewed, TLS_CRT);
    assert_ne!(new_leaf.serial, leaf.serial);
    assert_eq!(renewed[CA_CRT], data[CA_CRT], "the CA is kept");
    assert_eq!(renewed[CA_KEY], data[CA_KEY]);
    assert!(decide_data(Some(&renewed), &names(), at).is_keep());
    check_serving(&renewed, &names().sans(), at).unwrap();
}

#[test]
fn the_ca_is_reissued_from_its_key_when_a_third_of_its_life_is_left() {
    let data = fresh(t0());
    let ca = first(&data, CA_CRT);
    let at = renew_at(&ca);
    // Keep the leaf fresh so only the CA threshold is in play.
    let leaf_due = decide_data(Some(&data), &names(), at - SignedDuration::from_secs(1));
    let data = carry_data(&leaf_due, Some(&data), &names(), at - hours(1)).unwrap();
    let before = decide_data(Some(&data), &names(), at - SignedDuration::from_secs(1));
    assert!(before.is_keep(), "{before:?}");
    assert_eq!(before.renew_at, Some(at));

    let due = decide_data(Some(&data), &names(), at);
    assert_eq!(due.ca, CaStep::Renew);
    assert_eq!(due.leaf, LeafStep::Keep);
    let renewed = carry_data(&due, Some(&data), &names(), at).unwrap();
    let cas = inspect::certificates(&renewed, CA_CRT).unwrap();
    assert_eq!(cas.len(), 2, "the new CA first, the old one after it");
    assert_eq!(cas[0].public_key, ca.public_key, "same key");
    assert_ne!(cas[0].serial, ca.serial);
    assert_eq!(cas[0].not_after, at + days(365));
    assert_eq!(cas[1].der, ca.der);
    assert_eq!(renewed[CA_KEY], data[CA_KEY]);
    // The kept leaf verifies against the re-issued CA.
    let leaf = first(&renewed, TLS_CRT);
    assert!(leaf.signed_by(&cas[0]));
    check_serving(&renewed, &names().sans(), at).unwrap();
    assert!(decide_data(Some(&renewed), &names(), at).is_keep());
}

#[test]
fn the_leaf_never_outlives_its_ca() {
    let data = fresh(t0());
    let ca = first(&data, CA_CRT);
    let late = ca.not_after - days(10);
    let decision = Decision {
        ca: CaStep::Keep,
        leaf: LeafStep::Renew(Why::Due),
        prune: false,
        ack: None,
        renew_at: None,
    };
    let renewed = carry_data(&decision, Some(&data), &names(), late).unwrap();
    assert_eq!(first(&renewed, TLS_CRT).not_after, ca.not_after);
}

#[test]
fn an_expired_leaf_is_replaced_and_not_served() {
    let data = fresh(t0());
    let leaf = first(&data, TLS_CRT);
    let after = leaf.not_after + hours(1);
    let decision = decide_data(Some(&data), &names(), after);
    assert_eq!(decision.ca, CaStep::Keep);
    assert!(
        matches!(
            decision.leaf,
            LeafStep::Renew(Why::Invalid(CheckError::Expire { key: TLS_CRT, .. }))
        ),
        "{decision:?}"
    );
    assert!(matches!(
        check_serving(&data, &names().sans(), after),
        Err(CheckError::Expire { key: TLS_CRT, .. })
    ));
}

#[test]
fn a_not_yet_valid_pair_is_replaced_and_not_served() {
    let data = fresh(t0());
    let early = t0() - hours(1);
    let decision = decide_data(Some(&data), &names(), early);
    assert!(
        matches!(
            decision.ca,
            CaStep::Create(Why::Invalid(CheckError::StartValidity { key: CA_CRT, .. }))
        ),
        "{decision:?}"
    );
    assert_eq!(decision.leaf, LeafStep::Renew(Why::NewCa));
    assert!(matches!(
        check_serving(&data, &names().sans(), early),
        Err(CheckError::StartValidity { key: TLS_CRT, .. })
    ));
    // Inside the 5 minute backdate it is fine.
    assert!(decide_data(Some(&data), &names(), t0() - SignedDuration::from_mins(4)).is_keep());
}

#[test]
fn an_expired_ca_replaces_everything() {
    let data = fresh(t0());
    let after = t0() + days(366);
    let decision = decide_data(Some(&data), &names(), after);
    assert!(matches!(
        decision.ca,
        CaStep::Create(Why::Invalid(CheckError::Expire { key: CA_CRT, .. }))
    ));
    let replaced = carry_data(&decision, Some(&data), &names(), after).unwrap();
    assert_ne!(replaced[CA_KEY], data[CA_KEY]);
    assert_eq!(inspect::certificates(&replaced, CA_CRT).unwrap().len(), 1);
    assert!(decide_data(Some(&replaced), &names(), after).is_keep());
}

#[test]
fn a_key_that_is_not_the_leafs_is_refused() {
    let mut data = fresh(t0());
    let other = fresh(t0());
    data.insert(TLS_KEY.to_owned(), other[TLS_KEY].clone());
    assert_eq!(
        decide_data(Some(&data), &names(), t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::MatchKey { key: TLS_KEY }))
    );
    assert_eq!(
        check_serving(&data, &names().sans(), t0()).unwrap_err(),
        CheckError::MatchKey { key: TLS_KEY }
    );
    let mut data = fresh(t0());
    data.insert(CA_KEY.to_owned(), other[CA_KEY].clone());
    assert_eq!(
        decide_data(Some(&data), &names(), t0()).ca,
        CaStep::Create(Why::Invalid(CheckError::MatchKey { key: CA_KEY }))
    );
}

#[test]
fn a_leaf_of_another_ca_is_refused() {
    let mut data = fresh(t0());
    let other = fresh(t0());
    data.insert(CA_CRT.to_owned(), other[CA_CRT].clone());
    data.insert(CA_KEY.to_owned(), other[CA_KEY].clone());
    assert_eq!(
        decide_data(Some(&data), &names(), t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::ChainLeaf))
    );
    assert_eq!(
        check_serving(&data, &names().sans(), t0()).unwrap_err(),
        CheckError::ChainLeaf
    );
}

#[test]
fn changed_sans_renew_the_leaf_and_missing_ones_are_not_served() {
    let data = fresh(t0());
    let mut wider = names();
    wider.extra.push(San::parse("webhook.example"));
    assert!(matches!(
        decide_data(Some(&data), &wider, t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::MatchSans { .. }))
    ));
    assert!(matches!(
        check_serving(&data, &wider.sans(), t0()),
        Err(CheckError::MatchSans { .. })
    ));
    // Serving only needs the wanted names to be there.
    let mut narrower = names();
    narrower.extra.clear();
    check_serving(&data, &narrower.sans(), t0()).unwrap();
    assert!(matches!(
        decide_data(Some(&data), &narrower, t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::MatchSans { .. }))
    ));
}

#[test]
fn garbage_and_non_ca_certificates_are_replaced() {
    let mut data = fresh(t0());
    data.insert(CA_CRT.to_owned(), ByteString(b"not a certificate".to_vec()));
    assert!(matches!(
        decide_data(Some(&data), &names(), t0()).ca,
        CaStep::Create(Why::Invalid(CheckError::ParseCertificate {
            key: CA_CRT,
            ..
        }))
    ));
    let mut data = fresh(t0());
    data.insert(CA_CRT.to_owned(), data[TLS_CRT].clone());
    data.insert(CA_KEY.to_owned(), data[TLS_KEY].clone());
    assert_eq!(
        decide_data(Some(&data), &names(), t0()).ca,
        CaStep::Create(Why::Invalid(CheckError::ConfirmCa))
    );
    let mut data = fresh(t0());
    data.insert(
        TLS_KEY.to_owned(),
        ByteString(b"-----BEGIN PRIVATE KEY-----\n".to_vec()),
    );
    assert!(matches!(
        check_serving(&data, &names().sans(), t0()),
        Err(CheckError::ParseKey { key: TLS_KEY, .. })
    ));
}

#[test]
fn sans_are_the_service_names_plus_extras() {
    let names = Names {
        service: "svc".to_owned(),
        namespace: "ns".to_owned(),
        extra: vec![San::parse("::1"), San::parse("Svc")],
    };
    let sans: Vec<String> = names.sans().iter().map(ToString::to_string).collect();
    assert_eq!(sans, ["svc", "svc.ns", "svc.ns.svc", "::1"]);
}

/// A Secret as the agent keeps it: data and annotations.
#[derive(Clone, Debug, Default)]
struct Secret {
    data: SecretData,
    annotations: Annotations,
}

impl Secret {
    fn fresh(now: Timestamp) -> Self {
        Self {
            data: fresh(now),
            annotations: Annotations::new(),
        }
    }

    fn seen<'a>(&'a self, bundles: &'a [Vec<u8>]) -> Seen<'a> {
        Seen {
            data: Some(&self.data),
            annotations: Some(&self.annotations),
            bundles,
        }
    }

    fn decide(&self, bundles: &[Vec<u8>], now: Timestamp) -> Decision {
        decide(self.seen(bundles), &names(), now)
    }

    /// Decides and writes, as the leader does.
    fn step(&mut self, bundles: &[Vec<u8>], now: Timestamp) -> Decision {
        let decision = self.decide(bundles, now);
        if !decision.is_keep() {
            let written = carry_out(&decision, self.seen(bundles), &names(), now).unwrap();
            self.data = written.data;
            for (key, value) in written.annotations {
                match value {
                    Some(value) => self.annotations.insert(key, value),
                    None => self.annotations.remove(&key),
                };
            }
        }
        decision
    }

    fn bundle(&self) -> Vec<u8> {
        self.data[CA_CRT].0.clone()
    }

    fn cas(&self) -> Vec<CertInfo> {
        inspect::certificates(&self.data, CA_CRT).unwrap()
    }

    fn leaf(&self) -> CertInfo {
        first(&self.data, TLS_CRT)
    }

    fn request(&mut self, value: &str) {
        self.annotations.insert(ROTATE.to_owned(), value.to_owned());
    }
}

#[test]
fn requests_parse_with_colons_in_ids() {
    let req = |id: &str, ca| {
        Some(Request {
            id: id.to_owned(),
            ca,
        })
    };
    assert_eq!(parse_request("r1"), req("r1", false));
    assert_eq!(parse_request("r1:ca"), req("r1", true));
    assert_eq!(
        parse_request("2026-12-02T10:00:00+00:00"),
        req("2026-12-02T10:00:00+00:00", false)
    );
    assert_eq!(
        parse_request("2026-12-02T10:00:00+00:00:ca"),
        req("2026-12-02T10:00:00+00:00", true)
    );
    assert_eq!(parse_request(" "), None);
    assert_eq!(parse_request(":ca"), None);
}

#[test]
fn a_leaf_request_renews_the_leaf_once_and_acknowledges_it() {
    let mut secret = Secret::fresh(t0());
    let before = secret.leaf();
    let ca = secret.cas();
    secret.request("r1");
    let now = t0() + hours(1);
    let decision = secret.step(&[], now);
    assert_eq!(decision.leaf, LeafStep::Renew(Why::Requested));
    assert_eq!(decision.ca, CaStep::Keep);
    assert_eq!(decision.ack.as_deref(), Some("r1"));
    assert_eq!(secret.annotations[ROTATED], "r1");
    assert_ne!(secret.leaf().serial, before.serial);
    assert_eq!(secret.cas(), ca, "the CA stays");
    // Carried out: nothing more to do until the next request.
    assert!(secret.decide(&[], now).is_keep());
    secret.request("r2");
    assert_eq!(secret.step(&[], now).ack.as_deref(), Some("r2"));
}

#[test]
fn a_ca_key_change_goes_in_phases_and_never_signs_before_the_bundle_is_trusted() {
    let mut secret = Secret::fresh(t0());
    let old = secret.cas().swap_remove(0);
    let old_leaf = secret.leaf();
    secret.request("k1:ca");
    let mut now = t0() + hours(1);

    // 1. Stage: the new CA joins the bundle after the signing one; the leaf stays.
    assert_eq!(secret.step(&[], now).ca, CaStep::Stage);
    let cas = secret.cas();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0], old, "the old CA still signs");
    let new = cas[1].clone();
    assert_ne!(new.public_key, old.public_key, "a new key");
    assert_eq!(secret.annotations[CA_NEXT], new.serial);
    assert!(secret.data.contains_key(CA_NEXT_KEY));
    assert_eq!(secret.leaf(), old_leaf);
    assert!(!secret.annotations.contains_key(ROTATED), "not done yet");

    // 2. Not switched while no caBundle holds it, however long it waits.
    let old_bundle = vec![pem_bundle(&[&old])];
    for _ in 0..3 {
        now += hours(24);
        assert!(secret.decide(&[], now).is_keep());
        assert!(secret.decide(&old_bundle, now).is_keep());
    }

    // 3. Every caBundle holds it: the time is recorded, then it waits the settle time.
    let bundles = vec![secret.bundle(), secret.bundle()];
    let mixed = vec![secret.bundle(), old_bundle[0].clone()];
    assert!(secret.decide(&mixed, now).is_keep(), "one webhook lacks it");
    assert_eq!(secret.step(&bundles, now).ca, CaStep::Trust);
    assert_eq!(secret.annotations[CA_NEXT_TRUSTED], now.to_string());
    let settle = decide::signed(TRUST_SETTLE);
    let waiting = secret.decide(&bundles, now + settle - SignedDuration::from_secs(1));
    assert!(waiting.is_keep());
    assert_eq!(waiting.renew_at, Some(now + settle));

    // 4. Switch: the new CA signs a new leaf and comes first; the old stays after it.
    now += settle;
    let decision = secret.step(&bundles, now);
    assert_eq!(decision.ca, CaStep::Switch);
    assert_eq!(decision.leaf, LeafStep::Renew(Why::NewCa));
    assert_eq!(decision.ack.as_deref(), Some("k1"));
    let cas = secret.cas();
    assert_eq!(cas[0].der, new.der);
    assert_eq!(cas[1], old, "leaves the old CA signed keep verifying");
    assert!(secret.leaf().signed_by(&new));
    assert!(!secret.leaf().signed_by(&old));
    assert!(!secret.data.contains_key(CA_NEXT_KEY));
    assert!(!secret.annotations.contains_key(CA_NEXT));
    assert!(!secret.annotations.contains_key(CA_NEXT_TRUSTED));
    assert_eq!(secret.annotations[ROTATED], "k1");
    check_serving(&secret.data, &names().sans(), now).unwrap();
    assert!(secret.decide(&[secret.bundle()], now).is_keep());
}

#[test]
fn a_bundle_that_drops_the_staged_ca_restarts_the_settle_time() {
    let mut secret = Secret::fresh(t0());
    let old = secret.cas().swap_remove(0);
    secret.request("k1:ca");
    let now = t0() + hours(1);
    secret.step(&[], now);
    let bundles = vec![secret.bundle()];
    assert_eq!(secret.step(&bundles, now).ca, CaStep::Trust);
    // Reverted by hand before the switch: forget the trust time.
    let reverted = vec![pem_bundle(&[&old])];
    let later = now + decide::signed(TRUST_SETTLE);
    assert_eq!(secret.step(&reverted, later).ca, CaStep::Distrust);
    assert!(!secret.annotations.contains_key(CA_NEXT_TRUSTED));
    // Put back: trusted anew from now, switched a settle time later.
    assert_eq!(secret.step(&bundles, later).ca, CaStep::Trust);
    assert!(secret.decide(&bundles, later).is_keep());
}

#[test]
fn a_new_leader_resumes_a_key_change_from_the_secret_alone() {
    let mut secret = Secret::fresh(t0());
    secret.request("k1:ca");
    let now = t0() + hours(1);
    secret.step(&[], now);
    let staged = secret.cas()[1].clone();
    let bundles = vec![secret.bundle()];
    secret.step(&bundles, now);
    // Another leader holds only the Secret (a clone): it switches to the same staged CA.
    let mut resumed = secret.clone();
    let decision = resumed.step(&bundles, now + decide::signed(TRUST_SETTLE));
    assert_eq!(decision.ca, CaStep::Switch);
    assert_eq!(resumed.cas()[0].der, staged.der);
}

#[test]
fn a_broken_staged_key_is_staged_again() {
    let mut secret = Secret::fresh(t0());
    secret.request("k1:ca");
    let now = t0() + hours(1);
    secret.step(&[], now);
    let other = fresh(t0());
    secret
        .data
        .insert(CA_NEXT_KEY.to_owned(), other[CA_KEY].clone());
    assert_eq!(secret.decide(&[secret.bundle()], now).ca, CaStep::Stage);
}

#[test]
fn expired_cas_are_pruned_but_never_the_signing_one() {
    // A CA renewed from its key keeps the old one after it until that expires.
    let mut secret = Secret::fresh(t0());
    let old = secret.cas().swap_remove(0);
    let due = renew_at(&old);
    assert_eq!(secret.step(&[], due).ca, CaStep::Renew);
    assert_eq!(secret.cas().len(), 2);
    assert_eq!(secret.cas()[1], old);
    // The leaf expired in the meantime: renewed by the new CA, nothing pruned yet, and the
    // old CA's end is the next moment to decide again.
    let before_end = old.not_after - SignedDuration::from_secs(1);
    assert!(!secret.step(&[], before_end).prune);
    let kept = secret.decide(&[], before_end);
    assert!(kept.is_keep(), "{kept:?}");
    assert_eq!(kept.renew_at, Some(old.not_after));
    let decision = secret.step(&[], old.not_after);
    assert!(decision.prune, "{decision:?}");
    assert_eq!(secret.cas().len(), 1);
    assert_ne!(secret.cas()[0], old);
    assert!(secret.decide(&[], old.not_after).is_keep());
}

#[test]
fn a_request_on_a_broken_secret_is_carried_out_by_the_fresh_one() {
    let mut secret = Secret::default();
    secret.request("r1:ca");
    let decision = secret.step(&[], t0());
    assert_eq!(decision.ca, CaStep::Create(Why::Missing));
    assert_eq!(secret.annotations[ROTATED], "r1");
}

#[test]
fn readiness_needs_the_served_leaf_to_chain_in_every_bundle() {
    let secret = Secret::fresh(t0());
    let other = Secret::fresh(t0());
    let leaf = secret.leaf();
    assert!(!chains_in_all(&[], &leaf, t0()), "no configuration seen");
    assert!(chains_in_all(&[secret.bundle()], &leaf, t0()));
    assert!(!chains_in_all(
        &[secret.bundle(), other.bundle()],
        &leaf,
        t0()
    ));
    let both = [secret.bundle(), other.bundle()].concat();
    assert!(chains_in_all(&[both], &leaf, t0()));
    let ca = secret.cas().swap_remove(0);
    assert!(
        !chains_in_all(&[secret.bundle()], &leaf, ca.not_after),
        "CA expired"
    );
}

fn pem_bundle(cas: &[&CertInfo]) -> Vec<u8> {
    cas.iter()
        .map(|ca| pem::encode(&pem::Pem::new("CERTIFICATE", ca.der.clone())))
        .collect::<String>()
        .into_bytes()
}
