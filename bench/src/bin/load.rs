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
use jobflow_bench::argo::{self, workflow_resource};
use jobflow_bench::engine::Engine;
use jobflow_bench::observe::{MemorySampler, Watches, cpu_seconds, memory};
use jobflow_bench::process::Agent;
use jobflow_bench::report::{
    ApiserverWrites, MemoryReport, ProcessFigures, Report, Setup, WriteRow, Writes, first_jobs,
    latencies, per, seconds, status_sizes, to_f64,
};
use jobflow_bench::scenario::{Arrival, Plan, Scenario};
use jobflow_bench::shape::{dependencies, depth, flow};
use jobflow_bench::stats::{counter_by, histogram};
use jobflow_tests::agent::Sample;
use jobflow_tests::{KUBECONFIG_ENV, TestNamespace, install_crd, kubeconfig_path, workspace_root};
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

/// Measures jobflow-agent under load on the local control plane (tests/cluster/up.sh).
#[derive(Debug, Parser)]
#[command(name = "jobflow-load")]
struct Args {
    /// A named scenario: sets the flows, steps and arrival (`--flows`/`--steps` override its
    /// counts). Without one: `--flows` flows of `--steps` steps, 8 creates in flight.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// JobFlows to apply [default: 100, or the scenario's].
    #[arg(long)]
    flows: Option<usize>,
    /// Steps per flow (two roots, layers of two, one join) [default: 10, or the scenario's].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    steps: Option<u16>,
    /// `sustained` only: flows created per minute (`N` or `N/min`).
    #[arg(long, default_value = "60/min", value_parser = parse_rate)]
    rate: u32,
    /// `sustained` only: minutes to keep creating flows.
    #[arg(long, default_value_t = 2)]
    minutes: u32,
    /// The engine: `zen-flow` (the harness starts the agent) or `argo` (the caller runs Argo's
    /// workflow-controller and passes `--controller-pid`).
    #[arg(long, value_enum, default_value_t = Engine::ZenFlow)]
    engine: Engine,
    /// `argo` only: the workflow-controller's process id, for its memory and CPU.
    #[arg(long)]
    controller_pid: Option<u32>,
    /// zen-flow only: agents, each owning a namespace of its own (`--namespace`), the flows
    /// spread evenly over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    shards: u16,
    /// The kubeconfig of agent shard `i` (repeatable, in order; default `--kubeconfig`): a
    /// user per agent tells their requests apart in the API server's audit log.
    #[arg(long)]
    agent_kubeconfig: Vec<PathBuf>,
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
    let plan = plan(&args);
    let kubeconfig = args.kubeconfig.clone().unwrap_or_else(kubeconfig_path);
    let binary = args
        .agent
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/jobflow-agent"));
    match args.engine {
        Engine::ZenFlow => anyhow::ensure!(
            binary.exists(),
            "the agent binary {} does not exist: build it with `cargo build --release -p \
             jobflow-agent`, or pass --agent",
            binary.display()
        ),
        Engine::Argo => anyhow::ensure!(
            args.controller_pid.is_some(),
            "--engine argo needs --controller-pid (the workflow-controller the caller started)"
        ),
    }
    let client = jobflow_tests::client_for(&kubeconfig).await?;
    if args.engine == Engine::ZenFlow {
        install_crd(&client).await?;
    }
    let shards = if args.engine == Engine::ZenFlow {
        usize::from(args.shards)
    } else {
        1
    };
    let mut namespaces = Vec::new();
    for _ in 0..shards {
        let ns = TestNamespace::create(client.clone(), "load").await?;
        eprintln!("namespace {}", ns.name());
        namespaces.push(ns);
    }
    let names: Vec<String> = namespaces.iter().map(|ns| ns.name().to_owned()).collect();
    let outcome = run(&args, &plan, &binary, &kubeconfig, &client, &names).await;
    for ns in &namespaces {
        if args.keep {
            eprintln!("keeping namespace {}", ns.name());
        } else if let Err(error) = ns.delete().await {
            eprintln!("deleting namespace {} failed: {error:#}", ns.name());
        }
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
        plan.flows
    );
    Ok(())
}

