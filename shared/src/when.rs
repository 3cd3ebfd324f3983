//! `when` expressions: CEL over the flow's step phases, outputs and parameters.
//!
//! An expression is compiled once by [`When::parse`], which also checks what it can without
//! data: only `steps`, `flow` and `parameters` are read, a step offers only `phase` and
//! `outputs`, phases compared with literals exist, and the result can be a bool. (CEL 0.15 has
//! no type checker, so anything else surfaces as an [`EvaluateWhenError`].) [`When::evaluate`]
//! then runs it any number of times against a [`WhenScope`].
//!
//! The variables: `steps` maps each step name to `{phase, outputs}` (`steps.build.phase`,
//! `steps["build-x"].outputs.count`), `flow` is `{phase}` (`"Succeeded"` or `"Failed"` for
//! finally steps, `""` when the scope has no phase), and `parameters` maps names to string
//! values.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::common::types::{CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};

use crate::api::{FlowPhase, StepStatus};

/// A compiled `when` condition.
#[derive(Clone, Debug)]
pub struct When {
    source: String,
    condition: Condition,
    referenced_steps: Vec<String>,
    reads_all_steps: bool,
}

#[derive(Clone, Debug)]
enum Condition {
    Constant(bool),
    Cel(Arc<Program>),
}

/// What a `when` expression can read while it is evaluated.
#[derive(Clone, Copy, Debug)]
pub struct WhenScope<'a> {
    /// The status of every step of the flow.
    pub steps: &'a [StepStatus],
    /// The flow's phase, for finally steps Succeeded or Failed; None reads as "".
    pub flow_phase: Option<FlowPhase>,
    /// The flow's parameters by name.
    pub parameters: &'a BTreeMap<String, String>,
}

/// Why a `when` expression cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseWhenError {
    /// The expression is blank.
    #[error(
        "the condition is empty; write a CEL condition such as steps.build.phase == \"Succeeded\", or remove `when`"
    )]
    Empty,
    /// A Go-template condition, with the CEL that means the same.
    #[error("Go-template conditions are not supported; write CEL instead: {suggestion}")]
    GoTemplate {
        /// The equivalent CEL expression.
        suggestion: String,
    },
    /// A Go-template condition too unusual to translate.
    #[error(
        "Go-template conditions are not supported; write CEL instead, for example steps.build.phase == \"Succeeded\", steps[\"load-data\"].outputs.count == \"3\" or flow.phase == \"Failed\""
    )]
    GoTemplateUntranslated,
    /// The expression is not valid CEL.
    #[error(
        "invalid CEL at column {column}: {message}; fix the syntax (CEL uses ==, !=, &&, || and \"double-quoted\" strings)"
    )]
    Syntax {
        /// Where the first error is, from 1.
        column: isize,
        /// What the CEL parser said.
        message: String,
    },
    /// The expression reads a variable that does not exist.
    #[error(
        "unknown variable `{name}`; a condition can read only steps (steps.<name>.phase, steps.<name>.outputs.<param>), flow (flow.phase) and parameters (parameters.<name>)"
    )]
    UnknownVariable {
        /// The variable's name.
        name: String,
    },
    /// The expression reads a field of `flow` other than `phase`.
    #[error(
        "flow.{field} does not exist; the flow offers only flow.phase (e.g. flow.phase == \"Failed\")"
    )]
    UnknownFlowField {
        /// The field read.
        field: String,
    },
    /// The expression reads a field of a step other than `phase` and `outputs`.
    #[error(
        "steps.{step}.{field} does not exist; a step offers only .phase and .outputs (e.g. steps.{step}.phase)"
    )]
    UnknownStepField {
        /// The step.
        step: String,
        /// The field read.
        field: String,
    },
    /// A phase is compared with a name that is not a phase.
    #[error("{subject} is never {value:?}; it is one of {}", .phases.join(", "))]
    UnknownPhase {
        /// What is compared, e.g. `steps.build.phase`.
        subject: String,
        /// The literal it is compared with.
        value: String,
        /// The phases it can have.
        phases: Vec<&'static str>,
    },
    /// The expression cannot be true or false.
    #[error(
        "the condition gives {found}, not true or false; compare it, e.g. steps.build.outputs.ready == \"true\""
    )]
    NotACondition {
        /// What it gives, e.g. "a string".
        found: &'static str,
    },
}

