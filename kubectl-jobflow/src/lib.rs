//! `kubectl jobflow`: see and steer zen-flow JobFlows from kubectl.
//!
//! [`main_with_args`] is the whole binary; [`run`] runs one parsed command line against an
//! output, connecting to the cluster only for the commands that need it. Which file does what:
//!
//! - [`cli`]: the flags and commands; [`error`]: failures and the exit codes they mean.
//! - Offline: [`validate`] (the core library's validation over manifest files), [`graph`]
//!   (tree, DOT and Mermaid drawings of a flow's DAG), [`completion`], [`version`].
//! - Live: [`connect`] (kubeconfig, context, namespace), [`get`], [`describe`], [`logs`], and
//!   [`requests`] (approve, reject, retry, suspend, resume and stop through the agent's annotation protocol),
//!   [`certs`] (`cert-status`, `cert-rotate`: the webhook's certificates).
//! - Shared: [`files`] (multi-document YAML), [`style`] (colour by phase), [`table`], [`time`],
//!   [`watch`] (redrawing until a flow ends).

pub mod certs;
pub mod cli;
pub mod completion;
pub mod connect;
pub mod describe;
pub mod error;
pub mod files;
pub mod get;
pub mod graph;
pub mod logs;
pub mod requests;
pub mod style;
pub mod table;
pub mod time;
pub mod validate;
pub mod version;
pub mod watch;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
pub use error::Error;

/// What a command concluded, when it could do its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// All is well: exit 0.
    Positive,
    /// The answer is no (an invalid file, a Failed flow): exit 1.
    Negative,
}

/// Where a command's output goes and how it may look.
pub struct Output<'a> {
    /// The output stream (colour is stripped from it when it is not a terminal).
    pub out: &'a mut dyn Write,
    /// True when the output is a terminal, so `--watch` may clear and redraw it.
    pub terminal: bool,
}

/// Parses `args`, runs the command and returns the exit code; errors go to stderr.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and --version exit 0; everything else is a usage error (2).
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(error::EXIT_USAGE));
        }
    };
    if cli.global.no_color {
        anstream::ColorChoice::Never.write_global();
    }
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = anstream::stdout();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(error::EXIT_NEGATIVE);
        }
    };
    let mut output = Output {
        out: &mut stdout,
        terminal,
    };
    let result = runtime.block_on(run(cli, &mut output));
    let flushed = stdout.flush();
    match (result, flushed) {
        (Ok(Verdict::Positive), Ok(())) => ExitCode::SUCCESS,
        (Ok(Verdict::Negative), _) => ExitCode::from(error::EXIT_NEGATIVE),
        (Err(error), _) if error.is_broken_pipe() => ExitCode::SUCCESS,
        (Ok(Verdict::Positive), Err(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        (Ok(Verdict::Positive), Err(error)) => report(&Error::Write(error)),
        (Err(error), _) => report(&error),
    }
}

fn report(error: &Error) -> ExitCode {
    let mut stderr = anstream::stderr();
    let _ = writeln!(stderr, "error: {}", error::chain(error));
    ExitCode::from(error.exit_code())
}

/// Runs one command. Offline commands never touch the network; the others connect with the
/// global options first.
pub async fn run(cli: Cli, output: &mut Output<'_>) -> Result<Verdict, Error> {
    let global = cli.global;
    match cli.command {
        Command::Validate(args) => validate::run(&args, &mut std::io::stdin().lock(), output.out),
        Command::Completion(args) => completion::run(args.shell, output.out),
        Command::Graph(args) if args.filename.is_some() => {
            graph::run_offline(&args, &mut std::io::stdin().lock(), output.out)
        }
        Command::Version(args) if args.client => version::run(None, output.out).await,
        command => {
            let connection = connect::connect(&global).await;
            match command {
                Command::Version(_) => match connection {
                    Ok(cluster) => version::run(Some(&cluster), output.out).await,
                    Err(error) => {
                        let verdict = version::run(None, output.out).await?;
                        writeln!(
                            output.out,
                            "server: not reachable ({})",
                            error::chain(&error)
                        )?;
                        Ok(verdict)
                    }
                },
                command => run_live(command, &connection?, output).await,
            }
        }
    }
}

/// Runs a command that needs the cluster.
pub async fn run_live(
    command: Command,
    cluster: &connect::Cluster,
    output: &mut Output<'_>,
) -> Result<Verdict, Error> {
    match command {
        Command::Get(args) => get::run(&args, cluster, output.out).await,
        Command::Describe(args) => describe::run(&args, cluster, output).await,
        Command::Graph(args) => graph::run_live(&args, cluster, output).await,
        Command::Logs(args) => logs::run(&args, cluster, output.out).await,
        Command::Approve(args) => requests::approve(&args, cluster, output.out).await,
        Command::Reject(args) => requests::reject(&args, cluster, output.out).await,
        Command::Retry(args) => requests::retry(&args, cluster, output.out).await,
        Command::Stop(args) => requests::stop(&args, cluster, output.out).await,
        Command::Suspend(args) => requests::set_suspend(&args, true, cluster, output.out).await,
        Command::Resume(args) => requests::set_suspend(&args, false, cluster, output.out).await,
        Command::CertStatus(args) => certs::status::run(&args, cluster, output.out).await,
        Command::CertRotate(args) => certs::rotate::run(&args, cluster, output.out).await,
        Command::Validate(_) | Command::Completion(_) | Command::Version(_) => {
            Err(Error::Usage("this command runs offline".to_owned()))
        }
    }
}
