//! The step templates of cached flows, kept as JSON text beside the flow cache.
//!
//! A template is a `serde_json::Value`, and every JSON object in it is a `BTreeMap` whose
//! smallest node takes about 630 bytes whatever it holds: a 250-byte Job template costs about
//! 4.6 KB as a tree. With 1,000 flows of 20 steps that was 92 MB of a 175 MB peak (heaptrack).
//! Only a reconcile reads templates (the triggers, the concurrency peers and the metrics read
//! names, labels and status), so the cached flow holds `None` in their place, this table holds
//! them as text for the flow's generation, and [`Templates::restore`] puts them back for the
//! reconcile. A generation's templates never change: the API server bumps
//! `metadata.generation` on every spec change.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jobflow::api::{JobFlow, Step};

/// One flow's templates: its generation and each step's template as JSON text, steps first,
/// then finally steps, in spec order.
#[derive(Debug)]
struct Kept {
    generation: Option<i64>,
    templates: Vec<Option<Box<str>>>,
}

/// The templates of the cached flows, by flow UID.
#[derive(Debug, Default)]
pub struct Templates {
    by_flow: Mutex<HashMap<String, Kept>>,
}

impl Templates {
    /// Moves `flow`'s templates into the table (the flow keeps `None` in their place). When the
    /// table already holds this generation's, they are only dropped from the flow, not written
    /// again. A flow without a UID (never one from the API server) keeps its templates.
    pub fn take(&self, flow: &mut JobFlow) {
        let Some(uid) = flow.metadata.uid.clone() else {
            return;
        };
        let generation = flow.metadata.generation;
        let mut by_flow = self.lock();
        let held = by_flow
            .get(&uid)
            .is_some_and(|kept| kept.generation == generation);
        let steps = steps_mut(flow);
        if held {
            for step in steps {
                step.template = None;
            }
            return;
        }
        let templates = steps
            .map(|step| {
                let template = step.template.take()?;
                Some(template.to_string().into_boxed_str())
            })
            .collect();
        by_flow.insert(
            uid,
            Kept {
                generation,
                templates,
            },
        );
    }

    /// `flow` with its templates back, or `None` when the table does not hold its generation's
    /// (the cache moved on to a newer one, whose event wakes the flow again). A flow without a
    /// UID comes back as it is.
    pub fn restore(&self, flow: &JobFlow) -> Option<JobFlow> {
        let mut restored = flow.clone();
        let Some(uid) = flow.metadata.uid.as_deref() else {
            return Some(restored);
        };
        let by_flow = self.lock();
        let kept = by_flow
            .get(uid)
            .filter(|kept| kept.generation == flow.metadata.generation)?;
        let steps: Vec<&mut Step> = steps_mut(&mut restored).collect();
        if steps.len() != kept.templates.len() {
            return None;
        }
        for (step, text) in steps.into_iter().zip(&kept.templates) {
            step.template = match text {
                Some(text) => Some(serde_json::from_str(text).ok()?),
                None => None,
            };
        }
        Some(restored)
    }

    /// Drops the templates of a deleted flow.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps only the templates of `live` flows.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        self.by_flow.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every step of `flow`, steps then finally steps (the order of `JobFlowSpec::all_steps`).
fn steps_mut(flow: &mut JobFlow) -> impl Iterator<Item = &mut Step> {
    flow.spec
        .steps
        .iter_mut()
        .chain(flow.spec.finally.iter_mut())
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::observe::tests::flow;
    use serde_json::json;

    fn json_of(flow: &JobFlow) -> serde_json::Value {
        serde_json::to_value(flow).unwrap()
    }

    /// A flow with two steps and a finally step, one of them without a template (manual).
    fn with_templates(generation: i64) -> JobFlow {
        let mut f = flow("f", "u", None, 0);
        f.metadata.generation = Some(generation);
        let step = |name: &str, template: Option<serde_json::Value>| {
            let mut step: Step = serde_json::from_value(json!({"name": name})).unwrap();
            step.template = template;
            step
        };
        let job = |arg: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "args": [arg]}]}}}})
        };
        f.spec.steps = vec![step("a", Some(job("a"))), step("gate", None)];
        f.spec.finally = vec![step("z", Some(job("{{steps.a.phase}}")))];
        f
    }

    #[test]
    fn the_cache_holds_no_template_and_a_reconcile_gets_them_all_back() {
        let t = Templates::default();
        let original = with_templates(3);
        let mut cached = original.clone();
        t.take(&mut cached);
        assert!(cached.all_steps().all(|step| step.template.is_none()));
        assert_eq!(json_of(&t.restore(&cached).unwrap()), json_of(&original));
        // The next event of the same generation (a status write) is stripped the same way.
        let mut again = original.clone();
        again.metadata.resource_version = Some("9".into());
        t.take(&mut again);
        assert!(again.all_steps().all(|step| step.template.is_none()));
        assert_eq!(t.restore(&again).unwrap().spec, original.spec);
    }

    #[test]
    fn another_generation_is_not_restored_with_the_wrong_templates() {
        let t = Templates::default();
        let mut old = with_templates(1);
        t.take(&mut old);
        let mut new = with_templates(2);
        new.spec.steps[0].template.as_mut().unwrap()["spec"]["backoffLimit"] = json!(2);
        let expected = new.clone();
        t.take(&mut new);
        assert!(t.restore(&old).is_none(), "the cache moved on");
        assert_eq!(json_of(&t.restore(&new).unwrap()), json_of(&expected));
    }

    #[test]
    fn deleted_flows_are_forgotten_and_flows_without_a_uid_are_left_alone() {
        let t = Templates::default();
        let mut f = with_templates(1);
        t.take(&mut f);
        t.retain(&HashSet::new());
        assert!(t.restore(&f).is_none());
        let mut no_uid = with_templates(1);
        no_uid.metadata.uid = None;
        let expected = no_uid.clone();
        t.take(&mut no_uid);
        assert_eq!(json_of(&no_uid), json_of(&expected));
        assert_eq!(json_of(&t.restore(&no_uid).unwrap()), json_of(&expected));
    }
}
