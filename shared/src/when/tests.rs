use super::*;
use crate::api::StepPhase;

fn status(name: &str, phase: StepPhase, outputs: &[(&str, &str)]) -> StepStatus {
    StepStatus {
        name: name.to_owned(),
        phase,
        outputs: outputs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..StepStatus::default()
    }
}

fn steps() -> Vec<StepStatus> {
    vec![
        status(
            "build",
            StepPhase::Succeeded,
            &[("count", "3"), ("ready", "true")],
        ),
        status("build-x", StepPhase::Failed, &[]),
        status("test", StepPhase::Skipped, &[("report-url", "http://r")]),
    ]
}

fn evaluate(source: &str) -> Result<bool, EvaluateWhenError> {
    evaluate_with(source, None, &BTreeMap::new())
}

fn evaluate_with(
    source: &str,
    flow_phase: Option<FlowPhase>,
    parameters: &BTreeMap<String, String>,
) -> Result<bool, EvaluateWhenError> {
    let steps = steps();
    When::parse(source).unwrap().evaluate(&WhenScope {
        steps: &steps,
        flow_phase,
        parameters,
    })
}

fn parse_error(source: &str) -> String {
    When::parse(source).unwrap_err().to_string()
}

#[test]
fn keywords_are_constants() {
    for (source, expected) in [
        ("always", true),
        (" true ", true),
        ("never", false),
        ("false\n", false),
    ] {
        assert_eq!(evaluate(source), Ok(expected), "{source}");
        assert!(When::parse(source).unwrap().referenced_steps().is_empty());
    }
}

#[test]
fn an_empty_condition_is_rejected() {
    assert_eq!(When::parse("  ").unwrap_err(), ParseWhenError::Empty);
}

