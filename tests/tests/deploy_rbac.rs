//! Least privilege, proven by the API server's own authorizer (RBAC): the agent's
//! ServiceAccount, as `deploy/install.yaml` binds it, may do what the agent's code calls and
//! nothing else.
//!
//! [`MAY`] is the one list of what it may do. The tests apply the install's RBAC objects
//! (Namespace, ServiceAccount, Roles, ClusterRoles and their bindings; not the CRD, the Deployment
//! or the webhook configuration, which with no agent serving it would refuse every JobFlow of the
//! tests running alongside) and then ask the API server:
//! - SubjectAccessReviews: every verb of [`MAY`] is allowed, where [`MAY`] says;
//! - SubjectAccessReviews: each of [`MUST_NOT`] (Secrets elsewhere, pods/exec, other webhook
//!   configurations, RBAC writes, escalate/bind/impersonate, other CRDs' objects) is denied;
//! - SelfSubjectRulesReviews impersonating the ServiceAccount (what `kubectl auth can-i --list
//!   --as=...` shows): every rule the authorizer grants it beyond what any ServiceAccount gets is
//!   covered by [`MAY`], so a widened rule anywhere (a new verb, a wildcard, a binding to the
//!   namespace's ServiceAccount group) fails.
//!
//! The objects are the install's own, applied by server-side apply (forced, field manager
//! `jobflow-tests`): applying them again, here or by the real-node tests' install, changes nothing,
//! so this is safe alongside every other test. They are left in place at the end: deleting them
//! could pull the RBAC from under an agent the real-node tests run as that ServiceAccount.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jobflow_tests::{FIELD_MANAGER, POLL, manifest, workspace_root};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec, SubjectRulesReviewStatus,
};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// The agent's namespace in `deploy/install.yaml`.
const AGENT_NAMESPACE: &str = "zen-flow-system";
/// The agent's ServiceAccount, as a user name.
const AGENT_USER: &str = "system:serviceaccount:zen-flow-system:jobflow-agent";
/// A ServiceAccount of a namespace that does not exist and is bound to nothing: what every
/// ServiceAccount gets from Kubernetes' defaults (discovery, self reviews), subtracted from the
/// agent's rules before they are compared with [`MAY`].
const BASELINE_USER: &str = "system:serviceaccount:zen-flow-rbac-baseline:nobody";
/// The kinds of `deploy/install.yaml` this test applies.
const RBAC_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
];
/// Namespaces other than the agent's where "any namespace" rules are checked (they need not
/// exist: the authorizer answers for a name).
const OTHER_NAMESPACES: &[&str] = &["default", "team-a"];
/// How long a just-applied RBAC change may take to reach the authorizer's cache.
const PROPAGATION: Duration = Duration::from_secs(15);

/// Where a grant holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// A namespaced resource, in every namespace (a ClusterRole bound cluster-wide).
    AnyNamespace,
    /// A namespaced resource, in the agent's namespace only (a Role).
    AgentNamespace,
    /// A cluster-scoped resource.
    Cluster,
}

/// One thing the agent may do: `verbs` on `resource` (`plural` or `plural/subresource`) of
/// `group`, in `scope`, on the object `name` only when set.
struct Grant {
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
    name: Option<&'static str>,
    /// The code that needs it (the RBAC source's comment says the same).
    why: &'static str,
}

