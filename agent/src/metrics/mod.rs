//! Prometheus series, named as in the original zen-flow. Labels are bounded: phases, results,
//! reasons, static error names, operations and namespaces; never object names.

mod gauges;
mod labels;
#[cfg(test)]
mod rules_tests;
mod webhook;

use std::sync::Mutex;
use std::time::Duration;

use jobflow::api::JobFlow;
use jobflow::planner::Transitions;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub use gauges::compute_gauges;
pub use labels::{Operation, Resource};
pub use webhook::{Cert, Source, WebhookMetrics};

/// Errors registering the series.
#[derive(Debug, thiserror::Error)]
#[error("registering the metric {name}")]
pub struct RegisterError {
    name: &'static str,
    source: prometheus::Error,
}

/// Errors rendering the series.
#[derive(Debug, thiserror::Error)]
#[error("encoding the metrics")]
pub struct EncodeError(#[source] prometheus::Error);

/// What the per-flow index holds, for the `zen_flow_state_entries` gauge: each returns to its
/// baseline once deleted flows are forgotten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateEntries {
    /// Flows with a state (one per cached flow).
    pub flow_states: usize,
    /// Flows whose last written status the cache has not shown yet.
    pub written: usize,
    /// Jobs we created or read, standing in for the cache.
    pub applied: usize,
    /// Flows whose step templates are kept (as text).
    pub templates: usize,
}

impl StateEntries {
    /// The sum of two scopes' entries.
    #[must_use]
    pub fn add(self, other: Self) -> Self {
        Self {
            flow_states: self.flow_states + other.flow_states,
            written: self.written + other.written,
            applied: self.applied + other.applied,
            templates: self.templates + other.templates,
        }
    }
}

/// Every series the agent exports, and the registry that holds them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobflows: IntGaugeVec,
    phase_transitions: IntCounterVec,
    steps: IntGaugeVec,
    step_duration: HistogramVec,
    reconciliation_duration: Histogram,
    step_errors: IntCounterVec,
    reconciliation_errors: IntCounterVec,
    step_retries: IntCounter,
    retry_backoff: Histogram,
    approvals_pending: IntGauge,
    approval_latency: Histogram,
    step_timeouts: IntCounter,
    dag_computation: Histogram,
    status_update: Histogram,
    step_queue_depth: IntGauge,
    api_requests: IntCounterVec,
    workqueue_depth: IntGauge,
    state_entries: IntGaugeVec,
    /// The admission webhook's series.
    pub webhook: WebhookMetrics,
    /// Serialises the reset-and-set of the recomputed gauges between concurrent scrapes.
    refresh: Mutex<()>,
}

const FAST: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const STEP: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];
const WAIT: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

