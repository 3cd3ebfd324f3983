//! Colour by phase. Styled text carries ANSI codes; the output stream strips them when it is
//! not a terminal, under `--no-color`, or with `NO_COLOR` set.

use jobflow::api::{FlowPhase, StepPhase};
use owo_colors::OwoColorize;

/// A flow phase, coloured: green done, red failed, yellow waiting, blue running.
pub fn flow_phase(phase: Option<FlowPhase>) -> String {
    match phase {
        None => "<none>".dimmed().to_string(),
        Some(phase @ FlowPhase::Succeeded) => phase.as_str().green().to_string(),
        Some(phase @ FlowPhase::Failed) => phase.as_str().red().bold().to_string(),
        Some(phase @ (FlowPhase::Suspended | FlowPhase::Paused)) => {
            phase.as_str().yellow().to_string()
        }
        Some(phase @ FlowPhase::Running) => phase.as_str().blue().to_string(),
        Some(phase @ FlowPhase::Pending) => phase.as_str().dimmed().to_string(),
    }
}

/// A step phase, coloured like [`flow_phase`].
pub fn step_phase(phase: StepPhase) -> String {
    let text = phase.as_str();
    match phase {
        StepPhase::Succeeded => text.green().to_string(),
        StepPhase::Failed => text.red().bold().to_string(),
        StepPhase::PendingApproval => text.yellow().to_string(),
        StepPhase::Running => text.blue().to_string(),
        StepPhase::Skipped | StepPhase::Pending => text.dimmed().to_string(),
    }
}

/// A heading.
pub fn heading(text: &str) -> String {
    text.bold().to_string()
}
