//! Keeping certificates in place: every replica watches the Secret and the webhook
//! configuration, serves what passes the checks and reports ready only when the served leaf
//! chains to the caBundle the API server holds; in self mode the leader also makes, renews and
//! rotates the certificates (`jobflow::certs::decide`) and keeps the caBundle in line. Runs on
//! every Secret or configuration event and on a jittered timer, never one long sleep.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use jobflow::certs::{self, CA_CRT, CaStep, Decision, LeafStep, Names, San, Seen, TLS_CRT, Why};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource as _};

use super::API_TIMEOUT;
use super::CertMode;
use super::ca_bundle::{self, Needed, RESTORED_REASON};
use super::readiness::Readiness;
use super::resolver::{Offered, Resolver};
use super::store::{self, StoreError};
use crate::error::chain;
use crate::kube::call::timed;
use crate::kube::events::EventPublisher;
use crate::kube::leadership::Leadership;
use crate::metrics::{Cert, Metrics, Source};

/// The base period of the timer (each wait is 75–125 % of it).
const PERIOD: Duration = Duration::from_secs(10);

/// What the sync loop works on.
pub struct CertSync {
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
    /// What `/readyz` reports for the webhook.
    pub readiness: Arc<Readiness>,
    /// Where the Event on a restored caBundle goes.
    pub events: EventPublisher,
    /// The series.
    pub metrics: Arc<Metrics>,
}

/// One watched object: the latest copy, and whether the first list is done.
struct Watched<K> {
    latest: Option<K>,
    relisted: Option<K>,
    synced: bool,
}

impl<K> Default for Watched<K> {
    fn default() -> Self {
        Self {
            latest: None,
            relisted: None,
            synced: false,
        }
    }
}

impl<K> Watched<K> {
    /// Takes in one watch event; false when the stream ended.
    fn take(&mut self, event: Option<Result<Event<K>, watcher::Error>>, what: &str) -> bool {
        match event {
            Some(Ok(Event::Apply(object))) => self.latest = Some(object),
            Some(Ok(Event::Delete(_))) => self.latest = None,
            Some(Ok(Event::Init)) => self.relisted = None,
            Some(Ok(Event::InitApply(object))) => self.relisted = Some(object),
            Some(Ok(Event::InitDone)) => {
                self.latest = self.relisted.take();
                self.synced = true;
            }
            Some(Err(error)) => {
                tracing::warn!(error = %chain(&error), "watching the webhook {what} failed");
            }
            None => return false,
        }
        true
    }
}

/// What the loop remembers between rounds.
#[derive(Default)]
struct Memory {
    /// The last Secret made by the agent, to put back if it is deleted.
    last_ours: Option<Secret>,
    /// Whether this process saw the caBundle in sync (so an emptied one is a removal).
    was_in_sync: bool,
    /// The configuration's resourceVersion the last caBundle write acted on (a watch that has
    /// not caught up yet is not written again).
    acted_on: Option<String>,
}

impl CertSync {
    /// Runs until the process ends.
    pub async fn run(self) {
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut secret_events = watcher::watcher(self.secrets.clone(), by_name(&self.secret))
            .default_backoff()
            .boxed();
        let mut config_events = watcher::watcher(self.configs.clone(), by_name(&self.config))
            .default_backoff()
            .boxed();
        let mut secret = Watched::default();
        let mut config = Watched::default();
        let mut memory = Memory::default();
        loop {
            let open = tokio::select! {
                event = secret_events.next() => secret.take(event, "Secret"),
                event = config_events.next() => config.take(event, "configuration"),
                () = tokio::time::sleep(jittered(PERIOD)) => true,
            };
            if !open {
                return;
            }
            if secret.synced && config.synced {
                self.step(&mut secret.latest, config.latest.as_ref(), &mut memory)
                    .await;
            }
        }
    }