impl Metrics {
    /// Creates and registers every series.
    #[allow(
        clippy::too_many_lines,
        reason = "one registration per series and nothing else"
    )]
    pub fn new() -> Result<Self, RegisterError> {
        let r = Registry::new();
        Ok(Self {
            webhook: WebhookMetrics::new(&r)?,
            jobflows: gauge_vec(
                &r,
                "zen_flow_jobflows",
                "JobFlows by phase and namespace",
                &["phase", "namespace"],
            )?,
            phase_transitions: counter_vec(
                &r,
                "zen_flow_jobflow_phase_transitions_total",
                "JobFlow phase changes",
                &["from", "to"],
            )?,
            steps: gauge_vec(
                &r,
                "zen_flow_steps",
                "Steps of all cached JobFlows by phase",
                &["phase"],
            )?,
            step_duration: histogram_vec(
                &r,
                "zen_flow_step_duration_seconds",
                "Step run time, start to end, by result",
                STEP,
                &["result"],
            )?,
            reconciliation_duration: histogram(
                &r,
                "zen_flow_reconciliation_duration_seconds",
                "Time of one reconcile",
                FAST,
            )?,
            step_errors: counter_vec(
                &r,
                "zen_flow_step_errors_total",
                "Steps that failed, by reason",
                &["reason"],
            )?,
            reconciliation_errors: counter_vec(
                &r,
                "zen_flow_reconciliation_errors_total",
                "Failed reconciles, by the action that failed",
                &["error"],
            )?,
            step_retries: counter(
                &r,
                "zen_flow_step_retries_total",
                "New attempts of failed steps",
            )?,
            retry_backoff: histogram(
                &r,
                "zen_flow_retry_backoff_seconds",
                "The wait before a retry",
                WAIT,
            )?,
            approvals_pending: gauge(
                &r,
                "zen_flow_approvals_pending",
                "Manual steps waiting for approval",
            )?,
            approval_latency: histogram(
                &r,
                "zen_flow_approval_latency_seconds",
                "Wait from a Manual step's start to its approval",
                WAIT,
            )?,
            step_timeouts: counter(
                &r,
                "zen_flow_step_timeouts_total",
                "Step attempts stopped by their timeoutSeconds",
            )?,
            dag_computation: histogram(
                &r,
                "zen_flow_dag_computation_duration_seconds",
                "Time to compile (when the spec changed) and plan one flow",
                FAST,
            )?,
            status_update: histogram(
                &r,
                "zen_flow_status_update_duration_seconds",
                "Time of one status write",
                FAST,
            )?,
            step_queue_depth: gauge(
                &r,
                "zen_flow_step_execution_queue_depth",
                "Pending steps of running flows whose dependencies have ended",
            )?,
            api_requests: counter_vec(
                &r,
                "zen_flow_api_requests_total",
                "API writes made by the agent",
                &["operation", "resource"],
            )?,
            workqueue_depth: gauge(
                &r,
                "zen_flow_workqueue_depth",
                "Flows triggered and not yet reconciled",
            )?,
            state_entries: gauge_vec(
                &r,
                "zen_flow_state_entries",
                "Entries of the agent's per-flow index (flow_states, written, applied, templates)",
                &["map"],
            )?,
            refresh: Mutex::new(()),
            registry: r,
        })
    }

    /// Counts one API call (a write, or the rare confirming GET).
    pub fn api_call(&self, operation: Operation, resource: Resource) {
        self.api_requests
            .with_label_values(&[operation.as_str(), resource.as_str()])
            .inc();
    }

    /// Records one reconcile's duration.
    pub fn reconciled(&self, took: Duration) {
        self.reconciliation_duration.observe(took.as_secs_f64());
    }

    /// Counts one failed reconcile; `error` is a static variant name.
    pub fn reconcile_failed(&self, error: &'static str) {
        self.reconciliation_errors.with_label_values(&[error]).inc();
    }

    /// Records the time spent compiling and planning one flow.
    pub fn planned(&self, took: Duration) {
        self.dag_computation.observe(took.as_secs_f64());
    }

    /// Records one status write's duration.
    pub fn status_written(&self, took: Duration) {
        self.status_update.observe(took.as_secs_f64());
    }

    /// Counts the transitions of a plan whose status was written.
    pub fn transitions(&self, delta: &Transitions) {
        if let Some((from, to)) = delta.flow_transition {
            self.phase_transitions.with_label_values(&[from, to]).inc();
        }
        for &(result, secs) in &delta.step_durations {
            self.step_duration
                .with_label_values(&[result])
                .observe(secs);
        }
        for reason in &delta.step_failures {
            self.step_errors.with_label_values(&[reason.as_str()]).inc();
        }
        self.step_retries.inc_by(delta.retries);
        for &secs in &delta.retry_backoffs {
            self.retry_backoff.observe(secs);
        }
        self.step_timeouts.inc_by(delta.timeouts);
        for &secs in &delta.approval_latencies {
            self.approval_latency.observe(secs);
        }
    }

    /// Recomputes the snapshot gauges from the flow caches and the trigger queue.
    pub fn refresh<'a>(
        &self,
        flows: impl IntoIterator<Item = &'a JobFlow>,
        workqueue_depth: usize,
        state_entries: StateEntries,
    ) {
        let gauges = compute_gauges(flows);
        let _guard = self
            .refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.jobflows.reset();
        for ((namespace, phase), n) in &gauges.flows {
            self.jobflows
                .with_label_values(&[phase, namespace.as_str()])
                .set(*n);
        }
        self.steps.reset();
        for (phase, n) in &gauges.steps {
            self.steps.with_label_values(&[phase]).set(*n);
        }
        self.approvals_pending.set(gauges.approvals_pending);
        self.step_queue_depth.set(gauges.ready_steps);
        self.workqueue_depth
            .set(i64::try_from(workqueue_depth).unwrap_or(i64::MAX));
        for (map, n) in [
            ("flow_states", state_entries.flow_states),
            ("written", state_entries.written),
            ("applied", state_entries.applied),
            ("templates", state_entries.templates),
        ] {
            self.state_entries
                .with_label_values(&[map])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> Result<String, EncodeError> {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(EncodeError)
    }
}

fn add<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &'static str,
    made: Result<C, prometheus::Error>,
) -> Result<C, RegisterError> {
    let collector = made.map_err(|source| RegisterError { name, source })?;
    registry
        .register(Box::new(collector.clone()))
        .map_err(|source| RegisterError { name, source })?;
    Ok(collector)
}

fn counter(r: &Registry, name: &'static str, help: &str) -> Result<IntCounter, RegisterError> {
    add(r, name, IntCounter::with_opts(Opts::new(name, help)))
}

fn counter_vec(
    r: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RegisterError> {
    add(r, name, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &'static str, help: &str) -> Result<IntGauge, RegisterError> {
    add(r, name, IntGauge::with_opts(Opts::new(name, help)))
}

fn gauge_vec(
    r: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, RegisterError> {
    add(r, name, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn histogram(
    r: &Registry,
    name: &'static str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, RegisterError> {
    add(
        r,
        name,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())),
    )
}

fn histogram_vec(
    r: &Registry,
    name: &'static str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> Result<HistogramVec, RegisterError> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    add(r, name, HistogramVec::new(opts, labels))
}