/// The run's flows, steps and arrival, from the scenario and the explicit flags.
fn plan(args: &Args) -> Plan {
    let mut plan = args.scenario.map_or(
        Plan {
            flows: 100,
            steps: 10,
            arrival: Arrival::Burst { in_flight: 8 },
        },
        |scenario| scenario.plan(args.rate, args.minutes),
    );
    if let Some(flows) = args.flows {
        plan.flows = flows;
    }
    if let Some(steps) = args.steps {
        plan.steps = usize::from(steps);
    }
    plan
}

/// `N` or `N/min`: flows per minute.
fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/min").unwrap_or(text);
    match number.parse::<u32>() {
        Ok(rate) if rate > 0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate like 60/min")),
    }
}

/// The flow names of a run: `load-<i>`, or `load-<shard>-<i>` with several shards (the
/// namespaces differ, but one name per flow keeps the harness's maps simple).
fn flow_names(flows: usize, shards: usize) -> Vec<(usize, String)> {
    (0..flows)
        .map(|i| {
            let shard = i % shards;
            let name = if shards > 1 {
                format!("load-{shard}-{i:04}")
            } else {
                format!("load-{i:04}")
            };
            (shard, name)
        })
        .collect()
}

/// The wall clock now, in Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The processes a run measures: the agents it started, or the controller it was given.
struct Controllers {
    agents: Vec<Agent>,
    external: Option<u32>,
}

impl Controllers {
    /// One agent per namespace (zen-flow), each with its shard's kubeconfig; or Argo's
    /// controller, already running.
    async fn start(
        args: &Args,
        binary: &Path,
        kubeconfig: &Path,
        namespaces: &[String],
    ) -> anyhow::Result<Self> {
        let mut controllers = Self {
            agents: Vec::new(),
            external: args.controller_pid.filter(|_| args.engine == Engine::Argo),
        };
        if args.engine == Engine::ZenFlow {
            for (shard, namespace) in namespaces.iter().enumerate() {
                let own = args
                    .agent_kubeconfig
                    .get(shard)
                    .map_or(kubeconfig, PathBuf::as_path);
                controllers
                    .agents
                    .push(Agent::start(binary, own, namespace, &args.agent_arg).await?);
            }
        }
        Ok(controllers)
    }

    /// Every measured process: its name and pid.
    fn pids(&self) -> Vec<(String, u32)> {
        let mut pids: Vec<(String, u32)> = self
            .agents
            .iter()
            .map(|agent| {
                (
                    format!("jobflow-agent {}", agent.log_path().display()),
                    agent.pid(),
                )
            })
            .collect();
        if let Some(pid) = self.external {
            pids.push(("workflow-controller".to_owned(), pid));
        }
        pids
    }

    /// Every agent's `/metrics`, concatenated (counters of the same series add up).
    async fn metrics(&self) -> anyhow::Result<Vec<Sample>> {
        let mut all = Vec::new();
        for agent in &self.agents {
            all.extend(agent.metrics().await?);
        }
        Ok(all)
    }

    /// Fails if a measured process has exited.
    fn alive(&self) -> anyhow::Result<()> {
        for agent in &self.agents {
            agent_alive(agent)?;
        }
        if let Some(pid) = self.external {
            anyhow::ensure!(
                process_running(pid),
                "the controller (pid {pid}) exited during the run"
            );
        }
        Ok(())
    }
}

