//! `graph FLOW` / `graph -f FILE`: a flow's DAG as a layered tree, Graphviz DOT or Mermaid.
//!
//! Steps are put in layers by their longest chain of dependencies (a step sits one layer below
//! the deepest step it waits for); finally steps are layered on their own, after the rest.

mod dot;
mod mermaid;
mod tree;

use std::io::{Read, Write};

use jobflow::api::{JobFlow, StepPhase};
use jobflow::dag::Dag;

use crate::cli::{GraphArgs, GraphFormat};
use crate::connect::Cluster;
use crate::error::Error;
use crate::files;
use crate::watch::{self, Redraw};
use crate::{Output, Verdict};

/// A flow's steps laid out in layers, with their phases when the flow is live.
pub struct Layout {
    /// The flow's name.
    pub name: String,
    /// The step graph.
    pub dag: Dag,
    /// Regular steps by layer, each layer in declaration order.
    pub layers: Vec<Vec<usize>>,
    /// Finally steps by layer.
    pub finally_layers: Vec<Vec<usize>>,
    /// Each step's phase, by step index, when the flow has a status.
    pub phases: Vec<Option<StepPhase>>,
}

impl Layout {
    /// Lays out `flow`; a flow whose steps do not form a DAG is refused with the reason.
    pub fn of(flow: &JobFlow) -> Result<Self, Error> {
        let name = flow
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "<no name>".to_owned());
        let dag = Dag::build(&flow.spec)
            .map_err(|error| Error::Refused(format!("jobflow {name}: {error}")))?;
        let mut depth = vec![0_usize; dag.len()];
        for &index in dag.topological_order() {
            depth[index] = dag
                .dependencies(index)
                .iter()
                .filter(|&&dependency| dag.is_finally(dependency) == dag.is_finally(index))
                .map(|&dependency| depth[dependency] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut layers: Vec<Vec<usize>> = Vec::new();
        let mut finally_layers: Vec<Vec<usize>> = Vec::new();
        for index in 0..dag.len() {
            let target = if dag.is_finally(index) {
                &mut finally_layers
            } else {
                &mut layers
            };
            if target.len() <= depth[index] {
                target.resize_with(depth[index] + 1, Vec::new);
            }
            target[depth[index]].push(index);
        }
        let statuses = flow.status.as_ref().map(|status| &status.steps);
        let phases = (0..dag.len())
            .map(|index| {
                statuses.and_then(|steps| {
                    steps
                        .iter()
                        .find(|step| step.name == dag.name(index))
                        .map(|step| step.phase)
                })
            })
            .collect();
        Ok(Self {
            name,
            dag,
            layers,
            finally_layers,
            phases,
        })
    }

    /// The names of the steps `index` waits for, in declaration order.
    pub fn dependency_names(&self, index: usize) -> Vec<&str> {
        let mut dependencies = self.dag.dependencies(index).to_vec();
        dependencies.sort_unstable();
        dependencies
            .into_iter()
            .map(|dependency| self.dag.name(dependency))
            .collect()
    }

    /// Every edge (dependency, dependent), in declaration order of the dependent.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (0..self.dag.len())
            .flat_map(|index| {
                let mut dependencies = self.dag.dependencies(index).to_vec();
                dependencies.sort_unstable();
                dependencies
                    .into_iter()
                    .map(move |dependency| (dependency, index))
            })
            .collect()
    }
}

/// Draws `layout` in `format`.
pub fn draw(layout: &Layout, format: GraphFormat, out: &mut dyn Write) -> Result<(), Error> {
    let text = match format {
        GraphFormat::Tree => tree::draw(layout),
        GraphFormat::Dot => dot::draw(layout),
        GraphFormat::Mermaid => mermaid::draw(layout),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `graph -f FILE`: offline.
pub fn run_offline(
    args: &GraphArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let Some(path) = &args.filename else {
        return Err(Error::Usage("graph needs FLOW or -f FILE".to_owned()));
    };
    let flow = files::one_flow(path, stdin)?;
    draw(&Layout::of(&flow)?, args.format, out)?;
    Ok(Verdict::Positive)
}

/// `graph FLOW`: the live flow, steps coloured by phase; with `--watch` redrawn until the
/// flow ends.
pub async fn run_live(
    args: &GraphArgs,
    cluster: &Cluster,
    output: &mut Output<'_>,
) -> Result<Verdict, Error> {
    let Some(name) = &args.flow else {
        return Err(Error::Usage("graph needs FLOW or -f FILE".to_owned()));
    };
    let mut redraw = Redraw::default();
    loop {
        let flow = cluster.flow(name).await?;
        let mut text = Vec::new();
        draw(&Layout::of(&flow)?, args.format, &mut text)?;
        if !args.watch {
            output.out.write_all(&text)?;
            return Ok(Verdict::Positive);
        }
        redraw.draw(output, String::from_utf8_lossy(&text).into_owned())?;
        if let Some(verdict) = watch::ended(flow.status.as_ref().and_then(|status| status.phase)) {
            return Ok(verdict);
        }
        tokio::time::sleep(watch::REDRAW).await;
    }
}
