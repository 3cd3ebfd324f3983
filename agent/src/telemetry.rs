//! Logging: `tracing` to stderr, as text or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-level` is not a valid filter.
    #[error("parsing the log filter {filter:?}")]
    ParseFilter {
        /// The filter as given.
        filter: String,
        /// Why it is invalid.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("installing the log subscriber")]
    Install(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Installs the global subscriber. `RUST_LOG`, when set and valid, overrides `level`.
pub fn init(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(level).map_err(|source| TelemetryError::ParseFilter {
            filter: level.to_owned(),
            source,
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for people at a terminal, never in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(TelemetryError::Install)
}
