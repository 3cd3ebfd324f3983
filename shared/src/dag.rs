//! The step graph of a flow, built once per spec on petgraph.
//!
//! Steps are indexed in declaration order: `spec.steps` first, then `spec.finally`. An edge runs
//! from a step to each of its `dependencies`; a finally step may depend on regular and finally
//! steps, a regular step only on regular steps. Names and dependencies are resolved in one
//! place, validation's graph check (`validation/graph.rs`), which also defines `Dag::build`:
//! that check, then `Dag::from_ordered`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::api::{JobFlowSpec, Step};

/// The steps of a flow and the order they may run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dag {
    names: Vec<String>,
    index_by_name: HashMap<String, usize>,
    regular_count: usize,
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    topological_order: Vec<usize>,
    topological_rank: Vec<usize>,
}

impl Dag {
    /// The graph of `spec` from edges validation already resolved and ordered (it proved the
    /// names unique, the dependencies known and the graph acyclic), without resolving them again.
    /// `Dag::build` checks a spec and then calls this.
    pub(crate) fn from_ordered(spec: &JobFlowSpec, ordered: Ordered) -> Self {
        let steps: Vec<&Step> = spec.all_steps().collect();
        let index_by_name = steps
            .iter()
            .enumerate()
            .map(|(index, step)| (step.name.clone(), index))
            .collect();
        Self::assemble(&steps, index_by_name, spec.steps.len(), ordered)
    }

    fn assemble(
        steps: &[&Step],
        index_by_name: HashMap<String, usize>,
        regular_count: usize,
        ordered: Ordered,
    ) -> Self {
        let names: Vec<String> = steps.iter().map(|step| step.name.clone()).collect();
        let mut topological_rank = vec![0; names.len()];
        for (rank, &index) in ordered.topological_order.iter().enumerate() {
            topological_rank[index] = rank;
        }
        Self {
            names,
            index_by_name,
            regular_count,
            dependencies: ordered.dependencies,
            dependents: ordered.dependents,
            topological_order: ordered.topological_order,
            topological_rank,
        }
    }

    /// The number of steps, finally steps included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the flow has no step at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of the step at `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The index of the step called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index_by_name.get(name).copied()
    }

    /// True when the step at `index` is a finally step.
    pub fn is_finally(&self, index: usize) -> bool {
        index >= self.regular_count
    }

    /// The number of regular steps (those in `spec.steps`); finally steps follow them.
    pub fn regular_count(&self) -> usize {
        self.regular_count
    }

    /// The steps the step at `index` depends on directly, in the order its `dependencies` list
    /// them, without repeats.
    pub fn dependencies(&self, index: usize) -> &[usize] {
        &self.dependencies[index]
    }

    /// The steps that depend directly on the step at `index`, by ascending index.
    pub fn dependents(&self, index: usize) -> &[usize] {
        &self.dependents[index]
    }

    /// Every step once, each after its dependencies; among steps ready together the one declared
    /// first comes first, so finally steps come after every regular step.
    pub fn topological_order(&self) -> &[usize] {
        &self.topological_order
    }

    /// The steps that depend on the step at `index` directly or through others, in topological
    /// order, without `index` itself.
    pub fn downstream(&self, index: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut queue = VecDeque::from([index]);
        let mut found = Vec::new();
        while let Some(current) = queue.pop_front() {
            for &dependent in &self.dependents[current] {
                if !seen[dependent] {
                    seen[dependent] = true;
                    found.push(dependent);
                    queue.push_back(dependent);
                }
            }
        }
        found.sort_unstable_by_key(|&step| self.topological_rank[step]);
        found
    }
}

