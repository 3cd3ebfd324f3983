use std::time::Instant;

use jobflow::labels;

use super::*;
use crate::kube::slim::{CachedJob, CachedPod};
use crate::testing::{flow, job, pod};

#[test]
fn a_view_holds_only_what_belongs_to_the_flow() {
    let (caches, mut writers) = Caches::new(None);
    let me = flow("f", "u", Some("k"), 10);
    caches.put_flow(&mut writers, me.clone());
    caches.put_flow(&mut writers, flow("older", "o", Some("k"), 1));
    caches.put_flow(&mut writers, flow("free", "x", None, 1));
    for (name, owner_flow, owner_uid) in [
        ("f-a-1", "f", "u"),
        ("f-b-1", "f", "u"),
        ("g-a-1", "g", "v"),
        // A predecessor's Job: the same flow name, another UID.
        ("f-old-1", "f", "old"),
    ] {
        caches.put_job(
            &mut writers,
            CachedJob::from(job(name, owner_flow, owner_uid)),
        );
    }
    let mut succeeded = pod(
        "f-a-1-x",
        ("job-name", "f-a-1"),
        "Succeeded",
        Some("{\"n\":1}"),
    );
    succeeded
        .metadata
        .labels
        .get_or_insert_default()
        .insert(labels::FLOW.to_owned(), "f".to_owned());
    let mut others = pod(
        "g-a-1-x",
        ("job-name", "g-a-1"),
        "Succeeded",
        Some("not mine"),
    );
    others
        .metadata
        .labels
        .get_or_insert_default()
        .insert(labels::FLOW.to_owned(), "g".to_owned());
    caches.put_pod(&mut writers, CachedPod::from(succeeded));
    caches.put_pod(&mut writers, CachedPod::from(others));

    let view = View::of(&caches, Arc::new(me), Instant::now()).unwrap();
    let o = view.observed();
    let mut names: Vec<&str> = o
        .jobs
        .iter()
        .filter_map(|j| j.metadata.name.as_deref())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["f-a-1", "f-b-1"]);
    assert_eq!(o.termination_messages.len(), 1);
    assert_eq!(o.termination_messages["f-a-1"], "{\"n\":1}");
    assert_eq!(o.peers.len(), 1);
    assert_eq!(o.peers[0].name, "older");
    assert_eq!(view.recheck_at, None);
}

#[test]
fn a_job_we_created_is_seen_before_the_watch_shows_it() {
    let (caches, mut writers) = Caches::new(None);
    let me = flow("f", "u", None, 0);
    caches.put_flow(&mut writers, me.clone());
    let now = Instant::now();
    caches
        .index
        .record_job(&me, CachedJob::from(job("f-a-1", "f", "u")), now);
    caches
        .index
        .record_job(&me, CachedJob::from(job("g-a-1", "g", "v")), now);
    let view = View::of(&caches, Arc::new(me.clone()), now).unwrap();
    let names: Vec<&str> = view
        .observed()
        .jobs
        .iter()
        .filter_map(|j| j.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["f-a-1"], "not another flow's");
    assert!(
        view.recheck_at.is_some(),
        "look again when it stops standing in"
    );
    // The watch shows it: one Job, from the cache.
    caches.put_job(&mut writers, CachedJob::from(job("f-a-1", "f", "u")));
    let view = View::of(&caches, Arc::new(me), now).unwrap();
    assert_eq!(view.observed().jobs.len(), 1);
    assert_eq!(view.recheck_at, None);
}
