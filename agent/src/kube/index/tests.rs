use std::time::Instant;

use jobflow::api::reasons;
use jobflow::api::{FlowPhase, JobFlowStatus};
use kube::runtime::reflector::{self, store::Writer};
use serde_json::json;

use super::*;
use crate::kube::slim::CachedJob;
use crate::testing::{flow, job, json_of, with_templates};

/// A flow cache and the index, fed as the watch feeds them.
struct Flows {
    store: Store<JobFlow>,
    writer: Writer<JobFlow>,
    index: FlowIndex,
}

impl Flows {
    fn new() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer,
            index: FlowIndex::default(),
        }
    }

    /// One watch event, through the same steps as `caches::reflect`.
    fn feed(&mut self, event: Event<JobFlow>) -> Event<JobFlow> {
        let event = match event {
            Event::Apply(mut f) => {
                self.index.keep_flow(&mut f);
                Event::Apply(f)
            }
            Event::InitApply(mut f) => {
                self.index.keep_flow(&mut f);
                Event::InitApply(f)
            }
            other => other,
        };
        self.writer.apply_watcher_event(&event);
        self.index.flow_event(&self.store, &event);
        event
    }

    /// Feeds `f` as an update and returns it as cached.
    fn apply(&mut self, f: &JobFlow) -> JobFlow {
        match self.feed(Event::Apply(f.clone())) {
            Event::Apply(cached) => cached,
            _ => unreachable!(),
        }
    }
}

fn cached_job(name: &str, flow: &str) -> CachedJob {
    CachedJob::from(job(name, flow, "u"))
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn key(name: &str) -> FlowKey {
    ("ns".to_owned(), name.to_owned())
}

/// Feeds Job watch events to a Job cache and to `index`, as the Job watch does.
fn job_feed(index: &FlowIndex) -> impl FnMut(Event<CachedJob>) + '_ {
    let (store, mut writer) = reflector::store::<CachedJob>();
    move |event| {
        writer.apply_watcher_event(&event);
        index.apply(Kind::Jobs, &store, &event);
    }
}

#[test]
fn finds_a_flows_objects_and_forgets_deleted_ones() {
    let index = FlowIndex::default();
    let mut feed = job_feed(&index);
    feed(Event::Init);
    feed(Event::InitApply(cached_job("f-a-1", "f")));
    feed(Event::InitApply(cached_job("g-a-1", "g")));
    feed(Event::InitDone);
    feed(Event::Apply(cached_job("f-b-1", "f")));
    assert_eq!(
        sorted(index.names(Kind::Jobs, &key("f"))),
        ["f-a-1", "f-b-1"]
    );
    assert_eq!(index.names(Kind::Jobs, &key("g")), ["g-a-1"]);
    assert!(index.names(Kind::Pods, &key("f")).is_empty(), "kinds apart");
    assert!(
        index
            .names(Kind::Jobs, &("other".to_owned(), "f".to_owned()))
            .is_empty()
    );
    feed(Event::Delete(cached_job("f-a-1", "f")));
    assert_eq!(index.names(Kind::Jobs, &key("f")), ["f-b-1"]);
    feed(Event::Delete(cached_job("g-a-1", "g")));
    assert_eq!(index.lock().len(), 1, "an empty entry goes");
}

#[test]
fn a_relist_drops_what_it_no_longer_lists() {
    let index = FlowIndex::default();
    let mut feed = job_feed(&index);
    feed(Event::Init);
    feed(Event::InitApply(cached_job("f-a-1", "f")));
    feed(Event::InitDone);
    // Deleted while the watch was down: the relist no longer lists it.
    feed(Event::Init);
    feed(Event::InitApply(cached_job("f-b-1", "f")));
    assert_eq!(
        sorted(index.names(Kind::Jobs, &key("f"))),
        ["f-a-1", "f-b-1"],
        "during the relist the index may hold more than the store, never less"
    );
    feed(Event::InitDone);
    assert_eq!(index.names(Kind::Jobs, &key("f")), ["f-b-1"]);
    assert_eq!(index.lock().len(), 1);
}

