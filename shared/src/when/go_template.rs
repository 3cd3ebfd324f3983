//! The Go-template hint: the CEL that means the same as a simple condition of the original
//! zen-flow, so its error can say what to write instead.

/// The CEL equivalent of a simple Go-template condition: `eq A B`, `ne A B`, `A == B`,
/// `A != B`, with `.Steps.<step>.Phase`, `.Steps.<step>.Outputs.<param>`, `.Flow.Phase` or
/// `.Parameters.<name>` in any capitalisation; None for anything else.
pub(super) fn translate_go_template(source: &str) -> Option<String> {
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