/// A step graph's edges both ways and its order, as validation resolves them.
#[derive(Debug, Default)]
pub(crate) struct Ordered {
    /// `dependencies[i]`: the steps step `i` depends on, in listed order, without repeats.
    pub(crate) dependencies: Vec<Vec<usize>>,
    /// `dependents[i]`: the steps that depend on step `i`, by ascending index.
    pub(crate) dependents: Vec<Vec<usize>>,
    /// Every step on no cycle, each after its dependencies (see [`Dag::topological_order`]);
    /// shorter than the graph when there is a cycle.
    pub(crate) topological_order: Vec<usize>,
}

impl Ordered {
    /// Orders the graph of `dependencies` (each index below `dependencies.len()`).
    pub(crate) fn new(dependencies: Vec<Vec<usize>>) -> Self {
        let dependents = invert(&dependencies);
        let topological_order = stable_topological_order(&dependencies, &dependents);
        Self {
            dependencies,
            dependents,
            topological_order,
        }
    }

    /// True when some steps depend on each other in a circle.
    pub(crate) fn has_cycle(&self) -> bool {
        self.topological_order.len() < self.dependencies.len()
    }
}

/// For each step, the steps that list it in their dependencies, by ascending index.
fn invert(dependencies: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut dependents = vec![Vec::new(); dependencies.len()];
    for (index, targets) in dependencies.iter().enumerate() {
        for &target in targets {
            dependents[target].push(index);
        }
    }
    dependents
}

