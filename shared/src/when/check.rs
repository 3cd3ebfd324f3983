//! The static checker: what a `when` expression may read, found without data.

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators,
};

use super::ParseWhenError;
use crate::limits::MAX_OUTPUT_BYTES;

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

/// Walks the compiled expression: rejects unknown variables and fields, collects step names.
#[derive(Default)]
pub(super) struct Checker {
    bound: Vec<String>,
    pub(super) referenced_steps: Vec<String>,
}

impl Checker {
    pub(super) fn visit(&mut self, node: &IdedExpr) -> Result<(), ParseWhenError> {
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
                EntryExpr::MapEntry(entry) => {
                    self.visit(&entry.key)?;
                    self.visit(&entry.value)
                }
                EntryExpr::StructField(field) => self.visit(&field.value),
            }),
            Expr::Struct(structure) => structure.entries.iter().try_for_each(|entry| match &entry
                .expr
            {
                EntryExpr::StructField(field) => self.visit(&field.value),
                EntryExpr::MapEntry(entry) => {
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
            // `steps` used whole (iterated, sized, indexed with a computed name) could read a
            // step that has not ended, or every step of a large flow.
            return Err(ParseWhenError::StepsReadWhole);
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
pub(super) fn never_a_bool(node: &IdedExpr) -> Option<&'static str> {
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

/// The longest condition, in bytes.
pub(super) const MAX_LENGTH: usize = 2048;

/// The deepest nesting of brackets (`(`, `[`, `{`) and `?:` conditionals in the source.
pub(super) const MAX_NESTING: usize = 16;

/// How deeply `source` nests: open brackets at the deepest point, plus every `?` (a chain of
/// conditionals nests too); text in quotes is skipped.
pub(super) fn nesting(source: &str) -> usize {
    let (mut open, mut deepest, mut conditionals) = (0usize, 0usize, 0usize);
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                while let Some(inner) = chars.next() {
                    if inner == '\\' {
                        chars.next();
                    } else if inner == c {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                open += 1;
                deepest = deepest.max(open);
            }
            ')' | ']' | '}' => open = open.saturating_sub(1),
            '?' => conditionals += 1,
            _ => {}
        }
    }
    deepest + conditionals
}

/// The deepest nesting of the compiled expression (macros expanded).
pub(super) const MAX_DEPTH: usize = 32;

/// The largest estimated cost: expression nodes evaluated, a comprehension's body counted once
/// per element it can iterate over.
pub(super) const MAX_COST: u64 = 1_000_000;

/// The most elements a comprehension over data (not a literal list) is assumed to visit:
/// outputs are at most [`MAX_OUTPUT_BYTES`] long, so no map or list read from them is longer.
const MAX_ITERATIONS: u64 = MAX_OUTPUT_BYTES as u64;

/// Rejects an expression nested deeper than [`MAX_DEPTH`] or costlier than [`MAX_COST`], so
/// evaluating it stays cheap whatever the data (CEL 0.15 has no runtime cost limit).
pub(super) fn check_complexity(node: &IdedExpr) -> Result<(), ParseWhenError> {
    let depth = depth(node);
    if depth > MAX_DEPTH {
        return Err(ParseWhenError::TooDeep {
            depth,
            max: MAX_DEPTH,
        });
    }
    let cost = cost(node);
    if cost > MAX_COST {
        return Err(ParseWhenError::TooCostly {
            cost,
            max: MAX_COST,
        });
    }
    Ok(())
}

fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Expr::Select(select) => vec![&select.operand],
        Expr::Call(call) => call
            .target
            .iter()
            .map(AsRef::as_ref)
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(comprehension) => vec![
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(entry_parts).collect(),
        Expr::Struct(structure) => structure.entries.iter().flat_map(entry_parts).collect(),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_parts(entry: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
        EntryExpr::StructField(field) => vec![&field.value],
    }
}

fn depth(node: &IdedExpr) -> usize {
    1 + children(node).into_iter().map(depth).max().unwrap_or(0)
}

fn cost(node: &IdedExpr) -> u64 {
    if let Expr::Comprehension(comprehension) = &node.expr {
        let body = cost(&comprehension.loop_cond).saturating_add(cost(&comprehension.loop_step));
        return 1u64
            .saturating_add(cost(&comprehension.iter_range))
            .saturating_add(cost(&comprehension.accu_init))
            .saturating_add(iterations(&comprehension.iter_range).saturating_mul(body))
            .saturating_add(cost(&comprehension.result));
    }
    children(node)
        .into_iter()
        .map(cost)
        .fold(1, u64::saturating_add)
}

/// The most elements a comprehension over `range` visits.
fn iterations(range: &IdedExpr) -> u64 {
    let literal = match &range.expr {
        Expr::List(list) => list.elements.len(),
        Expr::Map(map) => map.entries.len(),
        _ => return MAX_ITERATIONS,
    };
    u64::try_from(literal).unwrap_or(u64::MAX)
}