/// Starts the agents (or takes the controller) and the observers, applies the flows, waits,
/// and measures.
async fn run(
    args: &Args,
    plan: &Plan,
    binary: &Path,
    kubeconfig: &Path,
    client: &Client,
    namespaces: &[String],
) -> anyhow::Result<Report> {
    let steps = plan.steps;
    let mut report = Report {
        setup: setup(args, plan, binary, namespaces),
        ..Report::default()
    };
    let controllers = Controllers::start(args, binary, kubeconfig, namespaces).await?;
    report.setup.agent_log = controllers
        .agents
        .iter()
        .map(|agent| agent.log_path().display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let watches = args.engine.watch(client, namespaces).await?;
    let pids = controllers.pids();
    let samplers: Vec<MemorySampler> = pids
        .iter()
        .map(|(_, pid)| MemorySampler::start(*pid, Duration::from_millis(200)))
        .collect();
    let mut figures = Vec::new();
    for (name, pid) in &pids {
        figures.push(ProcessFigures {
            name: name.clone(),
            pid: *pid,
            idle_rss_kib: memory(*pid)?.rss_kib,
            cpu_seconds: cpu_seconds(*pid)?,
            ..ProcessFigures::default()
        });
    }
    let agent_before = controllers.metrics().await?;
    let server_before = apiserver_metrics(client).await;

    let shards = namespaces.len();
    let names = flow_names(plan.flows, shards);
    report.setup.started_unix = unix_now();
    let started = Instant::now();
    let create = apply_flows(args, plan, client, namespaces, &names);
    let flow_names: Vec<String> = names.iter().map(|(_, name)| name.clone()).collect();
    create.await?;
    eprintln!(
        "created {} flows in {:.2}s; waiting for them (timeout {:?})",
        plan.flows,
        seconds(started.elapsed()),
        args.timeout
    );
    let end = wait_for_flows(&controllers, &watches, &flow_names, started + args.timeout).await?;
    let agent_at_end = controllers.metrics().await?;
    tokio::time::sleep(args.settle).await;
    let agent_after = controllers.metrics().await?;
    report.setup.ended_unix = unix_now();
    let server_after = apiserver_metrics(client).await;
    for ((figure, sampler), (_, pid)) in figures.iter_mut().zip(&samplers).zip(&pids) {
        let last = memory(*pid)?;
        let (peak, _) = sampler.peak();
        figure.peak_rss_kib = last.hwm_kib.max(peak.rss_kib).max(last.rss_kib);
        figure.cpu_seconds = cpu_seconds(*pid)? - figure.cpu_seconds;
    }
    if let (Some(agent), Some(sampler)) = (controllers.agents.first(), samplers.first()) {
        let last = memory(agent.pid())?;
        let (rss_peak, sample_count) = sampler.peak();
        report.memory = MemoryReport {
            idle_rss_kib: figures.first().map_or(0, |f| f.idle_rss_kib),
            peak_hwm_kib: last.hwm_kib,
            max_sampled_rss_kib: rss_peak.rss_kib.max(last.rss_kib),
            final_rss_kib: last.rss_kib,
            samples: sample_count,
        };
    }
    drop(samplers);
    report.processes = figures;

    report.wall_seconds = seconds(end.duration_since(started));
    report.agent_writes = writes(
        &agent_before,
        &agent_at_end,
        &agent_after,
        plan.flows * steps,
    );
    outcomes(&mut report, &watches, &flow_names, steps);
    report.flows_per_second = to_f64(report.succeeded) / report.wall_seconds.max(f64::MIN_POSITIVE);
    report.flows_per_minute = report.flows_per_second * 60.0;
    report.apiserver_writes = match (server_before, server_after) {
        (Ok(before), Ok(after)) => Some(apiserver_writes(&before, &after)),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("skipping the API server's view: {error:#}");
            None
        }
    };
    agent_figures(&mut report, &controllers, &agent_before, &agent_after);
    for agent in controllers.agents {
        let status = agent.stop().await?;
        if !status.success() {
            eprintln!("an agent exited with {status}");
        }
    }
    drop(watches);
    report.setup.load_after = load_average();
    Ok(report)
}

