//! `validate -f FILE...`: the core library's validation, offline, every problem as
//! `path: message`.

use std::io::{Read, Write};
use std::path::PathBuf;

use jobflow::validation::report;
use owo_colors::OwoColorize;

use crate::Verdict;
use crate::cli::ValidateArgs;
use crate::error::Error;
use crate::files::{self, Content};

/// Validates every document of every file; negative when any has a problem (warnings do not
/// count). An unreadable file is an error after the readable ones are reported.
pub fn run(
    args: &ValidateArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let mut verdict = Verdict::Positive;
    let mut unreadable = None;
    for path in &expand(&args.files) {
        let shown = path.display();
        let text = match files::read(path, stdin) {
            Ok(text) => text,
            Err(error) => {
                writeln!(out, "{shown}: {}", "cannot read".red())?;
                unreadable.get_or_insert(error);
                continue;
            }
        };
        let documents = files::documents(&text);
        if documents.is_empty() {
            writeln!(
                out,
                "{shown}: {}: the file holds no document",
                "invalid".red()
            )?;
            verdict = Verdict::Negative;
        }
        let several = documents.len() > 1;
        for document in documents {
            let place = if several {
                format!("{shown} (document {})", document.index)
            } else {
                shown.to_string()
            };
            let flow = match document.content {
                Content::Flow(flow) => flow,
                Content::Other(what) => {
                    writeln!(out, "{place}: skipped ({what} is not a JobFlow)")?;
                    continue;
                }
                Content::Invalid(message) => {
                    writeln!(out, "{place}: {}", "invalid".red())?;
                    writeln!(out, "  {message}")?;
                    verdict = Verdict::Negative;
                    continue;
                }
            };
            let name = flow.metadata.name.as_deref().unwrap_or("<no name>");
            let found = report(&flow);
            if found.problems.is_empty() {
                writeln!(out, "{place}: jobflow {name} is {}", "valid".green())?;
            } else {
                verdict = Verdict::Negative;
                let count = found.problems.len();
                let noun = if count == 1 { "problem" } else { "problems" };
                writeln!(
                    out,
                    "{place}: jobflow {name} is {} ({count} {noun})",
                    "invalid".red()
                )?;
                for problem in &found.problems {
                    writeln!(out, "  {problem}")?;
                }
            }
            for warning in &found.warnings {
                writeln!(out, "  {} {warning}", "warning:".yellow())?;
            }
        }
    }
    match unreadable {
        Some(error) => Err(error),
        None => Ok(verdict),
    }
}

/// The paths, each folder replaced by its `.yaml` and `.yml` files in name order (as
/// `kubectl apply -f DIR` reads a folder); an unreadable folder stays, to be reported.
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut expanded = Vec::new();
    for path in paths {
        let Ok(entries) = std::fs::read_dir(path) else {
            expanded.push(path.clone());
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|file| {
                file.extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect();
        files.sort();
        expanded.extend(files);
    }
    expanded
}
