//! The step templates of a cached flow, kept as JSON text in its index entry.
//!
//! A template is a `serde_json::Value`, and every JSON object in it is a `BTreeMap` whose
//! smallest node takes about 630 bytes whatever it holds: a 250-byte Job template costs about
//! 4.6 KB as a tree. With 1,000 flows of 20 steps that was 92 MB of a 175 MB peak (heaptrack).
//! Only a reconcile reads templates (the triggers, the concurrency peers and the metrics read
//! names, labels and status), so the cached flow holds `None` in their place, the flow's index
//! entry holds them as text for the flow's generation, and [`Templates::restore`] puts them
//! back for the reconcile. A generation's templates never change: the API server bumps
//! `metadata.generation` on every spec change.

use jobflow::api::{JobFlow, Step};

/// One flow's templates: its generation and each step's template as JSON text, steps first,
/// then finally steps, in spec order.
#[derive(Debug)]
pub struct Templates {
    generation: Option<i64>,
    templates: Vec<Option<Box<str>>>,
}

impl Templates {
    /// Whether these are the templates of `flow`'s generation.
    pub fn are_of(&self, flow: &JobFlow) -> bool {
        self.generation == flow.metadata.generation
    }

    /// Moves `flow`'s templates out as text (the flow keeps `None` in their place).
    pub fn take(flow: &mut JobFlow) -> Self {
        let generation = flow.metadata.generation;
        let templates = steps_mut(flow)
            .map(|step| {
                let template = step.template.take()?;
                Some(template.to_string().into_boxed_str())
            })
            .collect();
        Self {
            generation,
            templates,
        }
    }

    /// Drops `flow`'s templates, which these already hold (same generation).
    pub fn drop_from(flow: &mut JobFlow) {
        for step in steps_mut(flow) {
            step.template = None;
        }
    }

    /// `flow` with its templates back, or `None` when these are another generation's.
    pub fn restore(&self, flow: &JobFlow) -> Option<JobFlow> {
        if !self.are_of(flow) {
            return None;
        }
        let mut restored = flow.clone();
        let steps: Vec<&mut Step> = steps_mut(&mut restored).collect();
        if steps.len() != self.templates.len() {
            return None;
        }
        for (step, text) in steps.into_iter().zip(&self.templates) {
            step.template = match text {
                Some(text) => Some(serde_json::from_str(text).ok()?),
                None => None,
            };
        }
        Some(restored)
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
    use crate::testing::{json_of, with_templates};

    #[test]
    fn the_flow_keeps_no_template_and_restore_gives_them_all_back() {
        let original = with_templates(3);
        let mut cached = original.clone();
        let kept = Templates::take(&mut cached);
        assert!(cached.all_steps().all(|step| step.template.is_none()));
        assert!(kept.are_of(&cached));
        assert_eq!(json_of(&kept.restore(&cached).unwrap()), json_of(&original));
        let mut again = original.clone();
        Templates::drop_from(&mut again);
        assert_eq!(json_of(&again), json_of(&cached));
    }

    #[test]
    fn another_generation_is_not_restored_with_the_wrong_templates() {
        let mut old = with_templates(1);
        let kept = Templates::take(&mut old);
        let mut new = with_templates(2);
        Templates::drop_from(&mut new);
        assert!(!kept.are_of(&new));
        assert!(kept.restore(&new).is_none(), "the cache moved on");
        let mut fewer = old.clone();
        fewer.spec.steps.pop();
        assert!(kept.restore(&fewer).is_none(), "not the same steps");
    }
}
