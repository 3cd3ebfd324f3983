//! The terminal drawing: one line per step under its layer, with what it waits for.

use std::fmt::Write as _;

use owo_colors::OwoColorize;

use super::Layout;
use crate::style;

/// Draws the layers top to bottom.
pub fn draw(layout: &Layout) -> String {
    let regular = layout.dag.regular_count();
    let finally = layout.dag.len() - regular;
    let mut text = format!(
        "jobflow {}: {} steps in {} layers",
        layout.name,
        regular,
        layout.layers.len()
    );
    if finally > 0 {
        let _ = write!(text, ", {finally} finally");
    }
    text.push('\n');
    let width = (0..layout.dag.len())
        .map(|index| layout.dag.name(index).len())
        .max()
        .unwrap_or(0);
    let mut sections: Vec<(String, &Vec<usize>)> = layout
        .layers
        .iter()
        .enumerate()
        .map(|(depth, layer)| (format!("layer {}", depth + 1), layer))
        .collect();
    sections.extend(
        layout
            .finally_layers
            .iter()
            .enumerate()
            .map(|(depth, layer)| (format!("finally {}", depth + 1), layer)),
    );
    let last_section = sections.len().saturating_sub(1);
    for (position, (title, steps)) in sections.iter().enumerate() {
        let last = position == last_section;
        let _ = writeln!(text, "{} {}", if last { "└─" } else { "├─" }, title.bold());
        let rail = if last { "   " } else { "│  " };
        let last_step = steps.len().saturating_sub(1);
        for (place, &index) in steps.iter().enumerate() {
            let branch = if place == last_step {
                "└─"
            } else {
                "├─"
            };
            let name = layout.dag.name(index);
            let mut line = format!("{rail}{branch} {name:<width$}");
            if let Some(phase) = layout.phases[index] {
                // Padded by the plain text's width: colour codes take no room on screen.
                let pad = 15_usize.saturating_sub(phase.as_str().len());
                let _ = write!(line, "  {}{}", style::step_phase(phase), " ".repeat(pad));
            }
            let dependencies = layout.dependency_names(index);
            if !dependencies.is_empty() {
                let _ = write!(line, "  ← {}", dependencies.join(", "));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    text
}