/// Why a `when` expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateWhenError {
    /// CEL failed, e.g. on a missing key or a type mismatch.
    #[error(
        "condition {expression:?} failed: {message}; check the steps, outputs and parameters it reads exist (guard optional ones with has(...))"
    )]
    Failed {
        /// The expression.
        expression: String,
        /// CEL's message.
        message: String,
    },
    /// The expression gave something else than a bool.
    #[error(
        "condition {expression:?} gave a {found}, not true or false; compare it, e.g. ... == \"true\""
    )]
    NotBool {
        /// The expression.
        expression: String,
        /// The CEL type it gave.
        found: String,
    },
}

static ENVIRONMENT: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

const VARIABLES: [&str; 3] = ["steps", "flow", "parameters"];
const STEP_FIELDS: [&str; 2] = ["phase", "outputs"];
const TYPE_NAMES: [&str; 13] = [
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "optional",
    "optional_type",
    "string",
    "type",
    "uint",
];
const STEP_PHASES: [&str; 6] = [
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Skipped",
    "PendingApproval",
];
const FLOW_PHASES: [&str; 6] = [
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Suspended",
    "Paused",
];

impl When {
    /// Compiles a condition: `always`/`true`, `never`/`false`, or a CEL expression.
    pub fn parse(source: &str) -> Result<Self, ParseWhenError> {
        let trimmed = source.trim();
        let constant = match trimmed {
            "" => return Err(ParseWhenError::Empty),
            "always" | "true" => Some(true),
            "never" | "false" => Some(false),
            _ => None,
        };
        if let Some(value) = constant {
            return Ok(Self {
                source: trimmed.to_owned(),
                condition: Condition::Constant(value),
                referenced_steps: Vec::new(),
                reads_all_steps: false,
            });
        }
        if trimmed.contains("{{") {
            return Err(match translate_go_template(trimmed) {
                Some(suggestion) => ParseWhenError::GoTemplate { suggestion },
                None => ParseWhenError::GoTemplateUntranslated,
            });
        }
        let program = ENVIRONMENT.compile(trimmed).map_err(|errors| {
            let first = errors.errors.first();
            ParseWhenError::Syntax {
                column: first.map_or(0, |error| error.pos.1 + 1),
                message: first
                    .map_or_else(|| errors.to_string(), |error| error.msg.clone())
                    .replace('\n', " "),
            }
        })?;
        let mut checker = Checker::default();
        checker.visit(program.expression())?;
        if let Some(found) = never_a_bool(program.expression()) {
            return Err(ParseWhenError::NotACondition { found });
        }
        Ok(Self {
            source: trimmed.to_owned(),
            condition: Condition::Cel(Arc::new(program)),
            referenced_steps: checker.referenced_steps,
            reads_all_steps: checker.reads_all_steps,
        })
    }

    /// The condition as written, trimmed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The step names the condition reads as `steps.X` or `steps["X"]`, in order of first
    /// mention.
    pub fn referenced_steps(&self) -> Vec<String> {
        self.referenced_steps.clone()
    }

    /// Evaluates the condition; a CEL error or a result other than a bool is an error.
    pub fn evaluate(&self, scope: &WhenScope<'_>) -> Result<bool, EvaluateWhenError> {
        let program = match &self.condition {
            Condition::Constant(value) => return Ok(*value),
            Condition::Cel(program) => program,
        };
        let mut context = Context::with_env(Arc::clone(&ENVIRONMENT));
        context.add_variable_as_val("steps", self.steps_value(scope.steps));
        context.add_variable_as_val("flow", flow_value(scope.flow_phase));
        context.add_variable_as_val("parameters", string_map(scope.parameters));
        match program.execute(&context) {
            Ok(Value::Bool(value)) => Ok(value),
            Ok(other) => Err(EvaluateWhenError::NotBool {
                expression: self.source.clone(),
                found: other.type_of().to_string(),
            }),
            Err(error) => Err(EvaluateWhenError::Failed {
                expression: self.source.clone(),
                message: error.to_string(),
            }),
        }
    }

