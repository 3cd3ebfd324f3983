//! Leader election on a coordination.k8s.io/v1 Lease: only the holder runs the controller.
//!
//! Writes carry the resourceVersion read just before (create, or replace), so two replicas can
//! never both believe they won. The rules live in [`decide`]; this module is the IO around them.
//! Every call on the Lease runs under [`Timing::call_timeout`]; the leader acts only until its
//! renew deadline on its own monotonic clock ([`Leadership`], which every controller write asks
//! first), and a standby counts a holder's claim from when it last saw the Lease change.

mod decide;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobflow::labels;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

pub use decide::{Decision, Observation, claimed, decide, observe, released};

use crate::error::chain;
use crate::kube::call::{CallError, timed};
use crate::kube::leadership::Leadership;
use crate::metrics::{Metrics, Operation, Resource};

/// The Lease's clock. Every duration is measured on this replica's monotonic clock.
///
/// `call_timeout < renew_deadline < lease_duration`: one stalled call cannot outlast the renew
/// deadline, and the leader stops acting before a standby may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a claim lasts without renewal; a standby takes over after it has seen the Lease
    /// unchanged for that long.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How often a standby looks, and how soon a failed renewal is tried again.
    pub retry_period: Duration,
    /// How long after the start of its last successful renewal the leader may act (shorter
    /// than `lease_duration`, so it stops before anyone else may start).
    pub renew_deadline: Duration,
    /// The longest one API call on the Lease may take (shorter than `renew_deadline`).
    pub call_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
            call_timeout: Duration::from_secs(4),
        }
    }
}

/// Why this replica stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another replica holds the Lease now.
    #[error("keeping the Lease: {holder} holds it")]
    KeepLease {
        /// The new holder.
        holder: String,
    },
    /// No renewal succeeded within the renew deadline (counted from the start of the last one
    /// that did).
    #[error("renewing the Lease within {deadline:?}")]
    RenewLease {
        /// The renew deadline.
        deadline: Duration,
    },
}

/// Why one call on the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading the Lease failed.
    #[error("reading the Lease")]
    ReadLease {
        /// What went wrong.
        source: CallError,
    },
    /// Creating, renewing, claiming or releasing the Lease failed.
    #[error("writing the Lease")]
    WriteLease {
        /// What went wrong.
        source: CallError,
    },
}

/// One round's outcome.
#[derive(Debug)]
enum Round {
    Leading,
    Following(String),
    /// Another replica wrote the Lease between our read and our write.
    Conflict,
}

/// A replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    /// The Lease as last seen, and since when (expiry is judged from it, not from `renewTime`).
    observed: Mutex<Option<Observation>>,
}

