//! `when` expressions: CEL over the flow's step phases, outputs and parameters.
//!
//! An expression is compiled once by [`When::parse`], which also checks what it can without
//! data: only `steps`, `flow` and `parameters` are read, `steps` only through literal step
//! names, a step offers only `phase` and `outputs`, phases compared with literals exist, the
//! result can be a bool, and the expression is short, shallow and cheap (see `check`). (CEL
//! 0.15 has no type checker, so anything else surfaces as an [`EvaluateWhenError`].)
//! [`When::evaluate`] then runs it any number of times against a [`WhenScope`].
//!
//! The variables: `steps` maps each step the expression names to `{phase, outputs}`
//! (`steps.build.phase`, `steps["build-x"].outputs.count`), `flow` is `{phase}` (`"Succeeded"`
//! or `"Failed"` for finally steps, `""` when the scope has no phase), and `parameters` maps
//! the step's own literal input parameters (`inputs.parameters[].value`) to their values.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

mod check;
mod go_template;

use cel::common::types::{CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};

use crate::api::{FlowPhase, StepStatus};
use check::{Checker, check_complexity, never_a_bool};
use go_template::translate_go_template;

/// A compiled `when` condition.
#[derive(Clone, Debug)]
pub struct When {
    source: String,
    condition: Condition,
    referenced_steps: Vec<String>,
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
        "unknown variable `{name}`; a condition can read only steps (steps.<name>.phase, steps.<name>.outputs.<param>), flow (flow.phase) and the step's own literal input parameters (parameters.<name>)"
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
    /// The parser could not run (no thread could be started for it).
    #[error("the condition could not be parsed now ({message}); try again")]
    ParserUnavailable {
        /// Why.
        message: String,
    },
    /// The expression reads `steps` other than through a literal step name.
    #[error(
        "the condition reads `steps` as a whole (iterating, sizing or indexing it with a computed name); name each step it needs literally, e.g. steps.build.phase or steps[\"build-x\"].phase, and list those steps in dependencies"
    )]
    StepsReadWhole,
    /// The expression is longer than the limit.
    #[error(
        "the condition is {length} bytes long, more than {max}; split the logic over steps or shorten it"
    )]
    TooLong {
        /// Its length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The expression nests deeper than the limit.
    #[error(
        "the condition nests {depth} levels deep, more than {max}; flatten it (fewer nested parentheses, brackets, calls, macros and ?: conditionals)"
    )]
    TooDeep {
        /// Its depth: brackets and conditionals in the source, or levels of the compiled
        /// expression (macros expanded).
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// The expression may cost more to evaluate than the limit.
    #[error(
        "the condition may evaluate up to {cost} expressions, more than {max}; avoid nesting all/exists/map/filter over outputs or parameters"
    )]
    TooCostly {
        /// Its estimated cost.
        cost: u64,
        /// The limit.
        max: u64,
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

/// The stack of the thread that parses: CEL's generated parser takes about 130 KiB of stack
/// per nesting level in a debug build, more than a 2 MiB worker thread has for a condition of
/// 16 levels (at most `check::MAX_NESTING` levels get this far).
const PARSER_STACK_BYTES: usize = 16 << 20;

/// Compiles `source` on a thread of its own with a stack large enough for any expression
/// the nesting limit lets through, so no condition can overflow the caller's stack.
fn compile(source: &str) -> Result<Program, ParseWhenError> {
    let parse = || {
        ENVIRONMENT.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            ParseWhenError::Syntax {
                column: first.map_or(0, |error| error.pos.1 + 1),
                message: first
                    .map_or_else(|| errors.to_string(), |error| error.msg.clone())
                    .replace('\n', " "),
            }
        })
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, parse)
            .map_err(|error| ParseWhenError::ParserUnavailable {
                message: error.to_string(),
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(ParseWhenError::ParserUnavailable {
                    message: "the parser stopped unexpectedly".into(),
                })
            })
    })
}

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
            });
        }
        if trimmed.len() > check::MAX_LENGTH {
            return Err(ParseWhenError::TooLong {
                length: trimmed.len(),
                max: check::MAX_LENGTH,
            });
        }
        if trimmed.contains("{{") {
            return Err(match translate_go_template(trimmed) {
                Some(suggestion) => ParseWhenError::GoTemplate { suggestion },
                None => ParseWhenError::GoTemplateUntranslated,
            });
        }
        let nesting = check::nesting(trimmed);
        if nesting > check::MAX_NESTING {
            return Err(ParseWhenError::TooDeep {
                depth: nesting,
                max: check::MAX_NESTING,
            });
        }
        let program = compile(trimmed)?;
        check_complexity(program.expression())?;
        let mut checker = Checker::default();
        checker.visit(program.expression())?;
        if let Some(found) = never_a_bool(program.expression()) {
            return Err(ParseWhenError::NotACondition { found });
        }
        Ok(Self {
            source: trimmed.to_owned(),
            condition: Condition::Cel(Arc::new(program)),
            referenced_steps: checker.referenced_steps,
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

    /// The `steps` variable: only the steps the expression names (a named step that is absent
    /// stays absent, so reading it fails).
    /// Its strings are borrowed from the scope, not copied.
    fn steps_value<'v>(&self, steps: &'v [StepStatus]) -> Box<dyn Val + 'v> {
        let wanted = |status: &&StepStatus| self.referenced_steps.contains(&status.name);
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

#[cfg(test)]
mod tests;
