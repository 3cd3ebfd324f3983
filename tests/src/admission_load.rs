//! Admission traffic for the webhook's load tests: about 20 server-side dry-run creates a
//! second, alternating a flow our webhook must refuse (with the core library's exact message)
//! and one it must admit. Every answer that is not exactly that (a TLS error, a timeout, a
//! `failurePolicy` refusal, a wrong message) is a failure, kept with what went wrong.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jobflow::api::JobFlow;
use kube::Api;
use kube::api::PostParams;
use tokio::task::JoinHandle;

use crate::FakePod;
use crate::flows::{FlowBuilder, StepBuilder};
pub use crate::webhook::{expected_denial, refused_flow};

/// Requests per second.
pub const RATE: u32 = 20;
/// The longest one request may take before it counts as failed (the webhook's own timeout is
/// 5 s; past that the API server has failed it closed anyway).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// A flow the webhook must admit.
pub fn admitted_flow(name: &str) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &FakePod::succeed()))
        .step(StepBuilder::new("b", &FakePod::succeed()).after(&["a"]))
        .build()
}

/// What a load run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Requests sent.
    pub attempted: u64,
    /// Refused with the exact message.
    pub denied: u64,
    /// Admitted.
    pub admitted: u64,
    /// Everything else, with when (seconds since the start) and what.
    pub failures: Vec<(f64, String)>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Report {
    /// One line for the test log and the issue notes.
    pub fn summary(&self) -> String {
        format!(
            "{} admission requests in {:.1} s ({:.1}/s): {} denied as expected, {} admitted, {} failed",
            self.attempted,
            self.elapsed.as_secs_f64(),
            f64::from(u32::try_from(self.attempted).unwrap_or(u32::MAX))
                / self.elapsed.as_secs_f64().max(0.001),
            self.denied,
            self.admitted,
            self.failures.len()
        )
    }

    /// Ok when at least `min` requests ran and none failed.
    pub fn check(&self, min: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failures.is_empty(),
            "{}; first failures: {:?}",
            self.summary(),
            &self.failures[..self.failures.len().min(5)]
        );
        anyhow::ensure!(
            self.attempted >= min,
            "{}: fewer than {min} requests",
            self.summary()
        );
        Ok(())
    }
}

/// Admission traffic running in the background until [`Load::stop`].
pub struct Load {
    report: Arc<Mutex<Report>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
    started: Instant,
}

impl Load {
    /// Starts sending [`RATE`] requests a second to `flows` (one namespace).
    pub fn start(flows: Api<JobFlow>) -> anyhow::Result<Self> {
        let refused = refused_flow("load-refused");
        let denial = expected_denial(&refused)?;
        let report = Arc::new(Mutex::new(Report::default()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let shared = Arc::clone(&report);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut inflight = tokio::task::JoinSet::new();
            for n in 0u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let flows = flows.clone();
                let report = Arc::clone(&shared);
                let (flow, want) = if n % 2 == 0 {
                    (refused.clone(), Some(denial.clone()))
                } else {
                    (admitted_flow(&format!("load-admitted-{n}")), None)
                };
                inflight.spawn(async move {
                    let outcome = one(&flows, &flow, want.as_deref()).await;
                    let at = started.elapsed().as_secs_f64();
                    let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
                    report.attempted += 1;
                    match outcome {
                        Ok(true) => report.denied += 1,
                        Ok(false) => report.admitted += 1,
                        Err(what) => report.failures.push((at, what)),
                    }
                });
            }
            while inflight.join_next().await.is_some() {}
        });
        Ok(Self {
            report,
            stop,
            task,
            started,
        })
    }

    /// Requests answered so far.
    pub fn attempted(&self) -> u64 {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .attempted
    }

    /// Stops sending, waits for the requests in flight and returns what was seen.
    pub async fn stop(self) -> anyhow::Result<Report> {
        self.stop.send_replace(true);
        self.task.await.context("the load task failed")?;
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        report.elapsed = self.started.elapsed();
        Ok(report)
    }
}

/// One dry-run create: `Ok(true)` refused as `want` says, `Ok(false)` admitted as it should be,
/// `Err` anything else.
async fn one(flows: &Api<JobFlow>, flow: &JobFlow, want: Option<&str>) -> Result<bool, String> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, flows.create(&params, flow)).await;
    match (answer, want) {
        (Err(_), _) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        (Ok(Ok(_)), None) => Ok(false),
        (Ok(Ok(_)), Some(_)) => Err("an invalid flow was admitted".to_owned()),
        (Ok(Err(kube::Error::Api(status))), Some(want)) if status.message == want => Ok(true),
        (Ok(Err(error)), _) => Err(error.to_string()),
    }
}