    /// One round: serve what passes, report readiness, then (self mode, leader) write what the
    /// decision says and bring the caBundle in line.
    async fn step(
        &self,
        latest: &mut Option<Secret>,
        config: Option<&ValidatingWebhookConfiguration>,
        memory: &mut Memory,
    ) {
        let now = Timestamp::now();
        let want = self.names.sans();
        if let Some(data) = latest.as_ref().and_then(|s| s.data.as_ref()) {
            self.offer(data, &want, now);
        }
        let bundles = config.map(ca_bundle::bundles).unwrap_or_default();
        self.report(config, &bundles, latest.as_ref(), now);
        if self.mode != CertMode::SelfManaged || self.leadership.confirm().is_err() {
            return;
        }
        if let Some(secret) = latest.as_ref() {
            if !store::made_by_us(secret) {
                tracing::debug!(secret = ?secret.metadata.name, "the webhook Secret was not made by the agent: not writing it");
                return;
            }
            memory.last_ours = Some(secret.clone());
        }
        // A deleted Secret is put back from the last copy (same CA: no admission outage).
        let restore = latest.is_none().then(|| memory.last_ours.clone()).flatten();
        let base = latest.as_ref().or(restore.as_ref());
        let seen = Seen {
            data: base.and_then(|s| s.data.as_ref()),
            annotations: base.and_then(|s| s.metadata.annotations.as_ref()),
            bundles: &bundles,
        };
        let decision = certs::decide(seen, &self.names, now);
        if !decision.is_keep() || restore.is_some() {
            match self
                .write(&decision, seen, latest.as_ref(), restore.as_ref(), now)
                .await
            {
                Some(written) => {
                    memory.last_ours = Some(written.clone());
                    *latest = Some(written);
                }
                None => return,
            }
        }
        if let (Some(config), Some(secret)) = (config, latest.as_ref()) {
            self.keep_ca_bundle(config, secret, memory).await;
        }
    }

    /// Carries `decision` out and writes the Secret; the written Secret, or `None` when the
    /// round ends here (failed, or a conflict: decide again on the next event).
    async fn write(
        &self,
        decision: &Decision,
        seen: Seen<'_>,
        current: Option<&Secret>,
        restore: Option<&Secret>,
        now: Timestamp,
    ) -> Option<Secret> {
        let written = if decision.is_keep() {
            tracing::warn!("the webhook Secret was deleted: putting back the last copy");
            certs::Written {
                data: seen.data.cloned().unwrap_or_default(),
                annotations: std::collections::BTreeMap::new(),
            }
        } else {
            tracing::info!(ca = ?decision.ca, leaf = ?decision.leaf, prune = decision.prune, ack = ?decision.ack, "changing the webhook certificates");
            match certs::carry_out(decision, seen, &self.names, now) {
                Ok(written) => written,
                Err(error) => {
                    tracing::error!(error = %chain(&error), "making the webhook certificates failed");
                    self.count_rotations(decision, "error");
                    return None;
                }
            }
        };
        let base = restore.and_then(|s| s.metadata.annotations.as_ref());
        if self.leadership.confirm().is_err() {
            return None;
        }
        match store::write(&self.secrets, &self.secret, current, base, written).await {
            Ok(written) => {
                self.metrics.webhook.secret_write("ok");
                self.count_rotations(decision, "ok");
                if let Some(data) = written.data.as_ref() {
                    self.offer(data, &self.names.sans(), now);
                }
                Some(written)
            }
            Err(error @ StoreError::Conflict { .. }) => {
                self.metrics.webhook.secret_write("conflict");
                self.count_rotations(decision, "conflict");
                tracing::info!(error = %chain(&error), "deciding again after the next read");
                None
            }
            Err(error) => {
                self.metrics.webhook.secret_write("error");
                self.count_rotations(decision, "error");
                tracing::warn!(error = %chain(&error), "writing the webhook Secret failed");
                None
            }
        }
    }

