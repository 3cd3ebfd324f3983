//! What a step's template holds reaches the Job the agent creates (issue 7): fields newer than
//! the typed Job of Kubernetes 1.33 survive, and the template's own TTL does not. Runs the real
//! `jobflow-agent` against the local control plane (Kubernetes 1.35).

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, StepPhase, reasons};
use jobflow_tests::FakePod;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, step_job_name, step_phase, wait_for_phase,
};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{ApiResource, DynamicObject};

const TIMEOUT: Duration = Duration::from_secs(60);

/// `spec.template.spec.hostnameOverride` is a pod field of Kubernetes 1.34+ (on by default in
/// 1.35) that k8s-openapi's v1_33 `PodSpec` does not model. Failed on 44744f3: the agent built
/// the Job through the typed model and the field vanished.
#[tokio::test]
async fn a_field_newer_than_the_typed_job_reaches_the_created_job() -> anyhow::Result<()> {
    run_with_agent("agent-newer-field", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("newer")
            .step(StepBuilder::new("a", &FakePod::quick()))
            .with(|flow| {
                let template = flow.spec.steps[0].template.as_mut().expect("a template");
                template["spec"]["template"]["spec"]["hostnameOverride"] =
                    "worker-{{step.attempt}}".into();
                template["spec"]["ttlSecondsAfterFinished"] = 0.into();
            })
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "newer", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(
            step_phase(&done, "a")?,
            (
                StepPhase::Succeeded,
                Some(reasons::JOB_SUCCEEDED.to_owned())
            )
        );
        // Read the Job untyped: the typed v1_33 Job would drop the field again.
        let jobs: Api<DynamicObject> =
            Api::namespaced_with(ns.client(), ns.name(), &ApiResource::erase::<Job>(&()));
        let job = jobs
            .get(&step_job_name(&flows, "newer", "a", 1).await?)
            .await?;
        let spec = &job.data["spec"];
        assert_eq!(
            spec["template"]["spec"]["hostnameOverride"], "worker-1",
            "{spec:#}"
        );
        assert!(spec.get("ttlSecondsAfterFinished").is_none(), "{spec:#}");
        Ok(())
    })
    .await
}
