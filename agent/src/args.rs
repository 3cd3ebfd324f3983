//! Command-line flags; each can also be set by a `JOBFLOW_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

pub use crate::webhook::CertMode;

/// The agent's settings.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "jobflow-agent",
    version,
    about = "Runs JobFlows: DAGs of batch/v1 Jobs"
)]
pub struct Args {
    /// A kubeconfig file; without it KUBECONFIG, ~/.kube/config or the in-cluster config is used.
    #[arg(long, env = "JOBFLOW_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// A namespace to watch (repeatable, or comma-separated); all namespaces when unset.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "JOBFLOW_NAMESPACE",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// How many flows are reconciled at once (per watched namespace). A reconcile mostly waits
    /// for the API server, so a burst of new flows waits for free reconciles unless there are
    /// enough of them (32: as many as Argo's workflow workers).
    #[arg(long, env = "JOBFLOW_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "JOBFLOW_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Run the controller only while holding the Lease (`--leader-election=false` to run at once).
    #[arg(long, env = "JOBFLOW_LEADER_ELECTION", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,

    /// The name of the coordination.k8s.io/v1 Lease.
    #[arg(long, env = "JOBFLOW_LEASE_NAME", default_value = "jobflow-agent")]
    pub lease_name: String,

    /// The Lease's namespace; defaults to `$POD_NAMESPACE`, else `default`.
    #[arg(long, env = "JOBFLOW_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's name in the Lease; defaults to `$POD_NAME` (or the hostname) plus a random suffix.
    #[arg(long, env = "JOBFLOW_IDENTITY")]
    pub identity: Option<String>,

    /// Log as human-readable text or as JSON lines.
    #[arg(long, env = "JOBFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` `EnvFilter` syntax; `RUST_LOG`, when set, wins.
    #[arg(long, env = "JOBFLOW_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Where the admission webhook is served over TLS; empty turns the webhook off (no serving,
    /// no certificates, no caBundle).
    #[arg(long, env = "JOBFLOW_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: ListenAddr,

    /// The ValidatingWebhookConfiguration whose caBundle the agent writes (self mode).
    #[arg(
        long,
        env = "JOBFLOW_WEBHOOK_CONFIG",
        default_value = "jobflow-validating"
    )]
    pub webhook_config: String,

    /// The `kubernetes.io/tls` Secret of the webhook's certificates, in the agent's namespace
    /// (`--lease-namespace`, else `$POD_NAMESPACE`, else `default`).
    #[arg(
        long,
        env = "JOBFLOW_WEBHOOK_SECRET",
        default_value = "jobflow-webhook-tls"
    )]
    pub webhook_secret: String,

    /// The webhook's Service: its DNS names are the serving certificate's SANs.
    #[arg(
        long,
        env = "JOBFLOW_WEBHOOK_SERVICE",
        default_value = "jobflow-webhook"
    )]
    pub webhook_service: String,

    /// Another SAN for the serving certificate, a DNS name or an IP (repeatable, or
    /// comma-separated), e.g. `127.0.0.1` when the API server calls the webhook by URL.
    #[arg(
        long = "webhook-extra-san",
        env = "JOBFLOW_WEBHOOK_EXTRA_SAN",
        value_delimiter = ','
    )]
    pub webhook_extra_sans: Vec<String>,

    /// On CREATE, refuse a flow whose creator may not create the Jobs (and ConfigMaps, PVCs) the
    /// agent would create for it (`--webhook-access-check=false` where JobFlow creation is a
    /// deliberate delegation).
    #[arg(long, env = "JOBFLOW_WEBHOOK_ACCESS_CHECK", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub webhook_access_check: bool,

    /// `self`: the leader makes and renews the certificates and writes the caBundle;
    /// `external` (e.g. cert-manager): serve and watch the Secret, never write.
    #[arg(long, env = "JOBFLOW_CERT_MODE", value_enum, default_value_t = CertMode::SelfManaged)]
    pub cert_mode: CertMode,
}

/// A listen address, or none (an empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub Option<SocketAddr>);

impl std::str::FromStr for ListenAddr {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            Ok(Self(None))
        } else {
            text.trim().parse().map(|addr| Self(Some(addr)))
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object a line.
    Json,
}

