//! The command line: global options as kubectl spells them, and one subcommand per action.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What the exit codes mean, shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the verdict is negative: an invalid file, a flow that Failed while waiting, a refused request
  2  usage error
  3  the cluster cannot be reached, or the flow, step or file was not found";

/// `kubectl jobflow`: see and steer zen-flow JobFlows.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-jobflow",
    bin_name = "kubectl jobflow",
    version,
    about = "See and steer zen-flow JobFlows (workflow.kube-zen.io/v1alpha1)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, spelled as kubectl spells them.
#[derive(Clone, Debug, Default, Args)]
pub struct GlobalOptions {
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Never colour the output (also: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List flows, or show one: phase, progress, age.
    #[command(visible_alias = "list")]
    Get(GetArgs),
    /// Show a flow in detail: times, conditions, steps, outputs, recent Events.
    Describe(DescribeArgs),
    /// Draw a flow's DAG, from the cluster or from a file.
    Graph(GraphArgs),
    /// Check flow manifests offline, as the agent would.
    Validate(ValidateArgs),
    /// Approve a Manual step that waits (or will wait) for approval.
    Approve(ApproveArgs),
    /// Reject a Manual step: it fails (reason Rejected) and what depends on it is skipped.
    Reject(RejectArgs),
    /// Retry the failed part of a finished flow, or named steps and everything downstream.
    Retry(RetryArgs),
    /// Suspend a flow: no new step starts; running Jobs finish.
    Suspend(SuspendArgs),
    /// Resume a suspended flow.
    Resume(SuspendArgs),
    /// Stop a flow: running Jobs deleted, the rest skipped, finally steps run; ends Failed.
    Stop(SuspendArgs),
    /// Print the step pods' logs, each line prefixed by step and container.
    Logs(LogsArgs),
    /// Show the webhook's certificates: CA and leaf validity, caBundle sync, the leader.
    CertStatus(CertStatusArgs),
    /// Ask the agent's leader to rotate the webhook's leaf (and with --ca, its CA key).
    CertRotate(CertRotateArgs),
    /// Show the plugin's version, and the agent's and the CRD's when the cluster answers.
    Version(VersionArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// How `get` prints flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Columns: name, phase, progress, age.
    #[default]
    Table,
    /// More columns: running and failed counts, times, the Ready message.
    Wide,
    /// The objects as JSON.
    Json,
    /// The objects as YAML.
    Yaml,
    /// `jobflow.workflow.kube-zen.io/<name>`, one a line.
    Name,
}

/// `get|list [FLOW]`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// One flow; all flows of the namespace when absent.
    pub flow: Option<String>,
    /// List flows of every namespace.
    #[arg(short = 'A', long, conflicts_with = "flow")]
    pub all_namespaces: bool,
    /// Only flows with these labels, e.g. `team=data,tier!=dev`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// After listing, print a line each time a flow changes (until interrupted).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `describe FLOW`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The flow.
    pub flow: String,
    /// Redraw every second until the flow has ended (exit 1 if it Failed).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// The notations `graph` draws in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Layers from top to bottom, each step with what it waits for.
    #[default]
    Tree,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `graph FLOW` or `graph -f FILE`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["flow", "filename"]))]
pub struct GraphArgs {
    /// A flow on the cluster (steps coloured by phase).
    pub flow: Option<String>,
    /// A manifest file instead (`-` for stdin); works offline.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub filename: Option<PathBuf>,
    /// The notation.
    #[arg(long, value_enum, default_value_t)]
    pub format: GraphFormat,
    /// Redraw every second until the flow has ended (exit 1 if it Failed); FLOW only.
    #[arg(short = 'w', long, conflicts_with = "filename")]
    pub watch: bool,
}

/// `validate -f FILE...`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files, each with one or more YAML documents, or folders of them (`-` for
    /// stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// How long to wait for the agent, and whether to.
#[derive(Clone, Copy, Debug, Args)]
pub struct WaitArgs {
    /// Wait until the agent has carried out the request.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, e.g. `90s`, `5m`.
    #[arg(long, value_parser = parse_timeout, default_value = "2m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// `approve FLOW STEP`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The flow.
    pub flow: String,
    /// The Manual step to approve.
    pub step: String,
    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `reject FLOW STEP [--message M]`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The flow.
    pub flow: String,
    /// The Manual step to reject.
    pub step: String,
    /// Why, shown as the step's message.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `retry FLOW [--step S]...`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The flow.
    pub flow: String,
    /// Retry this step and everything downstream (repeatable); without it, the failed and
    /// skipped steps of a finished flow.
    #[arg(long = "step", value_name = "STEP")]
    pub steps: Vec<String>,
    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `suspend FLOW`, `resume FLOW` and `stop FLOW`.
#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// The flow.
    pub flow: String,
    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `logs FLOW [--step S]... [-f] [--attempt N]`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The flow.
    pub flow: String,
    /// Only this step (repeatable); all steps that started when absent.
    #[arg(long = "step", value_name = "STEP")]
    pub steps: Vec<String>,
    /// Follow the logs, and those of steps that start later, until the flow ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// This attempt instead of each step's latest.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub attempt: Option<i32>,
}

/// Where the agent keeps the webhook's certificates (the agent's flags of the same names).
#[derive(Clone, Debug, Args)]
pub struct CertTarget {
    /// The agent's namespace (its Secret and Lease live there).
    #[arg(long, default_value = "zen-flow-system", value_name = "NAMESPACE")]
    pub agent_namespace: String,
    /// The certificate Secret (`--webhook-secret`).
    #[arg(long, default_value = "jobflow-webhook-tls", value_name = "NAME")]
    pub secret: String,
    /// The ValidatingWebhookConfiguration (`--webhook-config`).
    #[arg(long, default_value = "jobflow-validating", value_name = "NAME")]
    pub webhook_config: String,
    /// The agent's Lease (`--lease-name`).
    #[arg(long, default_value = "jobflow-agent", value_name = "NAME")]
    pub lease: String,
}

/// How `cert-status` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One fact a line.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// `cert-status`.
#[derive(Debug, Args)]
pub struct CertStatusArgs {
    /// Where the certificates are.
    #[command(flatten)]
    pub target: CertTarget,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: StatusFormat,
}

/// `cert-rotate [--ca] [--wait]`.
#[derive(Debug, Args)]
pub struct CertRotateArgs {
    /// Where the certificates are.
    #[command(flatten)]
    pub target: CertTarget,
    /// Change the CA key too (in phases: the new CA joins every caBundle before it signs).
    #[arg(long)]
    pub ca: bool,
    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the plugin's version; do not ask the cluster.
    #[arg(long)]
    pub client: bool,
}

/// The shells `completion` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// `completion bash|zsh|fish`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Parses `90s`, `5m`, `1h30m` with the same rules as flow durations.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    jobflow::validation::parse_duration(text).map_err(|error| error.to_string())
}