    /// The `steps` variable: every step when the expression may read any, else only the
    /// steps it names (a named step that is absent stays absent, so reading it fails).
    /// Its strings are borrowed from the scope, not copied.
    fn steps_value<'v>(&self, steps: &'v [StepStatus]) -> Box<dyn Val + 'v> {
        let wanted = |status: &&StepStatus| {
            self.reads_all_steps || self.referenced_steps.contains(&status.name)
        };
        let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = steps
            .iter()
            .filter(wanted)
            .map(|status| {
                let fields: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::from([
                    (CelMapKey::from("phase"), text(status.phase.as_str())),
                    (CelMapKey::from("outputs"), string_map(&status.outputs)),
                ]);
                (
                    CelMapKey::from(status.name.as_str()),
                    Box::new(CelMap::from(fields)) as Box<dyn Val + 'v>,
                )
            })
            .collect();
        Box::new(CelMap::from(entries))
    }
}

fn text(value: &str) -> Box<dyn Val + '_> {
    Box::new(CelString::from(value))
}

fn string_map(values: &BTreeMap<String, String>) -> Box<dyn Val + '_> {
    let entries: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = values
        .iter()
        .map(|(name, value)| (CelMapKey::from(name.as_str()), text(value)))
        .collect();
    Box::new(CelMap::from(entries))
}

fn flow_value(phase: Option<FlowPhase>) -> Box<dyn Val + 'static> {
    let phase = phase.map_or("", FlowPhase::as_str);
    Box::new(CelMap::from(HashMap::from([(
        CelMapKey::from("phase"),
        text(phase),
    )])))
}

/// Walks the compiled expression: rejects unknown variables and fields, collects step names.
#[derive(Default)]
struct Checker {
    bound: Vec<String>,
    referenced_steps: Vec<String>,
    reads_all_steps: bool,
}

impl Checker {
    fn visit(&mut self, node: &IdedExpr) -> Result<(), ParseWhenError> {
        match &node.expr {
            Expr::Ident(name) => self.visit_identifier(name),
            Expr::Select(select) => {
                if let Some(step) = self.step_accessed(node) {
                    self.note_step(step);
                    return Ok(());
                }
                if let Some(step) = self.step_accessed(&select.operand) {
                    if !STEP_FIELDS.contains(&select.field.as_str()) {
                        return Err(ParseWhenError::UnknownStepField {
                            step: step.to_owned(),
                            field: select.field.clone(),
                        });
                    }
                } else if self.is_free_variable(&select.operand, "flow") && select.field != "phase"
                {
                    return Err(ParseWhenError::UnknownFlowField {
                        field: select.field.clone(),
                    });
                }
                self.visit(&select.operand)
            }
            Expr::Call(call) => self.visit_call(node, call),
            Expr::Comprehension(comprehension) => self.visit_comprehension(comprehension),
            Expr::List(list) => list.elements.iter().try_for_each(|item| self.visit(item)),
            Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => {
                    self.visit(&entry.key)?;
                    self.visit(&entry.value)
                }
                cel::common::ast::EntryExpr::StructField(field) => self.visit(&field.value),
            }),
            Expr::Struct(structure) => structure.entries.iter().try_for_each(|entry| match &entry
                .expr
            {
                cel::common::ast::EntryExpr::StructField(field) => self.visit(&field.value),
                cel::common::ast::EntryExpr::MapEntry(entry) => {
                    self.visit(&entry.key)?;
                    self.visit(&entry.value)
                }
            }),
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    fn visit_identifier(&mut self, name: &str) -> Result<(), ParseWhenError> {
        if self.bound.iter().any(|bound| bound == name) || TYPE_NAMES.contains(&name) {
            return Ok(());
        }
        if name == "steps" {
            // `steps` used whole (iterated, sized, passed on): it may read any step.
            self.reads_all_steps = true;
        }
        if VARIABLES.contains(&name) {
            Ok(())
        } else {
            Err(ParseWhenError::UnknownVariable {
                name: name.to_owned(),
            })
        }
    }

