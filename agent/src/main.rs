//! `jobflow-agent`: the in-cluster controller for `JobFlows`.

use std::process::ExitCode;

use clap::Parser;
use jobflow_agent::args::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = jobflow_agent::telemetry::init(args.log_format, &args.log_level) {
        eprintln!("jobflow-agent: {}", jobflow_agent::error::chain(&error));
        return ExitCode::from(2);
    }
    match jobflow_agent::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}
