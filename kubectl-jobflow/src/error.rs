//! What can go wrong, named after the action that failed, and the exit code each one means.

use std::path::PathBuf;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The command's verdict is negative (invalid file, flow Failed, request refused).
pub const EXIT_NEGATIVE: u8 = 1;
/// The command line is wrong.
pub const EXIT_USAGE: u8 = 2;
/// The cluster cannot be reached, or what was named does not exist.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A command that could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be loaded or the client built.
    #[error("cannot load the kubeconfig{}; pass --kubeconfig or set KUBECONFIG", describe_path(.path.as_ref()))]
    LoadKubeconfig {
        /// The file given with `--kubeconfig`, if any.
        path: Option<PathBuf>,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A call to the API server failed.
    #[error("cannot {action}")]
    Api {
        /// What was being done, e.g. `get jobflow default/etl`.
        action: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The flow does not exist.
    #[error(
        "jobflow {namespace}/{name} not found; list the namespace's flows with `kubectl jobflow get -n {namespace}`"
    )]
    FlowNotFound {
        /// The namespace looked in.
        namespace: String,
        /// The flow's name.
        name: String,
    },
    /// A step named on the command line is not in the flow.
    #[error("jobflow {flow} has no step {step:?}; its steps are: {known}")]
    StepNotFound {
        /// The flow.
        flow: String,
        /// The name given.
        step: String,
        /// The flow's step names, comma-separated.
        known: String,
    },
    /// A file could not be read.
    #[error("cannot read {}", .path.display())]
    ReadFile {
        /// The file (`-` for stdin).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not one flow where exactly one is needed.
    #[error("{}: {message}", .path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The request makes no sense for the flow as it is (already reported to the user).
    #[error("{0}")]
    Refused(String),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Write(#[from] std::io::Error),
}

impl Error {
    /// The process exit code this error means.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) | Self::ParseFile { .. } | Self::Write(_) => EXIT_NEGATIVE,
            Self::Usage(_) => EXIT_USAGE,
            Self::Api { source, .. } if !is_unreachable(source) => EXIT_NEGATIVE,
            Self::LoadKubeconfig { .. }
            | Self::Api { .. }
            | Self::FlowNotFound { .. }
            | Self::StepNotFound { .. }
            | Self::ReadFile { .. } => EXIT_UNREACHABLE,
        }
    }

    /// True when the output pipe was closed by its reader (`| head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Write(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// True when the API server did not answer, or answered 404/401/403 (nothing to act on).
fn is_unreachable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 401 | 403 | 404),
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::Auth(_)
        | kube::Error::TlsRequired
        | kube::Error::RustlsTls(_) => true,
        _ => false,
    }
}

fn describe_path(path: Option<&PathBuf>) -> String {
    path.map(|path| format!(" {}", path.display()))
        .unwrap_or_default()
}

/// The error and its causes on one line: `cannot get jobflow a/b: connection refused`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