impl Args {
    /// The Lease's namespace: the flag, else `POD_NAMESPACE`, else `default`.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| non_empty_env("POD_NAMESPACE"))
            .unwrap_or_else(|| "default".to_owned())
    }

    /// This replica's identity: the flag, else `<pod or host name>-<random>`.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let base = non_empty_env("POD_NAME")
                .or_else(|| non_empty_env("HOSTNAME"))
                .or_else(read_hostname)
                .unwrap_or_else(|| "jobflow-agent".to_owned());
            format!("{base}-{:08x}", random_u32())
        })
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A random number from the standard library's randomly keyed hasher: enough to tell two
/// processes with one hostname apart, without a dependency.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    // Truncation is the point: any 32 bits of the hash will do.
    #[allow(clippy::cast_possible_truncation)]
    let bits = hasher.finish() as u32;
    bits
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        match Args::try_parse_from(std::iter::once("jobflow-agent").chain(args.iter().copied())) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert!(a.namespaces.is_empty());
        assert_eq!(a.concurrency, 32);
        assert_eq!(a.admin_addr.to_string(), "0.0.0.0:8080");
        assert!(a.leader_election);
        assert_eq!(a.lease_name, "jobflow-agent");
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!(a.log_level, "info");
        assert_eq!(
            a.webhook_addr.0.map(|addr| addr.to_string()).as_deref(),
            Some("0.0.0.0:9443")
        );
        assert_eq!(a.webhook_config, "jobflow-validating");
        assert_eq!(a.webhook_secret, "jobflow-webhook-tls");
        assert_eq!(a.webhook_service, "jobflow-webhook");
        assert!(a.webhook_extra_sans.is_empty());
        assert_eq!(a.cert_mode, CertMode::SelfManaged);
        assert!(a.webhook_access_check);
        assert!(!parse(&["--webhook-access-check=false"]).webhook_access_check);
    }

    #[test]
    fn webhook_flags() {
        let a = parse(&[
            "--webhook-addr",
            "127.0.0.1:19443",
            "--webhook-extra-san",
            "127.0.0.1",
            "--webhook-extra-san",
            "a.example,b.example",
            "--cert-mode",
            "external",
        ]);
        assert_eq!(a.webhook_addr.0.map(|addr| addr.port()), Some(19443));
        assert_eq!(
            a.webhook_extra_sans,
            ["127.0.0.1", "a.example", "b.example"]
        );
        assert_eq!(a.cert_mode, CertMode::External);
        assert_eq!(parse(&["--webhook-addr="]).webhook_addr, ListenAddr(None));
        assert_eq!(
            parse(&["--cert-mode", "self"]).cert_mode,
            CertMode::SelfManaged
        );
        assert!(Args::try_parse_from(["jobflow-agent", "--webhook-addr", "nope"]).is_err());
    }

    #[test]
    fn test_invocation() {
        let a = parse(&[
            "--kubeconfig",
            "/tmp/kc",
            "--admin-addr",
            "127.0.0.1:18080",
            "--leader-election=false",
        ]);
        assert_eq!(a.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(a.admin_addr.port(), 18080);
        assert!(!a.leader_election);
    }

    #[test]
    fn bare_leader_election_flag_means_true() {
        assert!(parse(&["--leader-election"]).leader_election);
        assert!(!parse(&["--leader-election", "false"]).leader_election);
    }

    #[test]
    fn namespaces_repeat_or_split_on_commas() {
        let a = parse(&["--namespace", "a", "-n", "b,c"]);
        assert_eq!(a.namespaces, ["a", "b", "c"]);
    }

    #[test]
    fn zero_concurrency_is_rejected() {
        let r = Args::try_parse_from(["jobflow-agent", "--concurrency", "0"]);
        assert!(r.is_err());
    }

    #[test]
    fn json_logs() {
        assert_eq!(parse(&["--log-format", "json"]).log_format, LogFormat::Json);
    }

    #[test]
    fn identity_flag_wins_and_default_has_a_suffix() {
        assert_eq!(parse(&["--identity", "me"]).identity(), "me");
        let generated = parse(&[]).identity();
        let (_, suffix) = generated.rsplit_once('-').unwrap_or_default();
        assert_eq!(suffix.len(), 8, "{generated}");
    }

    #[test]
    fn lease_namespace_flag_wins() {
        assert_eq!(parse(&["--lease-namespace", "x"]).lease_namespace(), "x");
    }
}