    fn visit_call(&mut self, node: &IdedExpr, call: &CallExpr) -> Result<(), ParseWhenError> {
        if let Some(step) = self.step_accessed(node) {
            self.note_step(step);
            return Ok(());
        }
        if (call.func_name == operators::EQUALS || call.func_name == operators::NOT_EQUALS)
            && let [left, right] = call.args.as_slice()
        {
            self.check_phase_literal(left, right)?;
            self.check_phase_literal(right, left)?;
        }
        if call.func_name == operators::IN
            && let [subject, range] = call.args.as_slice()
            && let Expr::List(list) = &range.expr
        {
            for item in &list.elements {
                self.check_phase_literal(subject, item)?;
            }
        }
        if let Some(target) = &call.target {
            self.visit(target)?;
        }
        call.args.iter().try_for_each(|arg| self.visit(arg))
    }

    fn visit_comprehension(
        &mut self,
        comprehension: &ComprehensionExpr,
    ) -> Result<(), ParseWhenError> {
        self.visit(&comprehension.iter_range)?;
        self.visit(&comprehension.accu_init)?;
        let depth = self.bound.len();
        self.bound.push(comprehension.accu_var.clone());
        self.bound.push(comprehension.iter_var.clone());
        self.bound.extend(comprehension.iter_var2.clone());
        let result = [
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ]
        .into_iter()
        .try_for_each(|part| self.visit(part));
        self.bound.truncate(depth);
        result
    }

    /// Rejects `subject == "Literal"` when `subject` is a phase and the literal is not one.
    fn check_phase_literal(
        &self,
        subject: &IdedExpr,
        other: &IdedExpr,
    ) -> Result<(), ParseWhenError> {
        let Some(value) = string_literal(other) else {
            return Ok(());
        };
        let Expr::Select(select) = &subject.expr else {
            return Ok(());
        };
        if select.field != "phase" || select.test {
            return Ok(());
        }
        let (subject, phases, may_be_empty) =
            if let Some(step) = self.step_accessed(&select.operand) {
                (format!("steps.{step}.phase"), STEP_PHASES.as_slice(), false)
            } else if self.is_free_variable(&select.operand, "flow") {
                ("flow.phase".to_owned(), FLOW_PHASES.as_slice(), true)
            } else {
                return Ok(());
            };
        if phases.contains(&value) || (may_be_empty && value.is_empty()) {
            return Ok(());
        }
        Err(ParseWhenError::UnknownPhase {
            subject,
            value: value.to_owned(),
            phases: phases.to_vec(),
        })
    }