#[test]
fn the_cache_holds_no_template_and_a_reconcile_gets_them_all_back() {
    let mut flows = Flows::new();
    let original = with_templates(3);
    let cached = flows.apply(&original);
    assert!(cached.all_steps().all(|step| step.template.is_none()));
    assert_eq!(
        json_of(&flows.index.restore(&cached).unwrap()),
        json_of(&original)
    );
    // The next event of the same generation (a status write) is stripped the same way.
    let mut again = original.clone();
    again.metadata.resource_version = Some("9".into());
    let again = flows.apply(&again);
    assert!(again.all_steps().all(|step| step.template.is_none()));
    assert_eq!(flows.index.restore(&again).unwrap().spec, original.spec);
}

#[test]
fn another_generation_is_not_restored_with_the_wrong_templates() {
    let mut flows = Flows::new();
    let old = flows.apply(&with_templates(1));
    let mut new = with_templates(2);
    new.spec.steps[0].template.as_mut().unwrap()["spec"]["backoffLimit"] = json!(2);
    let expected = new.clone();
    let new = flows.apply(&new);
    assert!(flows.index.restore(&old).is_none(), "the cache moved on");
    assert_eq!(
        json_of(&flows.index.restore(&new).unwrap()),
        json_of(&expected)
    );
}

#[test]
fn deleted_flows_are_forgotten_and_flows_without_a_uid_are_left_alone() {
    let mut flows = Flows::new();
    let f = flows.apply(&with_templates(1));
    flows.feed(Event::Delete(f.clone()));
    assert!(flows.index.restore(&f).is_none());
    assert_eq!(flows.index.sizes(), StateEntries::default());
    let mut no_uid = with_templates(1);
    no_uid.metadata.uid = None;
    let expected = no_uid.clone();
    flows.index.keep_flow(&mut no_uid);
    assert_eq!(json_of(&no_uid), json_of(&expected));
    assert_eq!(
        json_of(&flows.index.restore(&no_uid).unwrap()),
        json_of(&expected)
    );
}

#[test]
fn compiles_once_per_generation() {
    let mut flows = Flows::new();
    let mut f = flow("f", "u1", None, 0);
    f.metadata.generation = Some(1);
    let f = flows.apply(&f);
    let first = flows.index.compiled(&f);
    assert!(
        Arc::ptr_eq(&first, &flows.index.compiled(&f)),
        "same generation"
    );
    let mut next = f.clone();
    next.metadata.generation = Some(2);
    let next = flows.apply(&next);
    assert!(
        !Arc::ptr_eq(&first, &flows.index.compiled(&next)),
        "new generation"
    );
    assert_eq!(flows.index.sizes().flow_states, 1, "one entry per flow");
}

#[test]
fn failures_count_per_flow_and_success_resets_them() {
    let mut flows = Flows::new();
    let f = flows.apply(&flow("f", "u", None, 0));
    assert_eq!(flows.index.reconcile_failed(&f), 1);
    assert_eq!(flows.index.reconcile_failed(&f), 2);
    flows.index.reconcile_succeeded(&f);
    assert_eq!(flows.index.reconcile_failed(&f), 1);
    let gone = flow("g", "v", None, 0);
    assert_eq!(
        flows.index.reconcile_failed(&gone),
        1,
        "no state, none kept"
    );
    assert_eq!(flows.index.reconcile_failed(&gone), 1);
}

#[test]
fn refusals_are_kept_per_flow_and_bounded() {
    let mut flows = Flows::new();
    let f = flows.apply(&flow("f", "u", None, 0));
    let g = flows.apply(&flow("g", "v", None, 0));
    let refusal = || Refusal {
        reason: reasons::JOB_REJECTED,
        message: "invalid".into(),
    };
    flows.index.refuse(&f, [("j1".to_owned(), refusal())]);
    assert_eq!(flows.index.refused(&f).len(), 1);
    assert!(flows.index.refused(&g).is_empty());
    flows
        .index
        .refuse(&f, (0..2000).map(|i| (format!("k{i:04}"), refusal())));
    assert_eq!(flows.index.refused(&f).len(), entry::MAX_REFUSALS);
}

