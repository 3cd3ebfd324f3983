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

fn names() -> Names {
    Names {
        service: "jobflow-webhook".to_owned(),
        namespace: "zen-flow-system".to_owned(),
        extra: vec![San::parse("127.0.0.1")],
    }
}

/// A fresh Secret made at `now`.
fn fresh(now: Timestamp) -> SecretData {
    let decision = decide(None, &names(), now);
    carry_out(&decision, None, &names(), now).unwrap()
}

fn first(data: &SecretData, key: &'static str) -> CertInfo {
    inspect::certificates(data, key).unwrap().swap_remove(0)
}

#[test]
fn no_secret_means_create_everything() {
    let decision = decide(None, &names(), t0());
    assert_eq!(decision.ca, CaStep::Create(Why::Missing));
    assert_eq!(decision.leaf, LeafStep::Renew(Why::NewCa));
    assert!(!decision.is_keep());
    let partial: SecretData = [(TLS_CRT.to_owned(), ByteString(b"x".to_vec()))].into();
    assert_eq!(
        decide(Some(&partial), &names(), t0()).ca,
        CaStep::Create(Why::Missing)
    );
}

#[test]
fn a_fresh_secret_is_kept_and_serves() {
    let data = fresh(t0());
    let decision = decide(Some(&data), &names(), t0());
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
    let before = decide(Some(&data), &names(), at - SignedDuration::from_secs(1));
    assert!(before.is_keep());
    assert_eq!(before.renew_at, Some(at));
    let due = decide(Some(&data), &names(), at);
    assert_eq!(due.ca, CaStep::Keep);
    assert_eq!(due.leaf, LeafStep::Renew(Why::Due));

    let renewed = carry_out(&due, Some(&data), &names(), at).unwrap();
    let new_leaf = first(&renewed, TLS_CRT);
    assert_ne!(new_leaf.serial, leaf.serial);
    assert_eq!(renewed[CA_CRT], data[CA_CRT], "the CA is kept");
    assert_eq!(renewed[CA_KEY], data[CA_KEY]);
    assert!(decide(Some(&renewed), &names(), at).is_keep());
    check_serving(&renewed, &names().sans(), at).unwrap();
}

#[test]
fn the_ca_is_reissued_from_its_key_when_a_third_of_its_life_is_left() {
    let data = fresh(t0());
    let ca = first(&data, CA_CRT);
    let at = renew_at(&ca);
    // Keep the leaf fresh so only the CA threshold is in play.
    let leaf_due = decide(Some(&data), &names(), at - SignedDuration::from_secs(1));
    let data = carry_out(&leaf_due, Some(&data), &names(), at - hours(1)).unwrap();
    let before = decide(Some(&data), &names(), at - SignedDuration::from_secs(1));
    assert!(before.is_keep(), "{before:?}");
    assert_eq!(before.renew_at, Some(at));

    let due = decide(Some(&data), &names(), at);
    assert_eq!(due.ca, CaStep::Renew);
    assert_eq!(due.leaf, LeafStep::Keep);
    let renewed = carry_out(&due, Some(&data), &names(), at).unwrap();
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
    assert!(decide(Some(&renewed), &names(), at).is_keep());
}

#[test]
fn the_leaf_never_outlives_its_ca() {
    let data = fresh(t0());
    let ca = first(&data, CA_CRT);
    let late = ca.not_after - days(10);
    let decision = Decision {
        ca: CaStep::Keep,
        leaf: LeafStep::Renew(Why::Due),
        renew_at: None,
    };
    let renewed = carry_out(&decision, Some(&data), &names(), late).unwrap();
    assert_eq!(first(&renewed, TLS_CRT).not_after, ca.not_after);
}

#[test]
fn an_expired_leaf_is_replaced_and_not_served() {
    let data = fresh(t0());
    let leaf = first(&data, TLS_CRT);
    let after = leaf.not_after + hours(1);
    let decision = decide(Some(&data), &names(), after);
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
    let decision = decide(Some(&data), &names(), early);
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
    assert!(decide(Some(&data), &names(), t0() - SignedDuration::from_mins(4)).is_keep());
}

#[test]
fn an_expired_ca_replaces_everything() {
    let data = fresh(t0());
    let after = t0() + days(366);
    let decision = decide(Some(&data), &names(), after);
    assert!(matches!(
        decision.ca,
        CaStep::Create(Why::Invalid(CheckError::Expire { key: CA_CRT, .. }))
    ));
    let replaced = carry_out(&decision, Some(&data), &names(), after).unwrap();
    assert_ne!(replaced[CA_KEY], data[CA_KEY]);
    assert_eq!(inspect::certificates(&replaced, CA_CRT).unwrap().len(), 1);
    assert!(decide(Some(&replaced), &names(), after).is_keep());
}

#[test]
fn a_key_that_is_not_the_leafs_is_refused() {
    let mut data = fresh(t0());
    let other = fresh(t0());
    data.insert(TLS_KEY.to_owned(), other[TLS_KEY].clone());
    assert_eq!(
        decide(Some(&data), &names(), t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::MatchKey { key: TLS_KEY }))
    );
    assert_eq!(
        check_serving(&data, &names().sans(), t0()).unwrap_err(),
        CheckError::MatchKey { key: TLS_KEY }
    );
    let mut data = fresh(t0());
    data.insert(CA_KEY.to_owned(), other[CA_KEY].clone());
    assert_eq!(
        decide(Some(&data), &names(), t0()).ca,
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
        decide(Some(&data), &names(), t0()).leaf,
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
        decide(Some(&data), &wider, t0()).leaf,
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
        decide(Some(&data), &narrower, t0()).leaf,
        LeafStep::Renew(Why::Invalid(CheckError::MatchSans { .. }))
    ));
}

#[test]
fn garbage_and_non_ca_certificates_are_replaced() {
    let mut data = fresh(t0());
    data.insert(CA_CRT.to_owned(), ByteString(b"not a certificate".to_vec()));
    assert!(matches!(
        decide(Some(&data), &names(), t0()).ca,
        CaStep::Create(Why::Invalid(CheckError::ParseCertificate {
            key: CA_CRT,
            ..
        }))
    ));
    let mut data = fresh(t0());
    data.insert(CA_CRT.to_owned(), data[TLS_CRT].clone());
    data.insert(CA_KEY.to_owned(), data[TLS_KEY].clone());
    assert_eq!(
        decide(Some(&data), &names(), t0()).ca,
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
