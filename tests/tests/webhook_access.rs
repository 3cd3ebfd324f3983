//! No confused deputy, under the real RBAC authorizer: a user who may create JobFlows but not
//! Jobs (or ConfigMaps, for a flow with ConfigMap templates) in a namespace is refused by the
//! webhook, with the missing permission named; one who may is admitted.

use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::{JobFlow, ResourceTemplates};
use jobflow_tests::fixture::{WebhookSetup, run_with_webhook};
use jobflow_tests::flows::{FlowBuilder, StepBuilder};
use jobflow_tests::webhook::{create_through_webhook, denied_prefix};
use jobflow_tests::{FakePod, POLL, TestNamespace, wait_for};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A client acting as `user`, authenticated and nothing more.
async fn client_as(user: &str) -> anyhow::Result<Client> {
    jobflow_tests::impersonating(user, &["system:authenticated".to_owned()]).await
}

/// Grants `user` the verbs on `resources` of `group` in the test namespace.
async fn grant(
    ns: &TestNamespace,
    name: &str,
    user: &str,
    group: &str,
    resources: &[&str],
) -> anyhow::Result<()> {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": [group], "resources": resources,
                   "verbs": ["create", "get", "list", "watch"]}],
    }))?;
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))?;
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

fn flow(name: &str) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &FakePod::succeed()))
        .build()
}

/// Creates `flow` until it is admitted (RBAC grants reach the authorizer after a moment).
async fn admitted(flows: &Api<JobFlow>, flow: &JobFlow) -> anyhow::Result<()> {
    let name = flow.metadata.name.clone().unwrap_or_default();
    wait_for(
        &format!("flow {name} to be admitted"),
        TIMEOUT,
        POLL * 5,
        || async {
            Ok(flows
                .create(&PostParams::default(), flow)
                .await
                .ok()
                .map(drop))
        },
    )
    .await
}

#[tokio::test]
async fn a_creator_without_the_agents_permissions_is_refused() {
    run_with_webhook(
        "webhook-access",
        WebhookSetup::agent,
        |setup, agent| async move {
            let WebhookSetup { ns, name: _, .. } = setup;
            let alice = format!("alice-{}", ns.name());
            let bob = format!("bob-{}", ns.name());
            for user in [&alice, &bob] {
                grant(
                    &ns,
                    &format!("flows-{user}"),
                    user,
                    "workflow.kube-zen.io",
                    &["jobflows"],
                )
                .await?;
            }
            grant(&ns, &format!("jobs-{bob}"), &bob, "batch", &["jobs"]).await?;

            // Alice may create flows, not Jobs: refused, the permission named.
            let as_alice: Api<JobFlow> = Api::namespaced(client_as(&alice).await?, ns.name());
            let denial = create_through_webhook(&as_alice, &flow("by-alice"), TIMEOUT)
                .await?
                .context("alice's flow was admitted")?;
            let expected = format!(
                "{}user {alice:?} may not create jobs (batch) in namespace {:?}",
                denied_prefix(),
                ns.name()
            );
            assert!(denial.starts_with(&expected), "{denial}");

            // Bob may create Jobs: admitted.
            let as_bob: Api<JobFlow> = Api::namespaced(client_as(&bob).await?, ns.name());
            admitted(&as_bob, &flow("by-bob")).await?;

            // ...but not ConfigMaps, which a flow with ConfigMap templates would create.
            let with_config_map = FlowBuilder::new("by-bob-cm")
                .step(StepBuilder::new("a", &FakePod::succeed()))
                .with(|f| {
                    f.spec.resource_templates = Some(ResourceTemplates {
                        config_map_templates: vec![
                            json!({"metadata": {"name": "cfg"}, "data": {"k": "v"}}),
                        ],
                        volume_claim_templates: Vec::new(),
                    });
                })
                .build();
            jobflow::validation::validate(&with_config_map)
                .map_err(|e| anyhow::anyhow!("the ConfigMap flow is invalid: {e}"))?;
            let denial = create_through_webhook(&as_bob, &with_config_map, TIMEOUT)
                .await?
                .context("bob's ConfigMap flow was admitted")?;
            assert!(
                denial.starts_with(&format!(
                    "{}user {bob:?} may not create configmaps (core) in namespace",
                    denied_prefix()
                )),
                "{denial}"
            );
            agent.ensure_running()
        },
    )
    .await
    .unwrap();
}
