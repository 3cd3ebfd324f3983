//! A Mermaid flowchart (`flowchart TD`), for Markdown docs; finally steps in their own subgraph.

use std::fmt::Write as _;

use jobflow::api::StepPhase;

use super::Layout;

/// Draws the flow as a Mermaid flowchart; node ids are `s<index>`, labels the step names.
pub fn draw(layout: &Layout) -> String {
    let mut text = String::from("flowchart TD\n");
    let node = |index: usize| {
        let name = layout.dag.name(index);
        match layout.phases[index] {
            Some(phase) => format!("s{index}[\"{name}<br/>{}\"]", phase.as_str()),
            None => format!("s{index}[\"{name}\"]"),
        }
    };
    for index in 0..layout.dag.regular_count() {
        let _ = writeln!(text, "  {}", node(index));
    }
    if layout.dag.len() > layout.dag.regular_count() {
        text.push_str("  subgraph finally\n");
        for index in layout.dag.regular_count()..layout.dag.len() {
            let _ = writeln!(text, "    {}", node(index));
        }
        text.push_str("  end\n");
    }
    for (from, to) in layout.edges() {
        let _ = writeln!(text, "  s{from} --> s{to}");
    }
    let phases: Vec<(usize, StepPhase)> = layout
        .phases
        .iter()
        .enumerate()
        .filter_map(|(index, phase)| phase.map(|phase| (index, phase)))
        .collect();
    if !phases.is_empty() {
        for (class, colour) in [
            ("Succeeded", "#c8f7c5"),
            ("Failed", "#f7c5c5"),
            ("Running", "#c5d8f7"),
            ("PendingApproval", "#f7e7c5"),
            ("Pending", "#eeeeee"),
            ("Skipped", "#eeeeee"),
        ] {
            let _ = writeln!(text, "  classDef {class} fill:{colour}");
        }
        for (index, phase) in phases {
            let _ = writeln!(text, "  class s{index} {}", phase.as_str());
        }
    }
    text
}