#[test]
fn compares_step_phases() {
    assert_eq!(evaluate(r#"steps.build.phase == "Succeeded""#), Ok(true));
    assert_eq!(evaluate(r#"steps.build.phase == "Failed""#), Ok(false));
    assert_eq!(evaluate(r#"steps.test.phase != "Succeeded""#), Ok(true));
    assert_eq!(
        evaluate(
            r#"steps.build.phase in ["Succeeded", "Skipped"] && steps.test.phase == "Skipped""#
        ),
        Ok(true)
    );
}

#[test]
fn reads_outputs() {
    assert_eq!(evaluate(r#"steps.build.outputs.count == "3""#), Ok(true));
    assert_eq!(evaluate("int(steps.build.outputs.count) > 2"), Ok(true));
    assert_eq!(
        evaluate(r#"steps.test.outputs["report-url"].startsWith("http")"#),
        Ok(true)
    );
    assert_eq!(evaluate("has(steps.build.outputs.missing)"), Ok(false));
}

#[test]
fn reads_hyphenated_step_names_by_index() {
    assert_eq!(evaluate(r#"steps["build-x"].phase == "Failed""#), Ok(true));
    let when =
        When::parse(r#"steps["build-x"].phase == "Failed" || steps.build.phase == "Failed""#)
            .unwrap();
    assert_eq!(when.referenced_steps(), ["build-x", "build"]);
}

#[test]
fn reads_the_flow_phase() {
    let none = BTreeMap::new();
    let source = r#"flow.phase == "Failed""#;
    assert_eq!(
        evaluate_with(source, Some(FlowPhase::Failed), &none),
        Ok(true)
    );
    assert_eq!(
        evaluate_with(source, Some(FlowPhase::Succeeded), &none),
        Ok(false)
    );
    assert_eq!(evaluate_with(r#"flow.phase == """#, None, &none), Ok(true));
}

#[test]
fn reads_parameters() {
    let parameters = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    assert_eq!(
        evaluate_with(r#"parameters.env == "prod""#, None, &parameters),
        Ok(true)
    );
    assert_eq!(
        evaluate_with(r#"parameters["env"] != "dev""#, None, &parameters),
        Ok(true)
    );
}

#[test]
fn reading_steps_whole_is_rejected() {
    for source in [
        r#"steps.exists(name, steps[name].phase == "Failed")"#,
        "size(steps) == 3",
        r#"steps[parameters.step].phase == "Failed""#,
        r#""build" in steps"#,
        "[steps].size() == 1",
    ] {
        assert_eq!(
            When::parse(source).unwrap_err(),
            ParseWhenError::StepsReadWhole,
            "{source}"
        );
    }
    // A variable a macro binds may be called steps; only the free one is the flow's.
    assert!(When::parse("[1].all(steps, steps > 0)").is_ok());
    assert!(When::parse(r#"has(steps.build) && steps["build-x"].phase == "Failed""#).is_ok());
}

#[test]
fn long_deep_and_costly_conditions_are_rejected() {
    let long = format!("{}true", "true && ".repeat(300));
    assert!(
        matches!(
            When::parse(&long),
            Err(ParseWhenError::TooLong { max: 2048, .. })
        ),
        "{long}"
    );
    let deep = format!("{}true{}", "!(".repeat(40), ")".repeat(40));
    assert_eq!(
        When::parse(&deep).unwrap_err(),
        ParseWhenError::TooDeep { depth: 40, max: 16 }
    );
    let chained = format!("{}true", "false ? false : ".repeat(20));
    assert!(matches!(
        When::parse(&chained),
        Err(ParseWhenError::TooDeep { .. })
    ));
    // Brackets in strings do not count.
    When::parse(&format!("{:?} != \"\"", "(".repeat(40))).unwrap();
    // Each level iterates over data of unknown size: 4096^3 bodies.
    let nested =
        "steps.a.outputs.all(x, steps.a.outputs.all(y, steps.a.outputs.all(z, x + y + z != \"\")))";
    let error = When::parse(nested).unwrap_err();
    assert!(matches!(error, ParseWhenError::TooCostly { .. }), "{error}");
    assert!(error.to_string().contains("avoid nesting"), "{error}");
    // One level over data, or nesting over short literal lists, stays within the limit.
    When::parse(r#"steps.a.outputs.all(k, steps.a.outputs[k] != "")"#).unwrap();
    When::parse("[1, 2, 3].all(x, [4, 5].all(y, x < y))").unwrap();
}

#[test]
fn a_missing_step_is_an_error_not_false() {
    let error = evaluate(r#"steps.deploy.phase == "Succeeded""#).unwrap_err();
    assert!(
        matches!(&error, EvaluateWhenError::Failed { message, .. } if message.contains("deploy")),
        "{error}"
    );
}

#[test]
fn a_missing_output_is_an_error() {
    let error = evaluate(r#"steps.build.outputs.size == "1""#).unwrap_err();
    assert!(error.to_string().contains("No such key: size"), "{error}");
}

#[test]
fn a_type_mismatch_is_an_error() {
    let error = evaluate("steps.build.outputs.count > 2").unwrap_err();
    assert!(matches!(error, EvaluateWhenError::Failed { .. }), "{error}");
}

#[test]
fn a_result_that_is_not_a_bool_is_an_error() {
    let error = evaluate("parameters").unwrap_err();
    assert_eq!(
        error,
        EvaluateWhenError::NotBool {
            expression: "parameters".into(),
            found: "map".into()
        }
    );
    let error = evaluate(r#"steps.build.outputs["count"]"#).unwrap_err();
    assert!(matches!(error, EvaluateWhenError::NotBool { found, .. } if found == "string"));
}

#[test]
fn a_literal_that_is_not_a_bool_is_rejected_at_parse_time() {
    assert_eq!(
        parse_error(r#""yes""#),
        "the condition gives a string, not true or false; compare it, e.g. steps.build.outputs.ready == \"true\""
    );
    assert!(parse_error("steps.build.phase").contains("gives a string"));
    assert!(parse_error("1 + 2").contains("gives a number"));
}

#[test]
fn unknown_variables_are_rejected() {
    assert_eq!(
        When::parse(r#"step.build.phase == "Succeeded""#).unwrap_err(),
        ParseWhenError::UnknownVariable {
            name: "step".into()
        }
    );
    // Variables bound by a macro are known inside it only.
    assert!(When::parse("[1, 2].all(x, x > 0)").is_ok());
    assert!(When::parse("[1, 2].all(x, x > 0) && x").is_err());
    assert!(When::parse("type(parameters) == map").is_ok());
}

#[test]
fn unknown_fields_are_rejected() {
    assert_eq!(
        parse_error(r#"steps.build.status == "Succeeded""#),
        "steps.build.status does not exist; a step offers only .phase and .outputs (e.g. steps.build.phase)"
    );
    assert_eq!(
        When::parse(r#"flow.status == "Failed""#).unwrap_err(),
        ParseWhenError::UnknownFlowField {
            field: "status".into()
        }
    );
}

#[test]
fn misspelled_phases_are_rejected() {
    assert_eq!(
        parse_error(r#"steps.build.phase == "Succeded""#),
        "steps.build.phase is never \"Succeded\"; it is one of Pending, Running, Succeeded, Failed, Skipped, PendingApproval"
    );
    assert!(
        parse_error(r#""Complete" != flow.phase"#).contains("flow.phase is never \"Complete\"")
    );
    assert!(parse_error(r#"steps["a-b"].phase in ["Done"]"#).contains("steps.a-b.phase"));
}

#[test]
fn syntax_errors_say_where() {
    let error = When::parse(r#"steps.build.phase = "Succeeded""#).unwrap_err();
    assert!(
        matches!(error, ParseWhenError::Syntax { column, .. } if column > 1),
        "{error}"
    );
    assert!(error.to_string().starts_with("invalid CEL at column"));
}

#[test]
fn referenced_steps_are_collected_once_in_order() {
    let when = When::parse(
        r#"steps.b.phase == "Failed" && has(steps.a.outputs.x) && steps.b.outputs.y == "1""#,
    )
    .unwrap();
    assert_eq!(when.referenced_steps(), ["b", "a"]);
}

#[test]
fn go_templates_are_rejected_with_the_cel_equivalent() {
    let expected = r#"Go-template conditions are not supported; write CEL instead: steps.build.phase == "Succeeded""#;
    for source in [
        r#"{{ .Steps.build.Phase == "Succeeded" }}"#,
        r#"{{ eq .steps.build.phase "Succeeded" }}"#,
        r"{{ .steps.build.phase }} == Succeeded",
        "{{- eq .STEPS.build.PHASE `Succeeded` -}}",
    ] {
        assert_eq!(parse_error(source), expected, "{source}");
    }
}

#[test]
fn go_templates_translate_outputs_flow_and_parameters() {
    let cases = [
        (
            r#"{{ ne .Steps.load-data.Outputs.row-count "0" }}"#,
            r#"steps["load-data"].outputs["row-count"] != "0""#,
        ),
        (
            r#"{{ eq .Flow.Phase "Failed" }}"#,
            r#"flow.phase == "Failed""#,
        ),
        (
            r"{{ eq .Parameters.env prod }}",
            r#"parameters.env == "prod""#,
        ),
        (r"{{ eq .steps.a.outputs.n 3 }}", "steps.a.outputs.n == 3"),
    ];
    for (source, cel) in cases {
        assert_eq!(
            When::parse(source).unwrap_err(),
            ParseWhenError::GoTemplate {
                suggestion: cel.into()
            },
            "{source}"
        );
        // The suggestion itself parses.
        When::parse(cel).unwrap();
    }
}

#[test]
fn unusual_go_templates_get_a_generic_hint() {
    for source in [
        r#"{{ and (eq .Steps.a.Phase "Succeeded") (eq .Steps.b.Phase "Succeeded") }}"#,
        "{{ .Steps.a.Phase }}",
        r#"{{ eq .Values.x "1" }}"#,
    ] {
        assert_eq!(
            When::parse(source).unwrap_err(),
            ParseWhenError::GoTemplateUntranslated,
            "{source}"
        );
    }
    assert!(parse_error("{{ x }}").contains("write CEL instead, for example"));
}

#[test]
fn a_compiled_condition_evaluates_many_times() {
    let when = When::parse(r#"steps.build.phase == "Succeeded""#).unwrap();
    let parameters = BTreeMap::new();
    let mut statuses = steps();
    for (phase, expected) in [(StepPhase::Succeeded, true), (StepPhase::Running, false)] {
        statuses[0].phase = phase;
        let scope = WhenScope {
            steps: &statuses,
            flow_phase: None,
            parameters: &parameters,
        };
        assert_eq!(when.evaluate(&scope), Ok(expected));
    }
    assert_eq!(when.source(), r#"steps.build.phase == "Succeeded""#);
}

#[test]
fn the_deepest_allowed_condition_parses_and_evaluates_on_a_small_stack() {
    // 16 levels: the parser runs on its own thread; evaluation runs on the caller's.
    let source = format!(
        "{}steps.build.phase == \"Succeeded\"{}",
        "(".repeat(15),
        ")".repeat(15)
    );
    let result = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || evaluate(&source))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, Ok(true));
}
