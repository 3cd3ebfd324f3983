//! `{{...}}` references in a step's template and input values: their syntax, in one place for
//! the planner (which substitutes them) and validation (which checks what they name).

/// A reference zen-flow substitutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference<'a> {
    /// `{{inputs.parameters.<name>}}`
    Input(&'a str),
    /// `{{steps.<step>.outputs.<name>}}` (also `.outputs.parameters.<name>`)
    StepOutput {
        /// The step that produced it.
        step: &'a str,
        /// The output parameter.
        name: &'a str,
    },
    /// `{{flow.name}}` (also `workflow.name`)
    FlowName,
    /// `{{flow.namespace}}` (also `workflow.namespace`)
    FlowNamespace,
    /// `{{step.name}}`
    StepName,
    /// `{{step.attempt}}`
    StepAttempt,
}

impl<'a> Reference<'a> {
    /// Reads the text between the braces (trimmed); None when it is not one of ours (it then
    /// stays as written, e.g. a Helm or shell template).
    pub fn parse(reference: &'a str) -> Option<Self> {
        let parts: Vec<&str> = reference.split('.').collect();
        Some(match parts.as_slice() {
            ["inputs", "parameters", name] => Self::Input(name),
            ["steps", step, "outputs", name] | ["steps", step, "outputs", "parameters", name] => {
                Self::StepOutput { step, name }
            }
            ["flow" | "workflow", "name"] => Self::FlowName,
            ["flow" | "workflow", "namespace"] => Self::FlowNamespace,
            ["step", "name"] => Self::StepName,
            ["step", "attempt"] => Self::StepAttempt,
            _ => return None,
        })
    }
}

/// One `{{...}}` in a text: the text before it, the reference (trimmed, between the braces)
/// and the whole `{{...}}` as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Braces<'a> {
    /// The text between the previous braces (or the start) and these.
    pub before: &'a str,
    /// The text between the braces, trimmed.
    pub inner: &'a str,
    /// The braces and what they hold.
    pub whole: &'a str,
}

/// Splits `text` into its `{{...}}` and the text after the last of them.
pub fn split_braces(text: &str) -> (Vec<Braces<'_>>, &str) {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + len + 2;
        found.push(Braces {
            before: &rest[..start],
            inner: rest[start + 2..start + 2 + len].trim(),
            whole: &rest[start..end],
        });
        rest = &rest[end..];
    }
    (found, rest)
}

/// Every string in a JSON value (keys left out), e.g. a template's.
pub fn strings(value: &serde_json::Value) -> Vec<&str> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) => found.push(text.as_str()),
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_references_and_leaves_others() {
        assert_eq!(
            Reference::parse("steps.a.outputs.parameters.n"),
            Some(Reference::StepOutput {
                step: "a",
                name: "n"
            })
        );
        assert_eq!(
            Reference::parse("inputs.parameters.x"),
            Some(Reference::Input("x"))
        );
        assert_eq!(Reference::parse(".Values.x"), None);
        let (braces, rest) = split_braces("a {{ step.name }}b{{x}} c {{ open");
        assert_eq!(braces.len(), 2);
        assert_eq!((braces[0].before, braces[0].inner), ("a ", "step.name"));
        assert_eq!((braces[1].before, braces[1].whole), ("b", "{{x}}"));
        assert_eq!(rest, " c {{ open");
    }
}
