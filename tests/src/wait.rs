//! Polling with timeouts that say what was awaited.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use kube::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// A poll interval short enough that tests do not wait on it (kwok's stages take ~1 s).
pub const POLL: Duration = Duration::from_millis(100);

/// Calls `check` every `poll` until it returns `Ok(Some(value))`, and returns that value.
///
/// `Ok(None)` means "not yet". An `Err` ends the wait at once (e.g. a Job failed while a test
/// waited for it to complete), with `what` added to it. After `timeout` the error says what was
/// awaited.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => return Err(error.context(format!("while waiting for {what}"))),
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Polls the object `name` until `done` returns true for it, and returns the object.
///
/// An object that does not exist (yet) is waited for. An `Err` from `done` ends the wait at once.
/// On timeout the error shows the object as last seen, so a failing test says where it got stuck.
pub async fn wait_for_object<K, F>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    mut done: F,
) -> anyhow::Result<K>
where
    K: Clone + Debug + DeserializeOwned + Serialize,
    F: FnMut(&K) -> anyhow::Result<bool>,
{
    let deadline = Instant::now() + timeout;
    let mut last_seen: Option<K> = None;
    loop {
        if let Some(object) = api.get_opt(name).await? {
            if done(&object).with_context(|| format!("while waiting for {what}"))? {
                return Ok(object);
            }
            last_seen = Some(object);
        }
        if Instant::now() >= deadline {
            let seen = match &last_seen {
                None => format!("{name} was never seen"),
                Some(object) => format!("{name} as last seen:\n{}", to_yaml(object)),
            };
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; {seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An object as YAML without `managedFields`, for error messages and dumps.
pub(crate) fn to_yaml<K: Serialize + Debug>(object: &K) -> String {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
    }
    serde_yaml_ng::to_string(&value).unwrap_or_else(|_| format!("{object:?}"))
}

/// Waits until the object `name` no longer exists (deletion, including finalizers, finished).
pub async fn wait_for_deletion<K>(api: &Api<K>, name: &str, timeout: Duration) -> anyhow::Result<()>
where
    K: Clone + Debug + DeserializeOwned,
{
    wait_for(&format!("{name} to be deleted"), timeout, POLL, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}