/// Kahn's algorithm with a min-heap: the ready step declared first goes first. Steps on or
/// behind a cycle are left out, so a short result means there is a cycle.
fn stable_topological_order(dependencies: &[Vec<usize>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting_on: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting_on
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count == 0)
        .map(|(index, _)| Reverse(index))
        .collect();
    let mut order = Vec::with_capacity(dependencies.len());
    while let Some(Reverse(index)) = ready.pop() {
        order.push(index);
        for &dependent in &dependents[index] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    order
}

/// One cycle per strongly connected group of steps that depend on each other, ordered by the
/// lowest index on each. Every cycle starts at its lowest-index step, follows dependencies
/// (the first listed wins among equally short ways back), and repeats its first step at the end.
/// `dependencies[i]` are the indexes step `i` depends on; all must be below `dependencies.len()`.
pub(crate) fn find_cycles(dependencies: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut graph: DiGraph<(), ()> =
        DiGraph::with_capacity(dependencies.len(), dependencies.iter().map(Vec::len).sum());
    let nodes: Vec<NodeIndex> = (0..dependencies.len())
        .map(|_| graph.add_node(()))
        .collect();
    for (index, targets) in dependencies.iter().enumerate() {
        for &target in targets {
            graph.add_edge(nodes[index], nodes[target], ());
        }
    }
    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter_map(|component| {
            let members: Vec<usize> = component.iter().map(|node| node.index()).collect();
            let start = members.iter().copied().min()?;
            let is_cycle = members.len() > 1 || dependencies[start].contains(&start);
            is_cycle.then(|| shortest_cycle_through(start, &members, dependencies))
        })
        .collect();
    cycles.sort_unstable_by_key(|cycle| cycle.first().copied());
    cycles
}

/// The shortest way from `start` back to itself along dependencies, staying within `members`.
fn shortest_cycle_through(
    start: usize,
    members: &[usize],
    dependencies: &[Vec<usize>],
) -> Vec<usize> {
    let mut is_member = vec![false; dependencies.len()];
    for &member in members {
        is_member[member] = true;
    }
    let mut came_from: Vec<Option<usize>> = vec![None; dependencies.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        for &next in &dependencies[current] {
            if next == start {
                let mut path = vec![start];
                let mut step = current;
                while step != start {
                    path.push(step);
                    step = came_from[step].unwrap_or(start);
                }
                path.push(start);
                path.reverse();
                return path;
            }
            if is_member[next] && came_from[next].is_none() {
                came_from[next] = Some(current);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn step(name: &str, dependencies: &[&str]) -> Step {
        Step {
            name: name.to_owned(),
            dependencies: dependencies.iter().map(|&d| d.to_owned()).collect(),
            ..Step::default()
        }
    }

    fn spec(steps: Vec<Step>, finally: Vec<Step>) -> JobFlowSpec {
        JobFlowSpec {
            steps,
            finally,
            ..JobFlowSpec::default()
        }
    }

    fn names(dag: &Dag, indexes: &[usize]) -> Vec<String> {
        indexes.iter().map(|&i| dag.name(i).to_owned()).collect()
    }

    /// The DAG, or why the steps do not form one (validation/graph_tests.rs tests the why).
    fn build(steps: Vec<Step>, finally: Vec<Step>) -> Result<Dag, String> {
        Dag::build(&spec(steps, finally)).map_err(|error| error.to_string())
    }

    #[test]
    fn indexes_regular_steps_then_finally_steps() {
        let dag = build(
            vec![step("a", &[]), step("b", &["a"])],
            vec![step("cleanup", &["b"])],
        )
        .unwrap();
        assert_eq!(dag.len(), 3);
        assert!(!dag.is_empty());
        assert_eq!(dag.regular_count(), 2);
        assert_eq!(dag.index_of("cleanup"), Some(2));
        assert_eq!(dag.index_of("nope"), None);
        assert_eq!(dag.name(1), "b");
        assert!(!dag.is_finally(1));
        assert!(dag.is_finally(2));
    }

    #[test]
    fn an_empty_spec_is_an_empty_dag() {
        let dag = build(vec![], vec![]).unwrap();
        assert!(dag.is_empty());
        assert!(dag.topological_order().is_empty());
    }

    #[test]
    fn dependencies_keep_declaration_order() {
        let dag = build(
            vec![step("a", &[]), step("b", &[]), step("c", &["b", "a"])],
            vec![],
        )
        .unwrap();
        assert_eq!(dag.dependencies(2), &[1, 0]);
        assert_eq!(dag.dependents(0), &[2]);
        assert_eq!(dag.dependents(2), &[] as &[usize]);
    }

    #[test]
    fn dependents_are_by_ascending_index() {
        let dag = build(
            vec![
                step("d", &["a"]),
                step("a", &[]),
                step("c", &["a"]),
                step("b", &["a"]),
            ],
            vec![],
        )
        .unwrap();
        assert_eq!(dag.dependents(1), &[0, 2, 3]);
    }

    #[test]
    fn topological_order_prefers_the_step_declared_first() {
        let dag = build(
            vec![
                step("load", &["merge"]),
                step("extract-b", &[]),
                step("merge", &["extract-a", "extract-b"]),
                step("extract-a", &[]),
            ],
            vec![],
        )
        .unwrap();
        assert_eq!(
            names(&dag, dag.topological_order()),
            ["extract-b", "extract-a", "merge", "load"]
        );
    }

    #[test]
    fn finally_steps_come_after_every_regular_step() {
        let dag = build(
            vec![step("a", &["c"]), step("b", &["a"]), step("c", &[])],
            vec![step("notify", &[]), step("cleanup", &["notify", "a"])],
        )
        .unwrap();
        assert_eq!(
            names(&dag, dag.topological_order()),
            ["c", "a", "b", "notify", "cleanup"]
        );
    }

    #[test]
    fn downstream_is_every_transitive_dependent_in_topological_order() {
        let dag = build(
            vec![
                step("a", &[]),
                step("d", &["c"]),
                step("b", &["a"]),
                step("c", &["b", "a"]),
                step("other", &[]),
            ],
            vec![step("f", &["d"])],
        )
        .unwrap();
        assert_eq!(names(&dag, &dag.downstream(0)), ["b", "c", "d", "f"]);
        assert_eq!(names(&dag, &dag.downstream(3)), ["d", "f"]);
        assert!(dag.downstream(4).is_empty());
    }

    #[test]
    fn finally_steps_may_depend_on_finally_and_regular_steps() {
        let dag = build(
            vec![step("a", &[])],
            vec![step("report", &["a"]), step("cleanup", &["report"])],
        )
        .unwrap();
        assert_eq!(dag.dependencies(2), &[1]);
    }

    #[test]
    fn find_cycles_takes_the_shortest_way_back() {
        // 0 -> 1 -> 2 -> 0 and 0 -> 2 -> 0: the second is shorter.
        let cycles = find_cycles(&[vec![1, 2], vec![2], vec![0]]);
        assert_eq!(cycles, vec![vec![0, 2, 0]]);
    }

    #[test]
    fn find_cycles_reports_each_group_once_ordered_by_lowest_index() {
        let cycles = find_cycles(&[vec![], vec![4], vec![3], vec![2], vec![1], vec![0]]);
        assert_eq!(cycles, vec![vec![1, 4, 1], vec![2, 3, 2]]);
    }

    #[test]
    fn builds_ten_thousand_steps() {
        let steps: Vec<Step> = (0..10_000)
            .map(|i| {
                let name = format!("s{i}");
                match i {
                    0 => step(&name, &[]),
                    // Steps 1 and 2 have one dependency: i / 2 is i - 1 (a dependency is listed once).
                    1 | 2 => step(&name, &[&format!("s{}", i - 1)]),
                    _ => step(&name, &[&format!("s{}", i / 2), &format!("s{}", i - 1)]),
                }
            })
            .collect();
        let dag = build(steps, vec![]).unwrap();
        assert_eq!(dag.topological_order().len(), 10_000);
        assert_eq!(dag.downstream(9_998), vec![9_999]);
    }

    /// Random DAGs: step `i` may depend on any lower index.
    fn random_dependencies() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..500).prop_flat_map(|count| {
            (0..count)
                .map(|index| {
                    let lower = 0..index.max(1);
                    if index == 0 {
                        Just(Vec::new()).boxed()
                    } else {
                        proptest::collection::vec(lower, 0..4).boxed()
                    }
                })
                .collect::<Vec<_>>()
        })
    }

    fn closure_from(index: usize, dependents: &[Vec<usize>]) -> Vec<usize> {
        let mut seen = vec![false; dependents.len()];
        let mut stack = vec![index];
        while let Some(current) = stack.pop() {
            for &next in &dependents[current] {
                if !seen[next] {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
        (0..dependents.len()).filter(|&i| seen[i]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn order_and_downstream_agree_with_the_edges(dependencies in random_dependencies()) {
            let steps: Vec<Step> = dependencies
                .iter()
                .enumerate()
                .map(|(index, targets)| Step {
                    name: format!("s{index}"),
                    // A dependency is listed once: repeats are dropped, the first kept.
                    dependencies: targets
                        .iter()
                        .enumerate()
                        .filter(|&(at, t)| !targets[..at].contains(t))
                        .map(|(_, t)| format!("s{t}"))
                        .collect(),
                    ..Step::default()
                })
                .collect();
            let dag = build(steps, vec![]).unwrap();
            let order = dag.topological_order();
            prop_assert_eq!(order.len(), dependencies.len());
            let mut rank = vec![usize::MAX; order.len()];
            for (position, &index) in order.iter().enumerate() {
                prop_assert_eq!(rank[index], usize::MAX, "step {} listed twice", index);
                rank[index] = position;
            }
            let mut dependents = vec![Vec::new(); dependencies.len()];
            for (index, targets) in dependencies.iter().enumerate() {
                for &target in targets {
                    prop_assert!(rank[target] < rank[index]);
                    dependents[target].push(index);
                }
            }
            for index in 0..dependencies.len() {
                let downstream = dag.downstream(index);
                prop_assert!(downstream.windows(2).all(|pair| rank[pair[0]] < rank[pair[1]]));
                let mut sorted = downstream.clone();
                sorted.sort_unstable();
                prop_assert_eq!(sorted, closure_from(index, &dependents));
            }
        }
    }
}
