//! The admission decision: a pure function of one AdmissionReview, with the core library's
//! validation (the same messages as status and the plugin's `validate`).

use jobflow::api::JobFlow;
use jobflow::validation::{ValidationReport, report, report_update};
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

/// Answers one AdmissionReview body: CREATE is validated, UPDATE also against the old object
/// (a started flow's spec is fixed), anything else is allowed. A denial lists every problem as
/// `path: message`, one a line; warnings go in the response's `warnings`. (The server calls
/// [`parse`] and [`decide`] itself, to run the access check in between; tests use this.)
#[cfg(test)]
pub fn review(body: &[u8]) -> AdmissionReview<DynamicObject> {
    match parse(body) {
        Ok(request) => decide(&request).into_review(),
        Err(message) => AdmissionResponse::invalid(message).into_review(),
    }
}

/// The request in an AdmissionReview body, or why it cannot be read (to refuse it with).
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|error| format!("reading the AdmissionReview: {error}"))?;
    review
        .try_into()
        .map_err(|error| format!("reading the AdmissionReview: {error}"))
}

/// The flow a CREATE request would create (`None` for other operations or an unreadable one).
pub fn created_flow(request: &AdmissionRequest<DynamicObject>) -> Option<JobFlow> {
    if request.operation != Operation::Create {
        return None;
    }
    flow(request.object.as_ref(), "object").ok()
}

/// The response to one request.
pub fn decide(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let report = match request.operation {
        Operation::Create => match flow(request.object.as_ref(), "object") {
            Ok(new) => report(&new),
            Err(message) => return response.deny(message),
        },
        Operation::Update => {
            let new = match flow(request.object.as_ref(), "object") {
                Ok(new) => new,
                Err(message) => return response.deny(message),
            };
            match flow(request.old_object.as_ref(), "oldObject") {
                Ok(old) => report_update(&old, &new),
                // Without the old object only the new one can be judged.
                Err(_) => report(&new),
            }
        }
        Operation::Delete | Operation::Connect => return response,
    };
    respond(response, report)
}

/// Allows or denies by the report, with its warnings.
fn respond(mut response: AdmissionResponse, report: ValidationReport) -> AdmissionResponse {
    if !report.warnings.is_empty() {
        response.warnings = Some(report.warnings.iter().map(ToString::to_string).collect());
    }
    match report.into_result() {
        Ok(()) => response,
        Err(errors) => response.deny(errors),
    }
}

/// The request's object as a JobFlow.
fn flow(object: Option<&DynamicObject>, field: &str) -> Result<JobFlow, String> {
    let object = object.ok_or_else(|| format!("reading request.{field}: it is missing"))?;
    let value = serde_json::to_value(object)
        .map_err(|error| format!("reading request.{field}: {error}"))?;
    serde_json::from_value(value).map_err(|error| format!("reading the JobFlow: {error}"))
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn step(name: &str, deps: &[&str]) -> Value {
        json!({
            "name": name,
            "dependencies": deps,
            "template": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}]
            }}}}
        })
    }

    fn flow_json(steps: &[Value], started: bool) -> Value {
        let mut flow = json!({
            "apiVersion": "workflow.kube-zen.io/v1alpha1",
            "kind": "JobFlow",
            "metadata": {"name": "f", "namespace": "ns"},
            "spec": {"steps": steps},
        });
        if started {
            flow["status"] = json!({"phase": "Running", "startTime": "2026-01-01T00:00:00Z"});
        }
        flow
    }

    fn body(operation: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "workflow.kube-zen.io", "version": "v1alpha1", "kind": "JobFlow"},
                "resource": {"group": "workflow.kube-zen.io", "version": "v1alpha1", "resource": "jobflows"},
                "name": "f",
                "namespace": "ns",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": old,
                "dryRun": false,
            }
        }))
        .unwrap()
    }

    fn answer(body: &[u8]) -> AdmissionResponse {
        review(body).response.unwrap()
    }

    #[test]
    fn a_valid_flow_is_allowed_with_the_request_uid() {
        let response = answer(&body("CREATE", &flow_json(&[step("a", &[])], false), None));
        assert!(response.allowed, "{:?}", response.result);
        assert_eq!(response.uid, "u-1");
        assert_eq!(response.warnings, None);
    }

    #[test]
    fn an_invalid_flow_is_denied_with_every_problem_as_path_and_message() {
        let flow = flow_json(&[step("a", &["missing"]), step("a", &[])], false);
        let response = answer(&body("CREATE", &flow, None));
        assert!(!response.allowed);
        let expected = jobflow::validation::validate(&serde_json::from_value(flow).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(response.result.message, expected);
        assert!(
            response
                .result
                .message
                .contains("spec.steps[0].dependencies[0]: ")
        );
        assert!(response.result.message.lines().count() >= 2);
    }

    #[test]
    fn a_started_flows_spec_cannot_change_but_suspend_can() {
        let old = flow_json(&[step("a", &[])], true);
        let changed = flow_json(&[step("b", &[])], true);
        let response = answer(&body("UPDATE", &changed, Some(&old)));
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .starts_with("spec.steps: cannot change once the flow has started"),
            "{}",
            response.result.message
        );
        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        assert!(answer(&body("UPDATE", &suspended, Some(&old))).allowed);
        // Not started yet: any valid change goes.
        let unstarted = flow_json(&[step("a", &[])], false);
        assert!(
            answer(&body(
                "UPDATE",
                &flow_json(&[step("b", &[])], false),
                Some(&unstarted)
            ))
            .allowed
        );
    }

    #[test]
    fn warnings_are_returned_on_an_allowed_flow() {
        let mut s = step("a", &[]);
        s["template"]["spec"]["notAField"] = json!(1);
        let response = answer(&body("CREATE", &flow_json(&[s], false), None));
        assert!(response.allowed, "{:?}", response.result);
        let warnings = response.warnings.unwrap_or_default();
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("spec.steps[0].template.spec.notAField")),
            "{warnings:?}"
        );
    }

    #[test]
    fn delete_is_allowed_and_garbage_is_refused() {
        let flow = flow_json(&[step("a", &["missing"])], false);
        assert!(answer(&body("DELETE", &flow, None)).allowed);
        let response = answer(b"not json");
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .starts_with("reading the AdmissionReview")
        );
        let bad = json!({"apiVersion": "workflow.kube-zen.io/v1alpha1", "kind": "JobFlow",
                         "metadata": {"name": "f"}, "spec": {"steps": "nope"}});
        let response = answer(&body("CREATE", &bad, None));
        assert!(!response.allowed);
        assert!(
            response.result.message.starts_with("reading the JobFlow"),
            "{}",
            response.result.message
        );
    }
}
