//! A fresh namespace per test, dumped when the test fails and deleted afterwards.

use std::fmt::Debug;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use jobflow::api::JobFlow;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wait::{POLL, to_yaml, wait_for, wait_for_deletion};

/// Label put on every test namespace (value `"true"`), to find leftovers:
/// `kubectl get ns -l zen-flow.test=true`.
pub const TEST_LABEL: &str = "zen-flow.test";

/// When set to `1`, the namespace of a failed test is kept for inspection instead of deleted.
pub const KEEP_FAILED_ENV: &str = "ZEN_FLOW_KEEP_FAILED";

/// A namespace created for one test. Cheap to clone (a name and a client).
#[derive(Clone)]
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates a namespace named `zf-<test>-<random>` labelled [`TEST_LABEL`]`=true`, and waits
    /// for its `default` `ServiceAccount` (without it the API server refuses pods, and the Job
    /// controller would back off before retrying).
    pub async fn create(client: Client, test: &str) -> anyhow::Result<Self> {
        let slug = slug(test);
        let namespace = Namespace {
            metadata: ObjectMeta {
                // The API server appends 5 random characters: unique without coordination.
                generate_name: Some(format!("zf-{slug}-")),
                labels: Some(
                    [
                        (TEST_LABEL.to_owned(), "true".to_owned()),
                        (format!("{TEST_LABEL}/name"), slug),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating the namespace of test {test}"))?;
        let ns = Self {
            name: created.name_any(),
            client,
        };
        let accounts: Api<ServiceAccount> = ns.api();
        wait_for(
            &format!("ServiceAccount default in namespace {}", ns.name),
            Duration::from_secs(30),
            POLL,
            || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
        )
        .await?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client the namespace was created with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The namespace's Jobs, Pods, `JobFlows` (when the CRD is installed) and Events, as text.
    pub async fn dump(&self) -> String {
        let mut out = format!("===== objects in namespace {} =====\n", self.name);
        dump_kind::<Job>(&mut out, &self.api()).await;
        dump_kind::<Pod>(&mut out, &self.api()).await;
        match self.api::<JobFlow>().list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) if status.code == 404 => {
                out.push_str("--- JobFlows: the CRD is not installed\n");
            }
            Err(error) => {
                let _ = writeln!(out, "--- JobFlows: listing failed: {error}");
            }
            Ok(list) => {
                for flow in list {
                    let _ = write!(out, "--- JobFlow {}\n{}", flow.name_any(), to_yaml(&flow));
                }
            }
        }
        match self.api::<Event>().list(&ListParams::default()).await {
            Err(error) => {
                let _ = writeln!(out, "--- Events: listing failed: {error}");
            }
            Ok(list) => {
                let mut events: Vec<(Option<Time>, Event)> = list
                    .items
                    .into_iter()
                    .map(|event| (event_time(&event), event))
                    .collect();
                events.sort_by(|a, b| a.0.cmp(&b.0));
                out.push_str("--- Events\n");
                for (time, event) in events {
                    let when = time.map(|t| t.0.to_string());
                    let _ = writeln!(
                        out,
                        "{} {} {} {}/{}: {}",
                        when.as_deref().unwrap_or("-"),
                        event.type_.as_deref().unwrap_or("-"),
                        event.reason.as_deref().unwrap_or("-"),
                        event.involved_object.kind.as_deref().unwrap_or("-"),
                        event.involved_object.name.as_deref().unwrap_or("-"),
                        event.message.as_deref().unwrap_or("").trim_end(),
                    );
                }
            }
        }
        out
    }

    /// Starts deleting the namespace (its objects go with it); a namespace already gone is fine.
    pub async fn delete(&self) -> anyhow::Result<()> {
        match Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error).with_context(|| format!("deleting namespace {}", self.name)),
        }
    }

    /// Deletes the namespace and waits until it is gone, which needs every pod in it to finish
    /// terminating (kwok's pod-terminate and pod-delete stages) and every finalizer to go.
    pub async fn delete_and_wait(&self, timeout: Duration) -> anyhow::Result<()> {
        self.delete().await?;
        wait_for_deletion(
            &Api::<Namespace>::all(self.client.clone()),
            &self.name,
            timeout,
        )
        .await
    }

    /// Ends the test's use of the namespace: when the test failed, dumps the namespace's objects
    /// to stderr; then deletes it (not waiting), unless it failed and `ZEN_FLOW_KEEP_FAILED=1`.
    pub async fn cleanup(self, passed: bool) -> anyhow::Result<()> {
        if !passed {
            eprintln!("{}", self.dump().await);
            if std::env::var(KEEP_FAILED_ENV).is_ok_and(|value| value == "1") {
                eprintln!("{KEEP_FAILED_ENV}=1: keeping namespace {}", self.name);
                return Ok(());
            }
        }
        self.delete().await
    }
}