#[test]
fn a_flow_recreated_under_its_name_starts_from_a_new_state() {
    let mut flows = Flows::new();
    let old = flows.apply(&flow("f", "u1", None, 0));
    flows.index.reconcile_failed(&old);
    // The relist shows a new flow of that name (the old one's delete event was missed).
    let new = flows.apply(&flow("f", "u2", None, 0));
    assert_eq!(flows.index.reconcile_failed(&new), 1);
    assert_eq!(
        flows.index.reconcile_failed(&old),
        1,
        "the old UID has no state"
    );
}

/// Every part of a flow's state: templates, compiled spec, a failure, a refusal, our status
/// write and a Job we created, none of them shown by the cache yet.
fn fill(flows: &mut Flows, name: &str, uid: &str) -> JobFlow {
    let mut f = with_templates(1);
    f.metadata.name = Some(name.to_owned());
    f.metadata.uid = Some(uid.to_owned());
    let f = flows.apply(&f);
    flows.index.compiled(&f);
    flows.index.reconcile_failed(&f);
    let refusal = Refusal {
        reason: reasons::JOB_REJECTED,
        message: "invalid".into(),
    };
    flows.index.refuse(&f, [("x".to_owned(), refusal)]);
    let mut written = f.clone();
    written.metadata.resource_version = Some("5".into());
    written.status = Some(JobFlowStatus {
        phase: Some(FlowPhase::Running),
        ..JobFlowStatus::default()
    });
    flows.index.record_written(written, Instant::now());
    let mut created = CachedJob::from(job(&format!("{name}-a-1"), name, uid));
    created.metadata.resource_version = Some("4".into());
    flows.index.record_job(&f, created, Instant::now());
    f
}

#[test]
fn the_size_gauge_counts_every_part_of_the_state() {
    let mut flows = Flows::new();
    fill(&mut flows, "f", "u");
    assert_eq!(
        flows.index.sizes(),
        StateEntries {
            flow_states: 1,
            written: 1,
            applied: 1,
            templates: 1,
        }
    );
}

#[test]
fn a_relist_forgets_every_part_of_an_unlisted_flows_state() {
    let mut flows = Flows::new();
    fill(&mut flows, "f", "u");
    let kept = fill(&mut flows, "g", "v");
    // The watch restarts; `f` was deleted meanwhile, so the relist lists only `g`.
    flows.feed(Event::Init);
    flows.feed(Event::InitApply(kept));
    flows.feed(Event::InitDone);
    assert_eq!(
        flows.index.sizes(),
        StateEntries {
            flow_states: 1,
            written: 1,
            applied: 1,
            templates: 1,
        },
        "g's state only: f's templates, status write and Jobs went with it"
    );
}

#[test]
fn a_write_for_a_flow_already_deleted_keeps_nothing() {
    let mut flows = Flows::new();
    let f = flows.apply(&flow("f", "u", None, 0));
    flows.feed(Event::Delete(f.clone()));
    let mut written = f.clone();
    written.metadata.resource_version = Some("5".into());
    flows.index.record_written(written, Instant::now());
    flows
        .index
        .record_job(&f, cached_job("f-a-1", "f"), Instant::now());
    flows.index.reconcile_failed(&f);
    assert_eq!(flows.index.sizes(), StateEntries::default());
}

#[test]
fn our_status_write_is_read_until_the_watch_catches_up() {
    let mut flows = Flows::new();
    let mut f = flow("f", "u", None, 0);
    f.metadata.resource_version = Some("10".into());
    let cached = Arc::new(flows.apply(&f));
    let now = Instant::now();
    let mut written = f.clone();
    written.metadata.resource_version = Some("12".into());
    written.status = Some(JobFlowStatus {
        phase: Some(FlowPhase::Running),
        ..JobFlowStatus::default()
    });
    flows.index.record_written(written.clone(), now);
    let seen = flows.index.freshest(Arc::clone(&cached), now);
    assert_eq!(
        seen.status.as_ref().and_then(|s| s.phase),
        Some(FlowPhase::Running)
    );
    // The watch delivers our write: the entry goes before any reconcile reads it.
    flows.apply(&written);
    assert_eq!(flows.index.sizes().written, 0);
    assert!(Arc::ptr_eq(
        &flows.index.freshest(Arc::clone(&cached), now),
        &cached
    ));
}
