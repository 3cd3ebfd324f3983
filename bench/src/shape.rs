//! The DAG every load flow has: two roots, layers of two steps, one join at the end.
//!
//! Step `i` (from 0) of `n` is named `s<i>` (zero-padded). Steps 0 and 1 are roots; after them
//! come layers of two: the even step depends on the even step of the layer before, the odd step
//! on both steps of the layer before. The last step joins every step nothing else depends on.
//! For 10 steps:
//!
//! ```text
//! s00 s01          roots
//! s02<-s00 s03<-s00,s01
//! s04<-s02 s05<-s02,s03
//! s06<-s04 s07<-s04,s05
//! s08<-s06
//! s09<-s07,s08     join
//! ```

use std::time::Duration;

use jobflow::api::JobFlow;

use jobflow_tests::FakePod;
use jobflow_tests::flows::{FlowBuilder, StepBuilder};

/// The name of step `index`: `s` and the index, zero-padded to the width of `steps - 1`.
pub fn step_name(index: usize, steps: usize) -> String {
    let width = steps.saturating_sub(1).to_string().len().max(2);
    format!("s{index:0width$}")
}

/// The dependencies (step indices) of each of `steps` steps.
pub fn dependencies(steps: usize) -> Vec<Vec<usize>> {
    let Some(join) = steps.checked_sub(1) else {
        return Vec::new();
    };
    let mut deps: Vec<Vec<usize>> = (0..join)
        .map(|i| match i {
            0 | 1 => Vec::new(),
            _ if i % 2 == 0 => vec![i - 2],
            _ => vec![i - 3, i - 2],
        })
        .collect();
    if join > 0 {
        let sinks = (0..join)
            .filter(|candidate| !deps.iter().any(|d| d.contains(candidate)))
            .collect();
        deps.push(sinks);
    } else {
        deps.push(Vec::new());
    }
    deps
}

/// The longest chain of steps (how many pods run one after the other).
pub fn depth(deps: &[Vec<usize>]) -> usize {
    let mut levels: Vec<usize> = Vec::with_capacity(deps.len());
    for step in deps {
        let level = step.iter().map(|&d| levels[d]).max().unwrap_or(0) + 1;
        levels.push(level);
    }
    levels.into_iter().max().unwrap_or(0)
}

/// The load flow `name` with `steps` steps whose pods each run for `pod_duration`.
pub fn flow(name: &str, steps: usize, pod_duration: Duration) -> JobFlow {
    let pod = FakePod::succeed().running_for(pod_duration);
    dependencies(steps)
        .iter()
        .enumerate()
        .fold(FlowBuilder::new(name), |flow, (index, deps)| {
            let after: Vec<String> = deps.iter().map(|&d| step_name(d, steps)).collect();
            let after: Vec<&str> = after.iter().map(String::as_str).collect();
            flow.step(StepBuilder::new(&step_name(index, steps), &pod).after(&after))
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobflow_tests::ANNOTATION_DURATION;

    #[test]
    fn ten_steps_are_layers_of_two_and_a_join() {
        let deps = dependencies(10);
        assert_eq!(
            deps,
            [
                vec![],
                vec![],
                vec![0],
                vec![0, 1],
                vec![2],
                vec![2, 3],
                vec![4],
                vec![4, 5],
                vec![6],
                vec![7, 8],
            ]
        );
        assert_eq!(deps.iter().map(Vec::len).sum::<usize>(), 12);
        assert_eq!(depth(&deps), 6);
    }

    #[test]
    fn small_shapes_still_end_in_one_join() {
        assert!(dependencies(0).is_empty());
        assert_eq!(dependencies(1), [Vec::<usize>::new()]);
        assert_eq!(dependencies(2), [vec![], vec![0]]);
        assert_eq!(dependencies(3), [vec![], vec![], vec![0, 1]]);
        assert_eq!(
            dependencies(5),
            [vec![], vec![], vec![0], vec![0, 1], vec![2, 3]]
        );
    }

    #[test]
    fn flows_name_steps_and_pods() {
        let flow = flow("load-1", 10, Duration::from_secs(1));
        let names: Vec<&str> = flow.spec.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[0], "s00");
        assert_eq!(names[9], "s09");
        assert_eq!(flow.spec.steps[9].dependencies, ["s07", "s08"]);
        let template = flow.spec.steps[0].template.clone().unwrap();
        assert_eq!(
            template["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DURATION],
            "1000ms"
        );
        assert_eq!(step_name(7, 200), "s007");
    }
}
