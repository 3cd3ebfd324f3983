//! `jobflow-load`: runs many JobFlows at once against the local control plane with a real
//! `jobflow-agent`, and reports its throughput, API writes, memory and reaction latency.
//! See `docs/load.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use jobflow::api::{FlowPhase, JobFlow};
use jobflow::validation::parse_duration;
use jobflow_tests::agent::Sample;
use jobflow_tests::load::observe::{MemorySampler, Watches, memory};
use jobflow_tests::load::process::Agent;
use jobflow_tests::load::report::{
    ApiserverWrites, MemoryReport, Report, Setup, WriteRow, Writes, latencies, per, seconds, to_f64,
};
use jobflow_tests::load::shape::{dependencies, depth, flow};
use jobflow_tests::load::stats::{counter_by, histogram};
use jobflow_tests::{KUBECONFIG_ENV, TestNamespace, install_crd, kubeconfig_path, workspace_root};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::time::Instant;

/// Measures jobflow-agent under load on the local control plane (tests/cluster/up.sh).
#[derive(Debug, Parser)]
#[command(name = "jobflow-load")]
struct Args {
    /// JobFlows to apply at once.
    #[arg(long, default_value_t = 100)]
    flows: usize,
    /// Steps per flow (two roots, layers of two, one join).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    steps: u16,
    /// The control plane's kubeconfig [default: tests/cluster/.state/kubeconfig].
    #[arg(long, env = KUBECONFIG_ENV)]
    kubeconfig: Option<PathBuf>,
    /// The agent binary [default: target/release/jobflow-agent].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// One more agent argument, e.g. `--agent-arg=--concurrency=8` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    agent_arg: Vec<String>,
    /// How long each step's pod runs (a Go duration).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pod_duration: Duration,
    /// How long to wait for every flow to succeed.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    timeout: Duration,
    /// How long to keep counting the agent's writes after the last flow succeeded.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    settle: Duration,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep the namespace (and its flows, Jobs and pods) afterwards.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kubeconfig = args.kubeconfig.clone().unwrap_or_else(kubeconfig_path);
    let binary = args
        .agent
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/jobflow-agent"));
    anyhow::ensure!(
        binary.exists(),
        "the agent binary {} does not exist: build it with `cargo build --release -p \
         jobflow-agent`, or pass --agent",
        binary.display()
    );
    let client = connect(&kubeconfig).await?;
    install_crd(&client).await?;
    let ns = TestNamespace::create(client.clone(), "load").await?;
    eprintln!("namespace {}", ns.name());
    let outcome = run(&args, &binary, &kubeconfig, &client, ns.name()).await;
    if args.keep {
        eprintln!("keeping namespace {}", ns.name());
    } else if let Err(error) = ns.delete().await {
        eprintln!("deleting namespace {} failed: {error:#}", ns.name());
    }
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    anyhow::ensure!(
        report.not_succeeded.is_empty(),
        "{} of {} flows did not succeed",
        report.not_succeeded.len(),
        args.flows
    );
    Ok(())
}

