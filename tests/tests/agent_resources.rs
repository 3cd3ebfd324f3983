//! Resource templates on the local control plane with the real `jobflow-agent`: the flow's
//! ConfigMap and PersistentVolumeClaim templates become owned objects named `<flow>-<name>`, and
//! a step volume naming a template by its short name mounts the real object.

use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::{FlowPhase, JobFlow, ResourceTemplates};
use jobflow_tests::FakePod;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, flow_jobs, resource_object_name, wait_for_phase,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::PostParams;
use kube::{Api, Resource};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `object` is owned (as its controller) by the JobFlow `flow`.
fn owned_by_flow<K: Resource>(object: &K, flow: &JobFlow) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|owner| {
            owner.kind == "JobFlow"
                && owner.uid == flow.metadata.uid.clone().unwrap_or_default()
                && owner.controller == Some(true)
        })
}

#[tokio::test]
async fn resource_templates_become_owned_objects_that_steps_mount() -> anyhow::Result<()> {
    run_with_agent("resource-templates", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let mut step =
            StepBuilder::new("read", &FakePod::succeed().running_for(Duration::from_millis(500))).build();
        let template = step.template.as_mut().context("a Job step has a template")?;
        let pod = &mut template["spec"]["template"]["spec"];
        pod["volumes"] = json!([
            {"name": "conf", "configMap": {"name": "settings"}},
            {"name": "site", "configMap": {"name": "site-wide"}}
        ]);
        pod["containers"][0]["volumeMounts"] = json!([
            {"name": "conf", "mountPath": "/etc/conf"},
            {"name": "site", "mountPath": "/etc/site"}
        ]);
        let flow = FlowBuilder::new("res")
            .step(step)
            .with(|flow| {
                flow.spec.resource_templates = Some(ResourceTemplates {
                    config_map_templates: vec![json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}})],
                    volume_claim_templates: vec![json!({
                        "metadata": {"name": "scratch"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                    })],
                });
            })
            .build();
        // A ConfigMap the flow does not template keeps its name in the step's volume.
        let config_maps: Api<ConfigMap> = ns.api();
        let site_wide: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "site-wide"}}))?;
        config_maps.create(&PostParams::default(), &site_wide).await.context("creating site-wide")?;
        flows.create(&PostParams::default(), &flow).await.context("creating flow res")?;

        let done = wait_for_phase(&flows, "res", FlowPhase::Succeeded, TIMEOUT).await?;
        let settings_name = resource_object_name(&flows, "res", "settings").await?;
        let settings = config_maps.get(&settings_name).await.context("the ConfigMap settings")?;
        assert_eq!(settings.data.as_ref().and_then(|data| data.get("mode")).map(String::as_str), Some("fast"));
        assert!(owned_by_flow(&settings, &done), "res-settings is not owned by the flow: {:?}", settings.metadata);
        let claims: Api<PersistentVolumeClaim> = ns.api();
        let scratch = claims
            .get(&resource_object_name(&flows, "res", "scratch").await?)
            .await
            .context("the PVC scratch")?;
        assert!(owned_by_flow(&scratch, &done), "res-scratch is not owned by the flow");

        let jobs: Vec<Job> = flow_jobs(&ns.api(), "res").await?;
        let volumes = jobs[0]
            .spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .and_then(|pod| pod.volumes.clone())
            .context("the step's Job has no volumes")?;
        let names: Vec<String> =
            volumes.iter().filter_map(|volume| Some(volume.config_map.as_ref()?.name.clone())).collect();
        assert_eq!(names, [settings_name.as_str(), "site-wide"]);
        Ok(())
    })
    .await
}
