//! Golden tests of the plugin as a user runs it: the built binary's exit code, stdout and
//! stderr for every offline command, and the live commands' text rendered from fixed objects.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use jiff::Timestamp;
use jobflow::api::JobFlow;
use kubectl_jobflow::cli::OutputFormat;
use kubectl_jobflow::{describe, get};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `kubectl-jobflow args` from the workspace root, without colour or a kubeconfig, and
/// returns a transcript: the command, its exit code, stdout and stderr.
fn transcript(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-jobflow"))
        .args(args)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin binary runs");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    format!(
        "$ kubectl jobflow {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn exit_code(transcript: &str) -> &str {
    transcript.lines().nth(1).unwrap()
}

#[test]
fn validate_accepts_every_example() {
    let mut examples: Vec<String> = std::fs::read_dir(workspace().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .map(|path| format!("examples/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    examples.sort();
    assert!(examples.len() >= 5, "{examples:?}");
    let mut args = vec!["validate", "-f"];
    args.extend(examples.iter().map(String::as_str));
    let text = transcript(&args, None);
    assert_eq!(exit_code(&text), "exit 0", "{text}");
    for example in &examples {
        assert!(text.contains(&format!("{example}: jobflow ")), "{text}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn validate_reports_each_broken_file_with_paths() {
    for name in [
        "broken-typo",
        "broken-cycle",
        "broken-types",
        "broken-syntax",
        "broken-name",
        "mixed",
    ] {
        let path = format!("kubectl-jobflow/tests/fixtures/{name}.yaml");
        let text = transcript(&["validate", "-f", &path], None);
        assert_eq!(exit_code(&text), "exit 1", "{text}");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn validate_shows_warnings_without_failing() {
    let text = transcript(
        &[
            "validate",
            "-f",
            "kubectl-jobflow/tests/fixtures/warnings.yaml",
        ],
        None,
    );
    assert_eq!(exit_code(&text), "exit 0", "{text}");
    assert!(text.contains("warning: spec.steps[0].template.spec.ttlSecondsAfterFinished"));
    insta::assert_snapshot!(text);
}

#[test]
fn validate_reads_stdin_and_files_together() {
    let broken = std::fs::read_to_string(
        workspace().join("kubectl-jobflow/tests/fixtures/broken-typo.yaml"),
    )
    .unwrap();
    let text = transcript(
        &["validate", "-f", "examples/linear-flow.yaml", "-f", "-"],
        Some(&broken),
    );
    assert_eq!(exit_code(&text), "exit 1", "{text}");
    assert!(
        text.contains("-: jobflow typo is invalid (1 problem)"),
        "{text}"
    );
    assert!(text.contains("examples/linear-flow.yaml: jobflow linear-flow is valid"));
}

#[test]
fn validate_reads_every_yaml_file_of_a_folder() {
    let text = transcript(&["validate", "-f", "examples"], None);
    assert_eq!(exit_code(&text), "exit 0", "{text}");
    assert!(
        text.contains("examples/dag-flow.yaml: jobflow dag-flow is valid"),
        "{text}"
    );
    assert!(text.matches(" is valid").count() >= 5, "{text}");
    let broken = transcript(&["validate", "-f", "kubectl-jobflow/tests/fixtures"], None);
    assert_eq!(exit_code(&broken), "exit 1", "{broken}");
    assert!(
        broken.contains("warnings.yaml: jobflow warned is valid"),
        "{broken}"
    );
}

#[test]
fn validate_of_a_missing_file_is_not_found() {
    let text = transcript(&["validate", "-f", "no/such/file.yaml"], None);
    assert_eq!(exit_code(&text), "exit 3", "{text}");
    insta::assert_snapshot!(text);
}

/// A 50-step flow: ten layers of five, each step waiting for two of the layer above, and a
/// finally step.
fn fifty_steps() -> String {
    let job = "template: {apiVersion: batch/v1, kind: Job, spec: {template: {spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}}}}";
    let mut text = String::from(
        "apiVersion: workflow.kube-zen.io/v1alpha1\nkind: JobFlow\nmetadata: {name: fifty}\nspec:\n  steps:\n",
    );
    for layer in 0..10 {
        for column in 0..5 {
            let _ = writeln!(text, "    - name: l{layer}-s{column}");
            if layer > 0 {
                let _ = writeln!(
                    text,
                    "      dependencies: [l{}-s{column}, l{}-s{}]",
                    layer - 1,
                    layer - 1,
                    (column + 1) % 5
                );
            }
            let _ = writeln!(text, "      {job}");
        }
    }
    let _ = writeln!(text, "  finally:\n    - name: report\n      {job}");
    text
}

#[test]
fn graph_draws_fifty_steps_in_every_format() {
    let flow = fifty_steps();
    for format in ["tree", "dot", "mermaid"] {
        let text = transcript(&["graph", "-f", "-", "--format", format], Some(&flow));
        assert_eq!(exit_code(&text), "exit 0", "{text}");
        assert!(text.contains("l9-s4"), "{text}");
        insta::assert_snapshot!(format!("graph_fifty_{format}"), text);
    }
}

#[test]
fn graph_of_the_examples_as_trees() {
    for name in ["dag-flow", "etl-outputs", "manual-approval-flow"] {
        let path = format!("examples/{name}.yaml");
        let text = transcript(&["graph", "-f", &path], None);
        assert_eq!(exit_code(&text), "exit 0", "{text}");
        insta::assert_snapshot!(format!("graph_{name}"), text);
    }
}

#[test]
fn graph_refuses_a_cycle_and_several_flows() {
    let cycle = transcript(
        &[
            "graph",
            "-f",
            "kubectl-jobflow/tests/fixtures/broken-cycle.yaml",
        ],
        None,
    );
    assert_eq!(exit_code(&cycle), "exit 1", "{cycle}");
    assert!(cycle.contains("dependency cycle a -> b -> a"), "{cycle}");
    let mixed = transcript(
        &["graph", "-f", "kubectl-jobflow/tests/fixtures/mixed.yaml"],
        None,
    );
    assert_eq!(exit_code(&mixed), "exit 1", "{mixed}");
    let neither = transcript(&["graph"], None);
    assert_eq!(exit_code(&neither), "exit 2", "{neither}");
    let watch_file = transcript(&["graph", "-f", "examples/dag-flow.yaml", "--watch"], None);
    assert_eq!(exit_code(&watch_file), "exit 2", "{watch_file}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    let unknown = transcript(&["get", "--bogus"], None);
    assert_eq!(exit_code(&unknown), "exit 2", "{unknown}");
    let conflicting = transcript(&["get", "etl", "-A"], None);
    assert_eq!(exit_code(&conflicting), "exit 2", "{conflicting}");
    let help = transcript(&["--help"], None);
    assert_eq!(exit_code(&help), "exit 0", "{help}");
    insta::assert_snapshot!(help);
}

#[test]
fn version_without_a_cluster_shows_the_plugin() {
    let client = transcript(&["version", "--client"], None);
    assert_eq!(exit_code(&client), "exit 0", "{client}");
    let expected = format!("plugin: kubectl-jobflow {}\n", env!("CARGO_PKG_VERSION"));
    assert!(client.contains(&expected), "{client}");
    // No kubeconfig: still the plugin's version, and exit 0.
    let offline = transcript(&["version"], None);
    assert_eq!(exit_code(&offline), "exit 0", "{offline}");
    assert!(offline.contains(&expected), "{offline}");
    assert!(
        offline.contains("server: not reachable (cannot load the kubeconfig"),
        "{offline}"
    );
}

#[test]
fn completion_scripts_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let text = transcript(&["completion", shell], None);
        assert_eq!(exit_code(&text), "exit 0", "{text}");
        for command in [
            "approve",
            "describe",
            "graph",
            "retry",
            "validate",
            "kubeconfig",
        ] {
            assert!(text.contains(command), "{shell} lacks {command}");
        }
    }
    let unknown = transcript(&["completion", "powershell"], None);
    assert_eq!(exit_code(&unknown), "exit 2", "{unknown}");
}

#[test]
fn missing_kubeconfig_exits_3_and_says_what_to_do() {
    let text = transcript(&["--kubeconfig", "/nonexistent/config", "get"], None);
    assert_eq!(exit_code(&text), "exit 3", "{text}");
    assert!(
        text.contains("pass --kubeconfig or set KUBECONFIG"),
        "{text}"
    );
}

/// A flow paused at a Manual gate, with a failed-then-retried step and outputs.
fn live_flow() -> JobFlow {
    serde_yaml_ng::from_str(
        r#"
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: release
  namespace: prod
  creationTimestamp: "2026-12-02T07:00:00Z"
  annotations:
    approve.workflow.kube-zen.io/gate: r1
spec:
  steps:
    - name: build
      outputs: {parameters: [{name: image, valueFrom: {jsonPath: .image}}]}
      template: {apiVersion: batch/v1, kind: Job, spec: {}}
    - name: gate
      type: Manual
      dependencies: [build]
    - name: deploy
      dependencies: [gate]
      template: {apiVersion: batch/v1, kind: Job, spec: {}}
status:
  phase: Paused
  startTime: "2026-12-02T07:00:01Z"
  progress: {completedSteps: 1, totalSteps: 3, successfulSteps: 1, failedSteps: 0, skippedSteps: 0, runningSteps: 0, summary: 1/3}
  conditions:
    - {type: Ready, status: "False", reason: FlowPaused, message: "step gate waits for approval", lastTransitionTime: "2026-12-02T07:01:00Z"}
  steps:
    - name: build
      phase: Succeeded
      reason: JobSucceeded
      attempt: 2
      retryCount: 1
      jobRef: {name: release-build-2}
      startTime: "2026-12-02T07:00:30Z"
      completionTime: "2026-12-02T07:01:00Z"
      outputs: {image: "registry/app:1.2"}
    - {name: gate, phase: PendingApproval, reason: WaitingForApproval, message: "ship release 1.2?"}
    - {name: deploy, phase: Pending}
"#,
    )
    .unwrap()
}

fn now() -> Timestamp {
    "2026-12-02T07:05:00Z".parse().unwrap()
}

#[test]
fn describe_shows_steps_outputs_requests_and_what_to_do() {
    let events: Vec<k8s_openapi::api::core::v1::Event> = serde_json::from_value(serde_json::json!([
        {"metadata": {"name": "e1"}, "involvedObject": {}, "type": "Normal", "reason": "StepCreated",
         "message": "Created Job release-build-1", "lastTimestamp": "2026-12-02T07:00:01Z"},
        {"metadata": {"name": "e2"}, "involvedObject": {}, "type": "Normal", "reason": "StepPendingApproval",
         "message": "Step gate waits for approval", "lastTimestamp": "2026-12-02T07:01:00Z"},
    ]))
    .unwrap();
    let coloured = describe::render(&live_flow(), &events, now());
    // On a terminal the phase is coloured; the golden text is what a pipe shows.
    assert!(coloured.contains("\x1b["), "{coloured}");
    let text = anstream::adapter::strip_str(&coloured).to_string();
    assert!(
        text.contains("kubectl jobflow approve release gate -n prod"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn get_shows_phase_progress_and_age() {
    let flows = [live_flow()];
    insta::assert_snapshot!(
        "get_table",
        get::render_table(&flows, false, OutputFormat::Table, now())
    );
    insta::assert_snapshot!(
        "get_wide_all_namespaces",
        get::render_table(&flows, true, OutputFormat::Wide, now())
    );
    let json = serde_json::to_string_pretty(&get::object(&flows[0])).unwrap();
    assert!(json.contains("\"kind\": \"JobFlow\""), "{json}");
    insta::assert_snapshot!("get_json", json);
}

#[test]
fn describe_says_when_a_flow_is_being_deleted() {
    let mut flow = live_flow();
    flow.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-12-02T07:04:00Z".parse().unwrap(),
    ));
    flow.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    let text = anstream::adapter::strip_str(&describe::render(&flow, &[], now())).to_string();
    assert!(
        text.contains(
            "Deleting:    2026-12-02T07:04:00Z (60s ago), waiting for finalizers example.com/hold\n"
        ),
        "{text}"
    );
    assert!(!describe::render(&live_flow(), &[], now()).contains("Deleting:"));
}
