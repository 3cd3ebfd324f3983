//! `--watch`: redraw a view of a flow every second until the flow has ended.

use std::time::Duration;

use jobflow::api::FlowPhase;

use crate::error::Error;
use crate::{Output, Verdict};

/// How often a watched view is redrawn.
pub const REDRAW: Duration = Duration::from_secs(1);

/// Draws successive versions of a view, each only when it changed.
#[derive(Default)]
pub struct Redraw {
    last: String,
}

impl Redraw {
    /// Draws `text` unless it is what is already shown: on a terminal over the previous one
    /// (clear screen, cursor home), elsewhere after it with a blank line between.
    pub fn draw(&mut self, output: &mut Output<'_>, text: String) -> Result<(), Error> {
        if text == self.last {
            return Ok(());
        }
        if output.terminal {
            output.out.write_all(b"\x1b[2J\x1b[H")?;
        } else if !self.last.is_empty() {
            output.out.write_all(b"\n")?;
        }
        output.out.write_all(text.as_bytes())?;
        output.out.flush()?;
        self.last = text;
        Ok(())
    }
}

/// The watch's verdict once the flow has ended (negative if it Failed), None while it runs.
pub fn ended(phase: Option<FlowPhase>) -> Option<Verdict> {
    match phase {
        Some(FlowPhase::Succeeded) => Some(Verdict::Positive),
        Some(FlowPhase::Failed) => Some(Verdict::Negative),
        _ => None,
    }
}
