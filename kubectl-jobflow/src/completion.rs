//! `completion bash|zsh|fish`: scripts generated from the command definitions by clap_complete.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell as Generator;

use crate::Verdict;
use crate::cli::{Cli, Shell};
use crate::error::Error;

/// Writes the completion script for `shell`, for the `kubectl-jobflow` executable.
pub fn run(shell: Shell, out: &mut dyn Write) -> Result<Verdict, Error> {
    let generator = match shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut command, "kubectl-jobflow", &mut script);
    out.write_all(&script)?;
    Ok(Verdict::Positive)
}
