//! Graphviz DOT: `dot -Tsvg` draws it top to bottom; finally steps are dashed.

use std::fmt::Write as _;

use jobflow::api::StepPhase;

use super::Layout;

/// Draws the flow as a DOT digraph, edges from a step to the steps that wait for it.
pub fn draw(layout: &Layout) -> String {
    let mut text = format!("digraph {} {{\n", quote(&layout.name));
    text.push_str("  rankdir=TB;\n  node [shape=box, style=rounded];\n");
    for index in 0..layout.dag.len() {
        let name = layout.dag.name(index);
        let mut attributes = Vec::new();
        if let Some(phase) = layout.phases[index] {
            attributes.push(format!(
                "label={}",
                quote(&format!("{name}\\n{}", phase.as_str()))
            ));
            attributes.push(format!("color={}", colour(phase)));
        }
        if layout.dag.is_finally(index) {
            attributes.push("style=\"rounded,dashed\"".to_owned());
        }
        if attributes.is_empty() {
            let _ = writeln!(text, "  {};", quote(name));
        } else {
            let _ = writeln!(text, "  {} [{}];", quote(name), attributes.join(", "));
        }
    }
    for (from, to) in layout.edges() {
        let _ = writeln!(
            text,
            "  {} -> {};",
            quote(layout.dag.name(from)),
            quote(layout.dag.name(to))
        );
    }
    text.push_str("}\n");
    text
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}

fn colour(phase: StepPhase) -> &'static str {
    match phase {
        StepPhase::Succeeded => "green",
        StepPhase::Failed => "red",
        StepPhase::Running => "blue",
        StepPhase::PendingApproval => "orange",
        StepPhase::Pending | StepPhase::Skipped => "gray",
    }
}