/// What a run is, before it runs.
fn setup(args: &Args, plan: &Plan, binary: &Path, namespaces: &[String]) -> Setup {
    let steps = plan.steps;
    let deps = dependencies(steps);
    Setup {
        flows: plan.flows,
        steps,
        edges_per_flow: deps.iter().map(Vec::len).sum(),
        critical_path_steps: depth(&deps),
        pod_duration_ms: u64::try_from(args.pod_duration.as_millis()).unwrap_or(u64::MAX),
        namespace: namespaces.join(","),
        agent: match args.engine {
            Engine::ZenFlow => std::iter::once(binary.display().to_string())
                .chain(args.agent_arg.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            Engine::Argo => "workflow-controller (started by the caller)".to_owned(),
        },
        load_before: load_average(),
        scenario: args.scenario,
        engine: args.engine,
        arrival: Some(plan.arrival),
        namespaces: namespaces.to_vec(),
        ..Setup::default()
    }
}

/// The agents' own figures: reconcile durations and errors, WARN/ERROR log lines.
fn agent_figures(
    report: &mut Report,
    controllers: &Controllers,
    before: &[Sample],
    after: &[Sample],
) {
    report.reconcile = histogram(after, before, "zen_flow_reconciliation_duration_seconds");
    report.reconcile_errors = counter_by(
        after,
        before,
        "zen_flow_reconciliation_errors_total",
        &["error"],
    )
    .into_iter()
    .map(|(key, count)| (key.join(","), count))
    .collect();
    for agent in &controllers.agents {
        let (warn, error) = log_levels(agent.log_path());
        report.agent_log_warn_error.0 += warn;
        report.agent_log_warn_error.1 += error;
    }
}

/// Creates the flows `names` (each in its shard's namespace) as `plan.arrival` says: a burst
/// with so many requests in flight, or one every so often.
async fn apply_flows(
    args: &Args,
    plan: &Plan,
    client: &Client,
    namespaces: &[String],
    names: &[(usize, String)],
) -> anyhow::Result<()> {
    let create = |shard: usize, name: String| {
        let client = client.clone();
        let namespace = namespaces[shard].clone();
        let (engine, steps, pod_duration) = (args.engine, plan.steps, args.pod_duration);
        async move {
            create_flow(&client, engine, &namespace, &name, steps, pod_duration)
                .await
                .with_context(|| format!("creating flow {namespace}/{name}"))
        }
    };
    match plan.arrival {
        Arrival::Burst { in_flight } => {
            stream::iter(names.iter().cloned())
                .map(|(shard, name)| create(shard, name))
                .buffer_unordered(in_flight.max(1))
                .try_collect::<Vec<_>>()
                .await?;
        }
        Arrival::Paced { every } => {
            let start = Instant::now();
            let mut pending = Vec::new();
            for (index, (shard, name)) in names.iter().cloned().enumerate() {
                let at = start + every * u32::try_from(index).unwrap_or(u32::MAX);
                tokio::time::sleep_until(at).await;
                pending.push(tokio::spawn(create(shard, name)));
            }
            for task in pending {
                task.await.context("a create task panicked")??;
            }
        }
    }
    Ok(())
}

/// Creates one flow: a JobFlow for zen-flow, the equivalent Workflow for Argo.
async fn create_flow(
    client: &Client,
    engine: Engine,
    namespace: &str,
    name: &str,
    steps: usize,
    pod_duration: Duration,
) -> anyhow::Result<()> {
    match engine {
        Engine::ZenFlow => {
            let api: Api<JobFlow> = Api::namespaced(client.clone(), namespace);
            api.create(&PostParams::default(), &flow(name, steps, pod_duration))
                .await?;
        }
        Engine::Argo => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &workflow_resource());
            api.create(
                &PostParams::default(),
                &argo::workflow(name, steps, pod_duration),
            )
            .await?;
        }
    }
    Ok(())
}

/// Waits until every flow of `names` was seen finished, and returns when the last one was; at
/// `deadline`, returns it. Fails if the agent exits.
async fn wait_for_flows(
    controllers: &Controllers,
    watches: &Watches,
    names: &[String],
    deadline: Instant,
) -> anyhow::Result<Instant> {
    loop {
        controllers.alive()?;
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
    report.time_to_first_job = first_jobs(&seen, names);
    report.status_bytes = status_sizes(&seen, names);
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

/// Whether process `pid` runs (a zombie, state Z, has exited but is not reaped yet).
fn process_running(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    status.is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Fails, with the log's tail, if the agent has exited.
fn agent_alive(agent: &Agent) -> anyhow::Result<()> {
    anyhow::ensure!(
        process_running(agent.pid()),
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