    /// Writes the Secret's `ca.crt` into every webhook that lacks it, with an Event when
    /// someone else had changed it.
    async fn keep_ca_bundle(
        &self,
        config: &ValidatingWebhookConfiguration,
        secret: &Secret,
        memory: &mut Memory,
    ) {
        let Some(bundle) = secret.data.as_ref().and_then(|data| data.get(CA_CRT)) else {
            return;
        };
        let needed = ca_bundle::needed(config, &bundle.0, memory.was_in_sync);
        if needed == Needed::InSync {
            memory.was_in_sync = true;
            memory.acted_on = None;
            return;
        }
        if memory.acted_on.is_some() && memory.acted_on == config.metadata.resource_version {
            return;
        }
        if self.leadership.confirm().is_err() {
            return;
        }
        let reason = needed.reason();
        match ca_bundle::apply(&self.configs, config, &bundle.0).await {
            Ok(()) => {
                self.metrics.webhook.ca_bundle_write(reason, "ok");
                memory
                    .acted_on
                    .clone_from(&config.metadata.resource_version);
                tracing::info!(config = %self.config, reason, "wrote the webhook caBundle");
            }
            Err(error) => {
                self.metrics.webhook.ca_bundle_write(reason, "error");
                tracing::warn!(error = %chain(&error), "writing the webhook caBundle failed");
                return;
            }
        }
        if let Needed::Restore {
            webhooks,
            changed_by,
        } = &needed
        {
            let by = if changed_by.is_empty() {
                "removed".to_owned()
            } else {
                format!("changed by {}", changed_by.join(", "))
            };
            let note = format!(
                "the caBundle of webhook {} was {by}; the agent put its CA bundle back (tell GitOps tools to ignore webhooks[].clientConfig.caBundle: see the README)",
                webhooks.join(", ")
            );
            tracing::warn!(config = %self.config, "{note}");
            let regarding = config.object_ref(&());
            if let Err(error) = timed(
                API_TIMEOUT,
                self.events.publish_about(
                    regarding,
                    "default",
                    true,
                    RESTORED_REASON,
                    "RestoreCaBundle",
                    &note,
                ),
            )
            .await
            {
                tracing::warn!(error = %chain(&error), "publishing the caBundle Event failed");
            }
        }
    }

    /// Sets `/readyz` and the in-sync gauge from what the API server holds.
    fn report(
        &self,
        config: Option<&ValidatingWebhookConfiguration>,
        bundles: &[Vec<u8>],
        secret: Option<&Secret>,
        now: Timestamp,
    ) {
        let stored = secret
            .and_then(|s| s.data.as_ref())
            .and_then(|data| data.get(CA_CRT));
        let in_sync = config.is_some()
            && !bundles.is_empty()
            && stored.is_some_and(|stored| bundles.iter().all(|bundle| *bundle == stored.0));
        self.metrics.webhook.ca_bundle_in_sync(in_sync);
        let reason = match self.resolver.leaf() {
            None => Some("no webhook certificate served yet".to_owned()),
            Some(_) if config.is_none() => Some(format!(
                "no ValidatingWebhookConfiguration {} to read the caBundle from",
                self.config
            )),
            Some(leaf) if !certs::chains_in_all(bundles, &leaf, now) => Some(format!(
                "the served certificate (serial {}) does not chain to the caBundle of every webhook in ValidatingWebhookConfiguration {}",
                leaf.serial, self.config
            )),
            Some(_) => None,
        };
        match reason {
            Some(reason) => self.readiness.set_not_ready(reason),
            None => self.readiness.set_ready(),
        }
    }

    fn count_rotations(&self, decision: &Decision, result: &'static str) {
        let webhook = &self.metrics.webhook;
        let ca = match &decision.ca {
            CaStep::Keep | CaStep::Trust | CaStep::Distrust => None,
            CaStep::Renew => Some("due".to_owned()),
            CaStep::Create(why) => Some(why_label(why)),
            CaStep::Stage => Some("staged".to_owned()),
            CaStep::Switch => Some("switched".to_owned()),
        };
        if let Some(reason) = ca {
            webhook.rotation(Cert::Ca, &reason, result);
        }
        if let LeafStep::Renew(why) = &decision.leaf {
            webhook.rotation(Cert::Leaf, &why_label(why), result);
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

/// The metric reason for `why`.
fn why_label(why: &Why) -> String {
    match why {
        Why::Missing => "missing",
        Why::Due => "due",
        Why::Invalid(_) => "invalid",
        Why::NewCa => "new_ca",
        Why::Requested => "requested",
    }
    .to_owned()
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