/// Starts the agent and the observers, applies the flows, waits, and measures.
async fn run(
    args: &Args,
    binary: &Path,
    kubeconfig: &Path,
    client: &Client,
    namespace: &str,
) -> anyhow::Result<Report> {
    let steps = usize::from(args.steps);
    let deps = dependencies(steps);
    let mut report = Report {
        setup: Setup {
            flows: args.flows,
            steps,
            edges_per_flow: deps.iter().map(Vec::len).sum(),
            critical_path_steps: depth(&deps),
            pod_duration_ms: u64::try_from(args.pod_duration.as_millis()).unwrap_or(u64::MAX),
            namespace: namespace.to_owned(),
            agent: std::iter::once(binary.display().to_string())
                .chain(args.agent_arg.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            load_before: load_average(),
            ..Setup::default()
        },
        ..Report::default()
    };
    let agent = Agent::start(binary, kubeconfig, namespace, &args.agent_arg).await?;
    report.setup.agent_log = agent.log_path().display().to_string();
    let watches = Watches::start(client, namespace).await?;
    let sampler = MemorySampler::start(agent.pid(), Duration::from_millis(200));
    let idle = memory(agent.pid())?;
    let agent_before = agent.metrics().await?;
    let server_before = apiserver_metrics(client).await;

    let names: Vec<String> = (0..args.flows).map(|i| format!("load-{i:04}")).collect();
    let started = Instant::now();
    apply_flows(client, namespace, &names, steps, args.pod_duration).await?;
    eprintln!(
        "created {} flows in {:.2}s; waiting for them (timeout {:?})",
        args.flows,
        seconds(started.elapsed()),
        args.timeout
    );
    let end = wait_for_flows(&agent, &watches, &names, started + args.timeout).await?;
    let agent_at_end = agent.metrics().await?;
    tokio::time::sleep(args.settle).await;
    let agent_after = agent.metrics().await?;
    let server_after = apiserver_metrics(client).await;
    let last = memory(agent.pid())?;
    let (rss_peak, sample_count) = sampler.peak();
    drop(sampler);

    let wall = end.duration_since(started);
    report.wall_seconds = seconds(wall);
    report.agent_writes = writes(
        &agent_before,
        &agent_at_end,
        &agent_after,
        args.flows * steps,
    );
    outcomes(&mut report, &watches, &names, steps);
    report.flows_per_second = to_f64(report.succeeded) / report.wall_seconds.max(f64::MIN_POSITIVE);
    report.apiserver_writes = match (server_before, server_after) {
        (Ok(before), Ok(after)) => Some(apiserver_writes(&before, &after)),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("skipping the API server's view: {error:#}");
            None
        }
    };
    report.memory = MemoryReport {
        idle_rss_kib: idle.rss_kib,
        peak_hwm_kib: last.hwm_kib,
        max_sampled_rss_kib: rss_peak.rss_kib.max(last.rss_kib),
        final_rss_kib: last.rss_kib,
        samples: sample_count,
    };
    report.reconcile = histogram(
        &agent_after,
        &agent_before,
        "zen_flow_reconciliation_duration_seconds",
    );
    report.reconcile_errors = counter_by(
        &agent_after,
        &agent_before,
        "zen_flow_reconciliation_errors_total",
        &["error"],
    )
    .into_iter()
    .map(|(key, count)| (key.join(","), count))
    .collect();
    report.agent_log_warn_error = log_levels(agent.log_path());
    let status = agent.stop().await?;
    if !status.success() {
        eprintln!("the agent exited with {status}");
    }
    drop(watches);
    report.setup.load_after = load_average();
    Ok(report)
}

/// Creates the flows `names`, 8 requests at a time.
async fn apply_flows(
    client: &Client,
    namespace: &str,
    names: &[String],
    steps: usize,
    pod_duration: Duration,
) -> anyhow::Result<()> {
    let api: Api<JobFlow> = Api::namespaced(client.clone(), namespace);
    stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &flow(name, steps, pod_duration))
                    .await
                    .with_context(|| format!("creating JobFlow {name}"))
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .map(drop)
}