/// Everything the agent's ServiceAccount may do (`deploy/agent/rbac.yaml`,
/// `deploy/agent/webhook-rbac.yaml`).
const MAY: &[Grant] = &[
    Grant {
        group: "workflow.kube-zen.io",
        resource: "jobflows",
        verbs: &["list", "watch", "delete"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/caches.rs watches flows; agent/src/apply.rs deletes one past its TTL",
    },
    Grant {
        group: "workflow.kube-zen.io",
        resource: "jobflows/status",
        verbs: &["patch"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/apply.rs server-side applies the status",
    },
    Grant {
        group: "batch",
        resource: "jobs",
        verbs: &["get", "list", "watch", "create", "delete"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/caches.rs watches Jobs; agent/src/apply.rs creates, reads an existing one \
              and deletes them; agent/src/confirm.rs reads one",
    },
    Grant {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/caches.rs watches the steps' pods",
    },
    Grant {
        group: "",
        resource: "configmaps",
        verbs: &["get", "create"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/apply.rs creates resource templates and reads an existing one",
    },
    Grant {
        group: "",
        resource: "persistentvolumeclaims",
        verbs: &["get", "create"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/apply.rs creates resource templates and reads an existing one",
    },
    Grant {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        scope: Scope::AnyNamespace,
        name: None,
        why: "agent/src/events.rs",
    },
    Grant {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create"],
        scope: Scope::AgentNamespace,
        name: None,
        why: "agent/src/leader/mod.rs creates the Lease",
    },
    Grant {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "update"],
        scope: Scope::AgentNamespace,
        name: Some("jobflow-agent"),
        why: "agent/src/leader/mod.rs reads, acquires and renews it",
    },
    Grant {
        group: "",
        resource: "secrets",
        verbs: &["create"],
        scope: Scope::AgentNamespace,
        name: None,
        why: "agent/src/webhook/store.rs creates the certificate Secret",
    },
    Grant {
        group: "",
        resource: "secrets",
        verbs: &["list", "watch", "update"],
        scope: Scope::AgentNamespace,
        name: Some("jobflow-webhook-tls"),
        why: "agent/src/webhook/sync.rs watches it; agent/src/webhook/store.rs replaces it",
    },
    Grant {
        group: "admissionregistration.k8s.io",
        resource: "validatingwebhookconfigurations",
        verbs: &["list", "watch", "patch"],
        scope: Scope::Cluster,
        name: Some("jobflow-validating"),
        why: "agent/src/webhook/sync.rs watches it; agent/src/webhook/ca_bundle.rs applies the \
              caBundle",
    },
    Grant {
        group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        scope: Scope::Cluster,
        name: None,
        why: "agent/src/webhook/access.rs asks whether a flow's creator may create its Jobs",
    },
];

/// One request the agent must be refused.
struct Ask {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    /// `""`: cluster-wide (all namespaces, or a cluster-scoped resource).
    namespace: &'static str,
    name: &'static str,
    why: &'static str,
}

const fn deny(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespace: &'static str,
    name: &'static str,
    why: &'static str,
) -> Ask {
    Ask {
        verb,
        group,
        resource,
        namespace,
        name,
        why,
    }
}

/// What the agent must not do, each said explicitly (the rules review covers everything else).
#[rustfmt::skip]
const MUST_NOT: &[Ask] = &[
    deny("get", "", "secrets", "default", "", "Secrets outside its namespace"),
    deny("list", "", "secrets", "default", "", "Secrets outside its namespace"),
    deny("watch", "", "secrets", "default", "", "Secrets outside its namespace"),
    deny("list", "", "secrets", "", "", "Secrets cluster-wide"),
    deny("get", "", "secrets", "", "jobflow-webhook-tls", "Secrets cluster-wide"),
    deny("list", "", "secrets", AGENT_NAMESPACE, "", "the other Secrets of its namespace"),
    deny("get", "", "secrets", AGENT_NAMESPACE, "other", "the other Secrets of its namespace"),
    deny("update", "", "secrets", AGENT_NAMESPACE, "other", "the other Secrets of its namespace"),
    deny("delete", "", "secrets", AGENT_NAMESPACE, "jobflow-webhook-tls", "deleting its Secret"),
    deny("create", "", "pods/exec", "default", "", "exec into pods"),
    deny("create", "", "pods/exec", AGENT_NAMESPACE, "", "exec into pods"),
    deny("create", "", "pods", "default", "", "creating pods directly"),
    deny("delete", "", "pods", "default", "", "deleting pods"),
    deny("get", "", "pods/log", "default", "", "reading pod logs"),
    deny("delete", "", "namespaces", "", "default", "deleting namespaces"),
    deny("create", "", "namespaces", "", "", "creating namespaces"),
    deny("get", "", "nodes/proxy", "", "", "the kubelet API"),
    deny("create", "", "serviceaccounts/token", AGENT_NAMESPACE, "jobflow-agent", "minting tokens"),
    deny("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "other-webhook", "other webhook configurations"),
    deny("list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "all webhook configurations"),
    deny("delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "jobflow-validating", "deleting its webhook configuration"),
    deny("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "jobflow-validating", "mutating webhooks"),
    deny("create", "rbac.authorization.k8s.io", "clusterroles", "", "", "RBAC writes"),
    deny("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "RBAC writes"),
    deny("create", "rbac.authorization.k8s.io", "rolebindings", AGENT_NAMESPACE, "", "RBAC writes"),
    deny("patch", "rbac.authorization.k8s.io", "clusterroles", "", "jobflow-agent", "widening its own role"),
    deny("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "escalate"),
    deny("bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin", "bind"),
    deny("impersonate", "", "users", "", "", "impersonate"),
    deny("impersonate", "", "groups", "", "system:masters", "impersonate"),
    deny("impersonate", "", "serviceaccounts", "default", "", "impersonate"),
    deny("create", "example.com", "widgets", "default", "", "other CRDs' objects"),
    deny("patch", "example.com", "widgets", "default", "", "other CRDs' objects"),
    deny("update", "apiextensions.k8s.io", "customresourcedefinitions", "", "jobflows.workflow.kube-zen.io", "changing its CRD"),
    deny("create", "workflow.kube-zen.io", "jobflows", "default", "", "creating flows"),
    deny("update", "workflow.kube-zen.io", "jobflows", "default", "", "writing a flow's spec"),
    deny("patch", "workflow.kube-zen.io", "jobflows", "default", "", "writing a flow's spec"),
    deny("patch", "batch", "jobs", "default", "", "patching Jobs (it only creates them)"),
    deny("create", "batch", "cronjobs", "default", "", "other workloads"),
    deny("create", "apps", "deployments", "default", "", "other workloads"),
    deny("patch", "apps", "deployments", AGENT_NAMESPACE, "jobflow-agent", "its own Deployment"),
    deny("delete", "", "configmaps", "default", "", "deleting ConfigMaps (garbage collection does)"),
    deny("update", "coordination.k8s.io", "leases", "default", "jobflow-agent", "Leases elsewhere"),
    deny("update", "coordination.k8s.io", "leases", AGENT_NAMESPACE, "other", "other Leases"),
    deny("patch", "", "events", "default", "", "core Events"),
    deny("create", "authentication.k8s.io", "tokenreviews", "", "", "token reviews"),
];

/// The groups the API server gives a ServiceAccount's tokens.
fn service_account_groups(user: &str) -> Vec<String> {
    let namespace = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default();
    vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_owned(),
    ]
}

/// Applies the RBAC objects of `deploy/install.yaml` (server-side, forced).
async fn apply_install_rbac(client: &Client) -> anyhow::Result<()> {
    let path = workspace_root().join("deploy/install.yaml");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for object in manifest::objects(&path)? {
        let kind = object["kind"].as_str().unwrap_or_default();
        if !RBAC_KINDS.contains(&kind) {
            continue;
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api = manifest::api_for(client, &object);
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {kind} {name} of {}", path.display()))?;
        applied.push(format!("{kind}/{name}"));
    }
    applied.sort();
    anyhow::ensure!(
        RBAC_KINDS
            .iter()
            .all(|kind| applied.iter().any(|a| a.starts_with(&format!("{kind}/")))),
        "{} lacks some of {RBAC_KINDS:?}: applied only {applied:?}",
        path.display()
    );
    Ok(())
}

/// Whether the authorizer allows the agent `verb` on `resource` (`plural` or
/// `plural/subresource`) of `group` in `namespace` (`""`: cluster-wide), on `name` if not empty.
async fn allowed(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<bool> {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(AGENT_USER.to_owned()),
            groups: Some(service_account_groups(AGENT_USER)),
            resource_attributes: Some(ResourceAttributes {
                verb: some(verb),
                group: Some(group.to_owned()),
                resource: some(resource),
                subresource: some(subresource),
                namespace: some(namespace),
                name: some(name),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .context("creating a SubjectAccessReview")?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

/// The namespaces where `grant` is checked.
fn namespaces_of(grant: &Grant) -> Vec<&'static str> {
    match grant.scope {
        Scope::Cluster => vec![""],
        Scope::AgentNamespace => vec![AGENT_NAMESPACE],
        Scope::AnyNamespace => {
            let mut all = vec![AGENT_NAMESPACE];
            all.extend(OTHER_NAMESPACES);
            all
        }
    }
}

/// The requests of [`MAY`] the authorizer does not allow, as `verb group/resource ns/name`.
async fn missing_grants(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for grant in MAY {
        for namespace in namespaces_of(grant) {
            for verb in grant.verbs {
                let name = grant.name.unwrap_or("");
                if !allowed(client, verb, grant.group, grant.resource, namespace, name).await? {
                    missing.push(format!(
                        "{verb} {}/{} in {namespace:?} on {name:?} ({})",
                        grant.group, grant.resource, grant.why
                    ));
                }
            }
        }
    }
    Ok(missing)
}

/// Polls `check` (a list of problems) until it comes back empty, for at most [`PROPAGATION`]
/// (a just-applied RBAC change takes a moment to reach the authorizer's cache); fails with
/// `what` and the last problems.
async fn until_none<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<String>>>,
{
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let problems = check().await?;
        if problems.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{what}: {problems:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Applies the install's RBAC and gives the authorizer time to see it: until it grants all of
/// [`MAY`], or [`PROPAGATION`] has passed (then `the_agent_may_do_what_its_code_calls` fails
/// with what is missing, and the other tests still look for what is too wide).
async fn installed() -> anyhow::Result<Client> {
    let client = jobflow_tests::client().await?;
    apply_install_rbac(&client).await?;
    if let Err(missing) = until_none("the agent may not", || missing_grants(&client)).await {
        eprintln!("{missing:#}");
    }
    Ok(client)
}

#[tokio::test]
async fn the_agent_may_do_what_its_code_calls() -> anyhow::Result<()> {
    let client = installed().await?;
    let missing = missing_grants(&client).await?;
    anyhow::ensure!(missing.is_empty(), "the agent may not: {missing:#?}");
    Ok(())
}

#[tokio::test]
async fn the_agent_may_not_reach_beyond_its_work() -> anyhow::Result<()> {
    let client = installed().await?;
    let mut granted = Vec::new();
    for ask in MUST_NOT {
        if allowed(
            &client,
            ask.verb,
            ask.group,
            ask.resource,
            ask.namespace,
            ask.name,
        )
        .await?
        {
            granted.push(format!(
                "{} {}/{} in {:?} on {:?} ({})",
                ask.verb, ask.group, ask.resource, ask.namespace, ask.name, ask.why
            ));
        }
    }
    anyhow::ensure!(granted.is_empty(), "the agent may: {granted:#?}");
    Ok(())
}

/// One resource rule of a rules review, one verb and one name (`""`: any) at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    group: String,
    resource: String,
    verb: String,
    name: String,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.verb, self.group, self.resource)?;
        if !self.name.is_empty() {
            write!(f, " named {}", self.name)?;
        }
        Ok(())
    }
}

/// What `user` may do in `namespace` (cluster-wide grants included), as the API server reports
/// it to `user` itself (what `kubectl auth can-i --list` prints). Non-resource rules become
/// permissions on the group `<non-resource>`.
async fn rules_of(user: &str, namespace: &str) -> anyhow::Result<BTreeSet<Permission>> {
    let client = jobflow_tests::impersonating(user, &service_account_groups(user)).await?;
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_owned()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let status: SubjectRulesReviewStatus = Api::<SelfSubjectRulesReview>::all(client)
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("reviewing the rules of {user} in {namespace}"))?
        .status
        .context("the rules review came back without a status")?;
    anyhow::ensure!(
        !status.incomplete,
        "the authorizer could not list every rule of {user}: {:?}",
        status.evaluation_error
    );
    let mut permissions = BTreeSet::new();
    for rule in status.resource_rules {
        let names = rule.resource_names.unwrap_or_default();
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        permissions.insert(Permission {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
    }
    for rule in status.non_resource_rules {
        for path in rule.non_resource_urls.unwrap_or_default() {
            for verb in &rule.verbs {
                permissions.insert(Permission {
                    group: "<non-resource>".to_owned(),
                    resource: path.clone(),
                    verb: verb.clone(),
                    name: String::new(),
                });
            }
        }
    }
    Ok(permissions)
}

/// Whether a grant of [`MAY`] covers `permission` seen in `namespace`.
fn covered(permission: &Permission, namespace: &str) -> bool {
    MAY.iter().any(|grant| {
        grant.group == permission.group
            && grant.resource == permission.resource
            && grant.verbs.contains(&permission.verb.as_str())
            && match grant.name {
                None => true,
                Some(name) => permission.name == name,
            }
            && (grant.scope != Scope::AgentNamespace || namespace == AGENT_NAMESPACE)
    })
}

/// What the authorizer grants the agent in any of the checked namespaces beyond what
/// [`BASELINE_USER`] gets and [`MAY`] covers.
async fn beyond_the_table() -> anyhow::Result<Vec<String>> {
    let mut beyond = Vec::new();
    let mut namespaces = vec![AGENT_NAMESPACE];
    namespaces.extend(OTHER_NAMESPACES);
    for namespace in namespaces {
        let baseline = rules_of(BASELINE_USER, namespace).await?;
        for permission in rules_of(AGENT_USER, namespace).await? {
            if !baseline.contains(&permission) && !covered(&permission, namespace) {
                beyond.push(format!("{permission} in {namespace}"));
            }
        }
    }
    Ok(beyond)
}

#[tokio::test]
async fn everything_the_authorizer_grants_the_agent_is_in_the_table() -> anyhow::Result<()> {
    installed().await?;
    until_none(
        "the agent's ServiceAccount may do more than MAY lists (add it to MAY with the code that \
         needs it, or take it out of deploy/agent/)",
        beyond_the_table,
    )
    .await?;
    // And the comparison sees something: the agent's own grants are in its rules.
    let rules = rules_of(AGENT_USER, AGENT_NAMESPACE).await?;
    for grant in MAY {
        for verb in grant.verbs {
            let permission = Permission {
                group: grant.group.to_owned(),
                resource: grant.resource.to_owned(),
                verb: (*verb).to_owned(),
                name: grant.name.unwrap_or("").to_owned(),
            };
            anyhow::ensure!(
                rules.contains(&permission),
                "the rules review lacks {permission}, which MAY grants: {rules:#?}"
            );
        }
    }
    Ok(())
}
