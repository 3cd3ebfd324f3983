//! `spec.resourceTemplates`: PersistentVolumeClaims and ConfigMaps created once for a flow,
//! owned by it (garbage-collected with it) and named `<flow>-<name>-<hash>` (see `naming`). A
//! step's pod that names a template by its short name is pointed at the real object.

use k8s_openapi::api::batch::v1::Job;
use kube::Resource;
use serde_json::{Value, json};

use super::naming::resource_name;
use crate::api::JobFlow;
use crate::labels;

/// The complete objects to apply for the flow's resource templates.
pub fn resource_objects(flow: &JobFlow) -> Vec<Value> {
    let Some(templates) = &flow.spec.resource_templates else {
        return Vec::new();
    };
    let flow_name = flow.metadata.name.as_deref().unwrap_or_default();
    let owner = flow
        .controller_owner_ref(&())
        .and_then(|owner| serde_json::to_value(owner).ok());
    let kinds = [
        ("PersistentVolumeClaim", &templates.volume_claim_templates),
        ("ConfigMap", &templates.config_map_templates),
    ];
    kinds
        .into_iter()
        .flat_map(|(kind, objects)| objects.iter().map(move |object| (kind, object)))
        .filter_map(|(kind, template)| {
            let short = template.pointer("/metadata/name")?.as_str()?;
            let mut object = template.clone();
            let map = object.as_object_mut()?;
            map.insert("apiVersion".into(), json!("v1"));
            map.insert("kind".into(), json!(kind));
            map.remove("status");
            let mut metadata = template
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let meta = metadata.as_object_mut()?;
            for key in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generateName",
            ] {
                meta.remove(key);
            }
            meta.insert("name".into(), json!(resource_name(flow, short)));
            meta.insert("namespace".into(), json!(flow.metadata.namespace));
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(labels::FLOW.into(), json!(flow_name));
                labels.insert(labels::MANAGED_BY.into(), json!(labels::MANAGED_BY_VALUE));
            }
            if let Some(owner) = &owner {
                meta.insert("ownerReferences".into(), json!([owner]));
            }
            map.insert("metadata".into(), metadata);
            Some(object)
        })
        .collect()
}

/// Points what a step's pod reads of a resource template by its short name (volumes, projected
/// volumes, env `configMapKeyRef`, `envFrom`) at the template's real object.
pub fn point_volumes_at_resources(job: &mut Job, flow: &JobFlow) {
    let Some(templates) = &flow.spec.resource_templates else {
        return;
    };
    let short_names = |objects: &[Value]| -> Vec<String> {
        objects
            .iter()
            .filter_map(|object| {
                object
                    .pointer("/metadata/name")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    let claims = short_names(&templates.volume_claim_templates);
    let config_maps = short_names(&templates.config_map_templates);
    let Some(pod) = job
        .spec
        .as_mut()
        .and_then(|spec| spec.template.spec.as_mut())
    else {
        return;
    };
    let config_map = |name: &mut String| {
        if config_maps.contains(name) {
            *name = resource_name(flow, name);
        }
    };
    for volume in pod.volumes.iter_mut().flatten() {
        if let Some(claim) = volume.persistent_volume_claim.as_mut()
            && claims.contains(&claim.claim_name)
        {
            claim.claim_name = resource_name(flow, &claim.claim_name);
        }
        if let Some(source) = volume.config_map.as_mut() {
            config_map(&mut source.name);
        }
        let projected = volume.projected.as_mut().and_then(|p| p.sources.as_mut());
        for source in projected.into_iter().flatten() {
            if let Some(source) = source.config_map.as_mut() {
                config_map(&mut source.name);
            }
        }
    }
    let init = pod.init_containers.iter_mut().flatten();
    for container in pod.containers.iter_mut().chain(init) {
        for env in container.env.iter_mut().flatten() {
            let key_ref = env
                .value_from
                .as_mut()
                .and_then(|from| from.config_map_key_ref.as_mut());
            if let Some(key_ref) = key_ref {
                config_map(&mut key_ref.name);
            }
        }
        for source in container.env_from.iter_mut().flatten() {
            if let Some(source) = source.config_map_ref.as_mut() {
                config_map(&mut source.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceTemplates;
    use crate::planner::testing::{World, flow, job_step, pod_spec, t};

    fn with_templates() -> JobFlow {
        let mut step = job_step("a", &[]);
        step.template.as_mut().unwrap()["spec"]["template"]["spec"]["volumes"] = json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "scratch"}},
            {"name": "conf", "configMap": {"name": "settings"}},
            {"name": "other", "configMap": {"name": "not-ours"}}
        ]);
        let mut flow = flow(vec![step]);
        flow.spec.resource_templates = Some(ResourceTemplates {
            volume_claim_templates: vec![json!({
                "metadata": {"name": "scratch"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            })],
            config_map_templates: vec![
                json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
            ],
        });
        flow
    }

    #[test]
    fn templates_become_owned_objects_named_after_the_flow() {
        let objects = resource_objects(&with_templates());
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["kind"], "PersistentVolumeClaim");
        let flow = with_templates();
        assert_eq!(
            objects[0]["metadata"]["name"],
            crate::planner::resource_name(&flow, "scratch")
        );
        assert_eq!(
            objects[0]["metadata"]["ownerReferences"][0]["kind"],
            "JobFlow"
        );
        assert_eq!(objects[1]["kind"], "ConfigMap");
        assert_eq!(objects[1]["data"]["mode"], "fast");
        assert_eq!(objects[1]["metadata"]["labels"][labels::FLOW], "etl");
    }

    #[test]
    fn resources_are_applied_once_when_the_flow_starts_and_volumes_point_at_them() {
        let mut world = World::new(with_templates());
        let plan = world.step_at(t(0));
        assert_eq!(plan.create_resources.len(), 2);
        let volumes = pod_spec(&plan.create_jobs[0]).volumes.clone().unwrap();
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            resource_name(&world.flow, "scratch")
        );
        assert_eq!(
            volumes[1].config_map.as_ref().unwrap().name,
            resource_name(&world.flow, "settings")
        );
        assert_eq!(volumes[2].config_map.as_ref().unwrap().name, "not-ours");
        assert!(world.step_at(t(1)).create_resources.is_empty());
    }

    #[test]
    fn env_and_projected_references_to_a_template_point_at_it_too() {
        let mut flow = with_templates();
        flow.spec.steps[0].template.as_mut().unwrap()["spec"]["template"]["spec"]["initContainers"] = json!([{
            "name": "init", "image": "busybox",
            "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}}, {"configMapRef": {"name": "mine"}}]
        }]);
        flow.spec.steps[0].template.as_mut().unwrap()["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "p", "projected": {"sources": [{"configMap": {"name": "settings"}}]}}]);
        let real = resource_name(&flow, "settings");
        let plan = World::new(flow).plan(t(0));
        let pod = serde_json::to_value(pod_spec(&plan.create_jobs[0])).unwrap();
        let init = &pod["initContainers"][0];
        assert_eq!(init["env"][0]["valueFrom"]["configMapKeyRef"]["name"], real);
        assert_eq!(init["envFrom"][0]["configMapRef"]["name"], real);
        assert_eq!(init["envFrom"][1]["configMapRef"]["name"], "mine");
        assert_eq!(
            pod["volumes"][0]["projected"]["sources"][0]["configMap"]["name"],
            real
        );
    }
}