impl Elector {
    /// An elector for the Lease `namespace/name`, as `identity`; it extends `leadership` with
    /// every successful renewal and lapses it when it stops leading.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
        metrics: Arc<Metrics>,
        leadership: Leadership,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            metrics,
            leadership,
            observed: Mutex::new(None),
        }
    }

    /// Runs one call on the Lease under the call timeout.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        timed(self.timing.call_timeout, call).await
    }

    /// Records what was read or written; returns since when the Lease has looked so.
    fn observe(&self, lease: Option<&Lease>) -> Instant {
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let next = observe(observed.as_ref(), lease, Instant::now());
        let at = next.at;
        *observed = Some(next);
        at
    }

    /// Reads the Lease and claims or renews it if the rules allow.
    async fn round(&self) -> Result<Round, LeaseError> {
        let current = self
            .call(self.api.get_opt(&self.name))
            .await
            .map_err(|source| LeaseError::ReadLease { source })?;
        let observed_at = self.observe(current.as_ref());
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(
            spec,
            &self.identity,
            observed_at,
            Instant::now(),
            self.timing.lease_duration,
        );
        if let Decision::Follow { holder, .. } = decision {
            return Ok(Round::Following(holder));
        }
        let spec = claimed(
            spec,
            &decision,
            &self.identity,
            Timestamp::now(),
            self.timing.lease_duration,
        );
        let written = match current {
            None => {
                self.metrics.api_call(Operation::Create, Resource::Leases);
                let lease = Lease {
                    metadata: self.new_meta(),
                    spec: Some(spec),
                };
                self.call(self.api.create(&post_params(), &lease)).await
            }
            Some(mut lease) => {
                lease.metadata.managed_fields = None;
                lease.spec = Some(spec);
                self.metrics.api_call(Operation::Update, Resource::Leases);
                self.call(self.api.replace(&self.name, &post_params(), &lease))
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.observe(Some(&lease));
                Ok(Round::Leading)
            }
            Err(CallError::Api(kube::Error::Api(status)))
                if status.is_conflict() || status.is_already_exists() =>
            {
                Ok(Round::Conflict)
            }
            Err(source) => Err(LeaseError::WriteLease { source }),
        }
    }

    /// Gives the Lease up if we still hold it.
    async fn release(&self) -> Result<(), LeaseError> {
        let current = self
            .call(self.api.get_opt(&self.name))
            .await
            .map_err(|source| LeaseError::ReadLease { source })?;
        let Some(mut lease) = current else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_ref() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        lease.metadata.managed_fields = None;
        self.metrics.api_call(Operation::Update, Resource::Leases);
        self.call(self.api.replace(&self.name, &post_params(), &lease))
            .await
            .map(drop)
            .map_err(|source| LeaseError::WriteLease { source })
    }

    /// Renews until the Lease is lost or the renew deadline passes; returns why. Leadership has
    /// lapsed when it returns.
    async fn hold(&self) -> LeaderError {
        let lost = self.renew().await;
        self.leadership.lapse();
        lost
    }

    /// Renews every `renew_interval`; gives up the moment the deadline passes on the monotonic
    /// clock, even in the middle of a stalled call.
    async fn renew(&self) -> LeaderError {
        let lapsed = LeaderError::RenewLease {
            deadline: self.timing.renew_deadline,
        };
        loop {
            let Some(deadline) = self.leadership.until() else {
                return lapsed;
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            let wait = tokio::time::sleep(self.timing.renew_interval);
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                return lapsed;
            }
            loop {
                let started = Instant::now();
                match tokio::time::timeout_at(deadline, self.round()).await {
                    Err(_) => {
                        tracing::warn!("renewing the Lease: no success before the renew deadline");
                        return lapsed;
                    }
                    Ok(Ok(Round::Leading)) => {
                        self.leadership.renewed(started, self.timing.renew_deadline);
                        break;
                    }
                    Ok(Ok(Round::Following(holder))) => return LeaderError::KeepLease { holder },
                    Ok(Ok(Round::Conflict)) => {
                        tracing::debug!("the Lease changed while renewing; trying again");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(error = %chain(&error), "renewing the Lease failed");
                    }
                }
                let wait = tokio::time::sleep(self.timing.retry_period);
                if tokio::time::timeout_at(deadline, wait).await.is_err() {
                    return lapsed;
                }
            }
        }
    }

    fn new_meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            labels: Some(
                [(
                    labels::MANAGED_BY.to_owned(),
                    labels::MANAGED_BY_VALUE.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(labels::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// Waits for the Lease, then runs `lead` while holding it.
///
/// Returns `Ok` when `shutdown` fires before this replica leads, or when `lead` finishes (it must
/// stop on `shutdown` itself); the Lease is then released so a standby takes over at once.
/// Returns the error the moment the Lease is lost or the renew deadline passes: `lead` is
/// dropped, so nothing more is done. Whatever `lead` writes must first ask the [`Leadership`]
/// given to the elector: a process frozen past its deadline may run `lead` before it notices.
pub async fn run(
    elector: Elector,
    mut shutdown: watch::Receiver<bool>,
    lead: impl Future<Output = ()>,
) -> Result<(), LeaderError> {
    tracing::info!(identity = %elector.identity, lease = %elector.name, "waiting for the Lease");
    loop {
        let started = Instant::now();
        match elector.round().await {
            Ok(Round::Leading) => {
                elector
                    .leadership
                    .renewed(started, elector.timing.renew_deadline);
                break;
            }
            Ok(Round::Following(holder)) => tracing::debug!(%holder, "standing by"),
            Ok(Round::Conflict) => tracing::debug!("another replica wrote the Lease first"),
            Err(error) => tracing::warn!(error = %chain(&error), "claiming the Lease failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(elector.timing.retry_period) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
    tracing::info!(identity = %elector.identity, "acquired the Lease: leading");
    tokio::select! {
        () = lead => {
            elector.leadership.lapse();
            match elector.release().await {
                Ok(()) => tracing::info!("released the Lease"),
                Err(error) => tracing::warn!(error = %chain(&error), "releasing the Lease failed"),
            }
            Ok(())
        }
        lost = elector.hold() => Err(lost),
    }
}
