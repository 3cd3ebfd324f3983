//! Leader election on a coordination.k8s.io/v1 Lease: only the holder runs the controller.
//!
//! Writes carry the resourceVersion read just before (create, or replace), so two replicas can
//! never both believe they won. The rules live in [`decide`]; this module is the IO around them.

mod decide;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobflow::labels;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

pub use decide::{Decision, claimed, decide, released};

use crate::error::chain;
use crate::metrics::{Metrics, Operation, Resource};

/// The Lease's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a claim lasts without renewal; a standby takes over after it.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How often a standby looks, and how soon a failed renewal is tried again.
    pub retry_period: Duration,
    /// How long the leader tries to renew before it gives up leading (shorter than
    /// `lease_duration`, so it stops before anyone else may start).
    pub renew_deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
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
    /// Renewals failed for longer than the renew deadline.
    #[error("renewing the Lease within {deadline:?}")]
    RenewLease {
        /// The renew deadline.
        deadline: Duration,
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
}

impl Elector {
    /// An elector for the Lease `namespace/name`, as `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            metrics,
        }
    }

    /// Reads the Lease and claims or renews it if the rules allow.
    async fn round(&self) -> Result<Round, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, now, self.timing.lease_duration);
        if let Decision::Follow { holder, .. } = decision {
            return Ok(Round::Following(holder));
        }
        let spec = claimed(
            spec,
            &decision,
            &self.identity,
            now,
            self.timing.lease_duration,
        );
        let written = match current {
            None => {
                self.metrics.api_write(Operation::Create, Resource::Leases);
                let lease = Lease {
                    metadata: self.new_meta(),
                    spec: Some(spec),
                };
                self.api.create(&post_params(), &lease).await
            }
            Some(mut lease) => {
                lease.metadata.managed_fields = None;
                lease.spec = Some(spec);
                self.metrics.api_write(Operation::Update, Resource::Leases);
                self.api.replace(&self.name, &post_params(), &lease).await
            }
        };
        match written {
            Ok(_) => Ok(Round::Leading),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(Round::Conflict)
            }
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up if we still hold it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
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
        self.metrics.api_write(Operation::Update, Resource::Leases);
        self.api
            .replace(&self.name, &post_params(), &lease)
            .await
            .map(drop)
    }

    /// Renews until the Lease is lost; returns why.
    async fn hold(&self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.renew_interval).await;
            loop {
                match self.round().await {
                    Ok(Round::Leading) => {
                        renewed = Instant::now();
                        break;
                    }
                    Ok(Round::Following(holder)) => return LeaderError::KeepLease { holder },
                    Ok(Round::Conflict) => {
                        tracing::debug!("the Lease changed while renewing; trying again");
                    }
                    Err(error) => {
                        tracing::warn!(error = %chain(&error), "renewing the Lease failed");
                    }
                }
                if renewed.elapsed() >= self.timing.renew_deadline {
                    return LeaderError::RenewLease {
                        deadline: self.timing.renew_deadline,
                    };
                }
                tokio::time::sleep(self.timing.retry_period).await;
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
/// Returns the error the moment the Lease is lost: `lead` is dropped, so nothing more is done.
pub async fn run(
    elector: Elector,
    mut shutdown: watch::Receiver<bool>,
    lead: impl Future<Output = ()>,
) -> Result<(), LeaderError> {
    tracing::info!(identity = %elector.identity, lease = %elector.name, "waiting for the Lease");
    loop {
        match elector.round().await {
            Ok(Round::Leading) => break,
            Ok(Round::Following(holder)) => tracing::debug!(%holder, "standing by"),
            Ok(Round::Conflict) => tracing::debug!("another replica wrote the Lease first"),
            Err(error) => tracing::warn!(error = %chain(&error), "reading the Lease failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(elector.timing.retry_period) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
    tracing::info!(identity = %elector.identity, "acquired the Lease: leading");
    tokio::select! {
        () = lead => {
            match elector.release().await {
                Ok(()) => tracing::info!("released the Lease"),
                Err(error) => tracing::warn!(error = %chain(&error), "releasing the Lease failed"),
            }
            Ok(())
        }
        lost = elector.hold() => Err(lost),
    }
}