    /// The step that `node` reads when it is `steps.X` or `steps["X"]`.
    fn step_accessed<'e>(&self, node: &'e IdedExpr) -> Option<&'e str> {
        match &node.expr {
            Expr::Select(select) if self.is_free_variable(&select.operand, "steps") => {
                Some(&select.field)
            }
            Expr::Call(call)
                if call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX =>
            {
                match call.args.as_slice() {
                    [map, name] if self.is_free_variable(map, "steps") => string_literal(name),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn is_free_variable(&self, node: &IdedExpr, variable: &str) -> bool {
        matches!(&node.expr, Expr::Ident(name) if name == variable)
            && !self.bound.iter().any(|bound| bound == variable)
    }

    fn note_step(&mut self, step: &str) {
        if !self.referenced_steps.iter().any(|known| known == step) {
            self.referenced_steps.push(step.to_owned());
        }
    }
}

fn string_literal(node: &IdedExpr) -> Option<&str> {
    match &node.expr {
        Expr::Literal(LiteralValue::String(value)) => Some(value.inner()),
        _ => None,
    }
}

/// What the expression gives when that can never be a bool, whatever the data.
fn never_a_bool(node: &IdedExpr) -> Option<&'static str> {
    match &node.expr {
        Expr::Literal(LiteralValue::String(_)) => Some("a string"),
        Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_)) => {
            Some("a number")
        }
        Expr::Literal(LiteralValue::Bytes(_)) => Some("bytes"),
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) => Some("a map"),
        Expr::Call(call)
            if [
                operators::ADD,
                operators::SUBSTRACT,
                operators::MULTIPLY,
                operators::DIVIDE,
                operators::MODULO,
                operators::NEGATE,
            ]
            .contains(&call.func_name.as_str()) =>
        {
            Some("a number or text")
        }
        Expr::Select(select) if !select.test && STEP_FIELDS.contains(&select.field.as_str()) => {
            match &select.operand.expr {
                Expr::Select(inner) if matches!(&inner.operand.expr, Expr::Ident(root) if root == "steps") => {
                    Some(if select.field == "phase" {
                        "a string"
                    } else {
                        "a map"
                    })
                }
                Expr::Ident(root) if root == "flow" && select.field == "phase" => Some("a string"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The CEL equivalent of a simple Go-template condition: `eq A B`, `ne A B`, `A == B`,
/// `A != B`, with `.Steps.<step>.Phase`, `.Steps.<step>.Outputs.<param>`, `.Flow.Phase` or
/// `.Parameters.<name>` in any capitalisation; None for anything else.
fn translate_go_template(source: &str) -> Option<String> {
    let stripped = source
        .replace("{{-", " ")
        .replace("-}}", " ")
        .replace("{{", " ")
        .replace("}}", " ");
    let tokens = go_template_tokens(&stripped)?;
    let (left, operator, right) = match tokens.as_slice() {
        [GoToken::Word(function), left, right] if function == "eq" => (left, "==", right),
        [GoToken::Word(function), left, right] if function == "ne" => (left, "!=", right),
        [left, GoToken::Word(operator), right] if operator == "==" || operator == "!=" => {
            (left, operator.as_str(), right)
        }
        _ => return None,
    };
    let is_path = |token: &GoToken| matches!(token, GoToken::Word(word) if word.starts_with('.'));
    if !is_path(left) && !is_path(right) {
        return None;
    }
    Some(format!(
        "{} {operator} {}",
        go_operand_as_cel(left)?,
        go_operand_as_cel(right)?
    ))
}

enum GoToken {
    Word(String),
    Text(String),
}

fn go_template_tokens(source: &str) -> Option<Vec<GoToken>> {
    let mut tokens = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(&next) = chars.peek() {
        if next.is_whitespace() {
            chars.next();
        } else if matches!(next, '"' | '\'' | '`') {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next()? {
                    '\\' if next != '`' => text.push(chars.next()?),
                    closing if closing == next => break,
                    other => text.push(other),
                }
            }
            tokens.push(GoToken::Text(text));
        } else if matches!(next, '(' | ')' | '|') {
            return None;
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | ')' | '|') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(GoToken::Word(word));
        }
    }
    Some(tokens)
}

fn go_operand_as_cel(token: &GoToken) -> Option<String> {
    match token {
        GoToken::Text(text) => Some(cel_string(text)),
        GoToken::Word(word) if word.starts_with('.') => go_path_as_cel(&word[1..]),
        GoToken::Word(word) if word == "true" || word == "false" || word.parse::<f64>().is_ok() => {
            Some(word.clone())
        }
        GoToken::Word(word) => Some(cel_string(word)),
    }
}

fn go_path_as_cel(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('.').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (lower.as_slice(), segments.as_slice()) {
        (["steps", _, "phase"], [_, step, _]) => Some(format!("{}.phase", cel_step(step))),
        (["steps", _, "outputs", _], [_, step, _, output]) => {
            Some(format!("{}.outputs{}", cel_step(step), cel_member(output)))
        }
        (["flow", "phase"], _) => Some("flow.phase".to_owned()),
        (["parameters" | "params", _], [_, name]) => {
            Some(format!("parameters{}", cel_member(name)))
        }
        _ => None,
    }
}

fn cel_step(step: &str) -> String {
    format!("steps{}", cel_member(step))
}

/// `.name` when `name` is a CEL identifier, else `["name"]`.
fn cel_member(name: &str) -> String {
    let mut chars = name.chars();
    let is_identifier = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_identifier {
        format!(".{name}")
    } else {
        format!("[{}]", cel_string(name))
    }
}

fn cel_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
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
    fn iterating_steps_sees_every_step() {
        let when = When::parse(r#"steps.exists(name, steps[name].phase == "Failed")"#).unwrap();
        assert!(when.referenced_steps().is_empty());
        assert_eq!(
            evaluate(r#"steps.exists(name, steps[name].phase == "Failed")"#),
            Ok(true)
        );
        assert_eq!(evaluate("size(steps) == 3"), Ok(true));
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
}