/// Runs `body` in a fresh [`TestNamespace`] named after `test`, then cleans up: on failure (an
/// `Err` or a panic, e.g. a failed `assert!`) the namespace's objects are dumped to stderr first.
/// The body's error is returned and its panic resumed, so the test fails as it would have.
///
/// Fails when the control plane is not running (see [`crate::client`]).
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use k8s_openapi::api::batch::v1::Job;
/// jobflow_tests::run_in_namespace("my-test", |ns| async move {
///     let jobs = ns.api::<Job>();
///     // ... create, wait, assert ...
///     Ok(())
/// })
/// .await
/// # }
/// ```
pub async fn run_in_namespace<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(TestNamespace) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let client = crate::client().await?;
    let ns = TestNamespace::create(client, test).await?;
    let name = ns.name().to_owned();
    // The namespace is only read after an unwind, and only to dump and delete it.
    let outcome = AssertUnwindSafe(body(ns.clone())).catch_unwind().await;
    let passed = matches!(outcome, Ok(Ok(())));
    let cleaned = ns.cleanup(passed).await;
    match outcome {
        Ok(Ok(())) => cleaned,
        Ok(Err(error)) => {
            if let Err(cleanup_error) = cleaned {
                eprintln!("cleaning up after the failure: {cleanup_error:#}");
            }
            Err(error.context(format!("test {test} (namespace {name})")))
        }
        Err(panic) => {
            if let Err(cleanup_error) = cleaned {
                eprintln!("cleaning up after the panic: {cleanup_error:#}");
            }
            std::panic::resume_unwind(panic)
        }
    }
}

/// Appends every object of kind `K` in `api`'s namespace, as YAML.
async fn dump_kind<K>(out: &mut String, api: &Api<K>)
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize,
    <K as Resource>::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match api.list(&ListParams::default()).await {
        Err(error) => {
            let _ = writeln!(out, "--- {kind}s: listing failed: {error}");
        }
        Ok(list) if list.items.is_empty() => {
            let _ = writeln!(out, "--- {kind}s: none");
        }
        Ok(list) => {
            for object in list {
                let _ = write!(
                    out,
                    "--- {kind} {}\n{}",
                    object.name_any(),
                    to_yaml(&object)
                );
            }
        }
    }
}

/// When an event last happened, whichever of its timestamps is set.
fn event_time(event: &Event) -> Option<Time> {
    event
        .last_timestamp
        .clone()
        .or_else(|| event.event_time.as_ref().map(|t| Time(t.0)))
        .or_else(|| event.first_timestamp.clone())
}

/// `test` as a DNS-1123 label fragment: lowercase alphanumerics and dashes, at most 40 characters
/// (the namespace name adds `zf-`, a dash and 5 random characters; the limit is 63).
fn slug(test: &str) -> String {
    let mut slug = String::with_capacity(test.len());
    for c in test.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
        if slug.len() == 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "test".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slug_is_a_short_dns_label_fragment() {
        assert_eq!(
            slug("job_completes::Through Kwok"),
            "job-completes-through-kwok"
        );
        assert_eq!(slug("--"), "test");
        let long = slug(&"a".repeat(100));
        assert_eq!(long.len(), 40);
        assert_eq!(slug(&format!("{}_b", "a".repeat(39))), "a".repeat(39));
    }
}
