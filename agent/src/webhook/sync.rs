//! Keeping certificates in place: every replica watches the Secret and serves what passes the
//! checks; in self mode the leader also makes or renews the certificates and writes the
//! caBundle. Runs on every Secret event and on a jittered timer, never one long sleep.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use jobflow::certs::{self, CA_CRT, Names, San, TLS_CRT};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::CertMode;
use super::ca_bundle::{self, Synced};
use super::resolver::{Offered, Resolver};
use super::store::{self, StoreError};
use crate::error::chain;
use crate::leader::Leadership;
use crate::metrics::{Cert, Metrics, Source};

/// The base period of the timer (each wait is 75–125 % of it).
const PERIOD: Duration = Duration::from_secs(10);

/// What the sync loop works on.
pub struct Sync {
    /// The Secret API in the agent's namespace.
    pub secrets: Api<Secret>,
    /// The webhook configurations.
    pub configs: Api<ValidatingWebhookConfiguration>,
    /// The Secret's name.
    pub secret: String,
    /// The ValidatingWebhookConfiguration's name.
    pub config: String,
    /// The names the leaf is for.
    pub names: Names,
    /// Self or external.
    pub mode: CertMode,
    /// Who may write.
    pub leadership: Leadership,
    /// Where served certificates go.
    pub resolver: Arc<Resolver>,
    /// The series.
    pub metrics: Arc<Metrics>,
}

impl Sync {
    /// A sync loop for the Secret `secret` in `namespace`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: &Client,
        namespace: &str,
        secret: &str,
        config: &str,
        names: Names,
        mode: CertMode,
        leadership: Leadership,
        resolver: Arc<Resolver>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            configs: Api::all(client.clone()),
            secret: secret.to_owned(),
            config: config.to_owned(),
            names,
            mode,
            leadership,
            resolver,
            metrics,
        }
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.secret));
        let mut events = watcher::watcher(self.secrets.clone(), config)
            .default_backoff()
            .boxed();
        let mut latest: Option<Secret> = None;
        let mut relisted: Option<Secret> = None;
        let mut synced = false;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(Event::Apply(secret))) => latest = Some(secret),
                    Some(Ok(Event::Delete(_))) => latest = None,
                    Some(Ok(Event::Init)) => relisted = None,
                    Some(Ok(Event::InitApply(secret))) => relisted = Some(secret),
                    Some(Ok(Event::InitDone)) => {
                        latest = relisted.take();
                        synced = true;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(error = %chain(&error), "watching the webhook Secret failed");
                        continue;
                    }
                    None => return,
                },
                () = tokio::time::sleep(jittered(PERIOD)) => {}
            }
            if synced {
                self.step(&mut latest).await;
            }
        }
    }

    /// One round: serve what passes, then (self mode, leader) write what the decision says.
    async fn step(&self, latest: &mut Option<Secret>) {
        let now = Timestamp::now();
        let want = self.names.sans();
        if let Some(data) = latest.as_ref().and_then(|s| s.data.as_ref()) {
            self.offer(data, &want, now);
        }
        if self.mode != CertMode::SelfManaged || self.leadership.confirm().is_err() {
            return;
        }
        if let Some(secret) = latest.as_ref().filter(|s| !store::made_by_us(s)) {
            tracing::debug!(secret = ?secret.metadata.name, "the webhook Secret was not made by the agent: not writing it");
            return;
        }
        let decision = certs::decide(
            latest.as_ref().and_then(|s| s.data.as_ref()),
            &self.names,
            now,
        );
        if !decision.is_keep() {
            tracing::info!(ca = ?decision.ca, leaf = ?decision.leaf, "renewing the webhook certificates");
            let data = match certs::carry_out(
                &decision,
                latest.as_ref().and_then(|s| s.data.as_ref()),
                &self.names,
                now,
            ) {
                Ok(data) => data,
                Err(error) => {
                    tracing::error!(error = %chain(&error), "making the webhook certificates failed");
                    return;
                }
            };
            match store::write(&self.secrets, &self.secret, latest.as_ref(), data).await {
                Ok(written) => {
                    self.metrics.webhook.secret_write("ok");
                    if let Some(data) = written.data.as_ref() {
                        self.offer(data, &want, now);
                    }
                    *latest = Some(written);
                }
                Err(error @ StoreError::Conflict { .. }) => {
                    self.metrics.webhook.secret_write("conflict");
                    tracing::info!(error = %chain(&error), "deciding again after the next read");
                    return;
                }
                Err(error) => {
                    self.metrics.webhook.secret_write("error");
                    tracing::warn!(error = %chain(&error), "writing the webhook Secret failed");
                    return;
                }
            }
        }
        let Some(bundle) = latest
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|data| data.get(CA_CRT))
        else {
            return;
        };
        if self.leadership.confirm().is_err() {
            return;
        }
        match ca_bundle::sync(&self.configs, &self.config, &bundle.0).await {
            Ok(Synced::Written) => {
                self.metrics.webhook.ca_bundle_write("ok");
                tracing::info!(config = %self.config, "wrote the webhook caBundle");
            }
            Ok(Synced::InSync) => {}
            Ok(Synced::Missing) => {
                tracing::debug!(config = %self.config, "no ValidatingWebhookConfiguration to write the caBundle to");
            }
            Err(error) => {
                self.metrics.webhook.ca_bundle_write("error");
                tracing::warn!(error = %chain(&error), "writing the webhook caBundle failed");
            }
        }
    }

    fn offer(&self, data: &certs::SecretData, want: &[San], now: Timestamp) {
        let webhook = &self.metrics.webhook;
        if let Some(at) = certs::not_after(data, CA_CRT) {
            webhook.not_after(Cert::Ca, Source::Stored, at);
        }
        if let Some(at) = certs::not_after(data, TLS_CRT) {
            webhook.not_after(Cert::Leaf, Source::Stored, at);
        }
        match self.resolver.offer(data, want, now) {
            Ok(Offered::Swapped { serial, not_after }) => {
                webhook.reload("swapped");
                webhook.not_after(Cert::Leaf, Source::Served, not_after);
                tracing::info!(%serial, "serving a new webhook certificate");
            }
            Ok(Offered::Unchanged) => {}
            Err(error) => {
                webhook.reload("refused");
                tracing::warn!(
                error = %chain(&error),
                served = ?self.resolver.serial(),
                "the webhook Secret's certificate fails the checks: keeping the last good one"
                );
            }
        }
    }
}

/// `period` scaled by a random factor in 75–125 %.
fn jittered(period: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let permille = 750 + hasher.finish() % 501;
    period * u32::try_from(permille).unwrap_or(1000) / 1000
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let wait = jittered(PERIOD);
            assert!(wait >= PERIOD * 3 / 4 && wait <= PERIOD * 5 / 4, "{wait:?}");
        }
    }
}