/// Waits until every flow of `names` was seen finished, and returns when the last one was; at
/// `deadline`, returns it. Fails if the agent exits.
async fn wait_for_flows(
    agent: &Agent,
    watches: &Watches,
    names: &[String],
    deadline: Instant,
) -> anyhow::Result<Instant> {
    loop {
        agent_alive(agent)?;
        {
            let seen = watches.lock();
            let finished: Vec<Instant> = names
                .iter()
                .filter_map(|name| seen.flows.get(name)?.finished)
                .collect();
            if finished.len() == names.len() {
                return Ok(finished.into_iter().max().unwrap_or(deadline));
            }
        }
        if Instant::now() >= deadline {
            return Ok(deadline);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which flows succeeded, the Jobs seen, the latencies and the watch errors.
fn outcomes(report: &mut Report, watches: &Watches, names: &[String], steps: usize) {
    let seen = watches.lock();
    for name in names {
        match seen.flows.get(name) {
            Some(flow) if flow.phase == Some(FlowPhase::Succeeded) => report.succeeded += 1,
            Some(flow) => report.not_succeeded.push(format!(
                "{name}: {} ({})",
                flow.phase.map_or("no phase", FlowPhase::as_str),
                flow.reason
            )),
            None => report.not_succeeded.push(format!("{name}: never seen")),
        }
    }
    report.jobs_seen = seen.jobs.len();
    for flow in seen.flows.values() {
        report.agent_writes.status_changes_seen += flow.status_changes;
        report.agent_writes.uid_only_status_changes += flow.uid_only_changes;
    }
    report.latency = latencies(&seen, names, steps);
    report.watch_errors.clone_from(&seen.errors);
}

/// The agent's writes between `before` and `after`, and how many came after `at_end`.
fn writes(before: &[Sample], at_end: &[Sample], after: &[Sample], steps: usize) -> Writes {
    const NAME: &str = "zen_flow_api_requests_total";
    let keys = ["operation", "resource"];
    let rows: Vec<WriteRow> = counter_by(after, before, NAME, &keys)
        .into_iter()
        .map(|(key, count)| WriteRow {
            operation: key[0].clone(),
            resource: key[1].clone(),
            count,
        })
        .collect();
    // Folded from +0.0: an empty float sum is -0.0.
    let total = rows.iter().fold(0.0, |sum, row| sum + row.count);
    let after_finish = counter_by(after, at_end, NAME, &[])
        .values()
        .fold(0.0, |sum, count| sum + count);
    Writes {
        per_step: per(total, steps),
        rows,
        total,
        after_finish,
        ..Writes::default()
    }
}

/// The API server's `apiserver_request_total` series (only those: the page is large).
async fn apiserver_metrics(client: &Client) -> anyhow::Result<Vec<Sample>> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building GET /metrics")?;
    let text = client
        .request_text(request)
        .await
        .context("GET /metrics from the API server")?;
    let wanted: String = text
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .flat_map(|line| [line, "\n"])
        .collect();
    jobflow_tests::agent::parse_metrics(&wanted)
}

/// The growth of mutating requests on Jobs and JobFlows.
fn apiserver_writes(before: &[Sample], after: &[Sample]) -> Vec<ApiserverWrites> {
    let keys = ["verb", "resource", "subresource", "code"];
    counter_by(after, before, "apiserver_request_total", &keys)
        .into_iter()
        .filter(|(key, _)| {
            matches!(key[1].as_str(), "jobs" | "jobflows")
                && !matches!(key[0].as_str(), "GET" | "LIST" | "WATCH")
        })
        .map(|(key, count)| ApiserverWrites {
            verb: key[0].clone(),
            resource: key[1].clone(),
            subresource: key[2].clone(),
            code: key[3].clone(),
            count,
        })
        .collect()
}

/// Fails, with the log's tail, if the agent has exited.
fn agent_alive(agent: &Agent) -> anyhow::Result<()> {
    let status = std::fs::read_to_string(format!("/proc/{}/stat", agent.pid()));
    // A zombie (state Z) has exited but is not reaped yet.
    let running = status.is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    anyhow::ensure!(
        running,
        "the agent exited during the run; its log {}:\n{}",
        agent.log_path().display(),
        agent.log_tail()
    );
    Ok(())
}

/// How many lines of the agent's JSON log are at WARN and at ERROR.
fn log_levels(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let count = |level: &str| {
        text.lines()
            .filter(|line| line.contains(&format!("\"level\":\"{level}\"")))
            .count()
    };
    (count("WARN"), count("ERROR"))
}

/// `/proc/loadavg` (1, 5 and 15 minute load averages), or why not.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |error| format!("unknown ({error})"),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// A client for the control plane of `kubeconfig`, checked to answer.
async fn connect(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;
    client.apiserver_version().await.with_context(|| {
        format!(
            "the control plane of {} does not answer; start it with `bash tests/cluster/up.sh`",
            kubeconfig.display()
        )
    })?;
    Ok(client)
}
