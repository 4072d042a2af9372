//! Hints for the mistakes policy authors make most: a misspelled attribute,
//! action or entity type (with the names the schema does have when Cedar's
//! guess is far off), a literal of the wrong type, a missing `;`.

use std::collections::BTreeSet;

use cedar_policy::{Schema, SchemaFragment, ValidationError};
use serde_json::Value;

use super::{Problem, tidy};
use crate::source::SourceFile;

/// What the schema declares, for hints.
pub(crate) struct Hints {
    /// The schema as Cedar's JSON form, to look attributes up in.
    json: Option<Value>,
    actions: Vec<String>,
    scopes: Vec<String>,
    entity_types: Vec<String>,
}

impl Hints {
    /// Reads what hints need from `schema`, parsed from `schema_text`.
    pub(crate) fn new(schema: &Schema, schema_text: &str) -> Self {
        let json = SchemaFragment::from_cedarschema_str(schema_text)
            .ok()
            .and_then(|(fragment, _)| fragment.to_json_value().ok());
        let scopes: BTreeSet<String> = schema.action_groups().map(ToString::to_string).collect();
        let actions: BTreeSet<String> = schema
            .actions()
            .map(ToString::to_string)
            .filter(|a| !scopes.contains(a))
            .collect();
        let entity_types: BTreeSet<String> =
            schema.entity_types().map(ToString::to_string).collect();
        Hints {
            json,
            actions: actions.into_iter().collect(),
            scopes: scopes.into_iter().collect(),
            entity_types: entity_types.into_iter().collect(),
        }
    }

    /// A validation error in `file`, with the best hint there is.
    pub(crate) fn validation_problem(&self, file: &SourceFile, e: &ValidationError) -> Problem {
        let mut problem = Problem::from_diagnostic(file, e);
        match e {
            ValidationError::UnsafeAttributeAccess(_) => {
                narrow_to_attribute(&mut problem);
                if let Some(hint) = self.attribute_hint(&problem) {
                    problem.hint = Some(hint);
                }
            }
            ValidationError::UnsafeOptionalAttributeAccess(_) => narrow_to_attribute(&mut problem),
            ValidationError::UnrecognizedActionId(_) => {
                let list = format!(
                    "the schema's actions are {}; its scopes are {}",
                    join(&self.actions),
                    join(&self.scopes)
                );
                replace_far_guess(&mut problem, "unrecognized action `", list);
            }
            ValidationError::UnrecognizedEntityType(_) => {
                let list = format!(
                    "the schema's entity types are {}",
                    join_backticked(&self.entity_types)
                );
                replace_far_guess(&mut problem, "unrecognized entity type `", list);
            }
            ValidationError::IncompatibleTypes(_) => {
                // Cedar names the policy in the help; it belongs in the message.
                if let Some(hint) = problem.hint.take() {
                    match hint
                        .strip_prefix("for policy `")
                        .and_then(|h| h.split_once("`, "))
                    {
                        Some((id, rest)) => {
                            problem.message = format!("for policy `{id}`, {}", problem.message);
                            problem.hint = Some(rest.to_string());
                        }
                        None => problem.hint = Some(hint),
                    }
                }
                let hint = literal_hint(&problem);
                add_hint(&mut problem, hint);
            }
            ValidationError::UnexpectedType(_) => {
                let hint = literal_hint(&problem);
                add_hint(&mut problem, hint);
            }
            _ => {}
        }
        problem
    }

    /// When Cedar's "did you mean" is far from what was written, the
    /// attributes that do exist there.
    fn attribute_hint(&self, problem: &Problem) -> Option<String> {
        let (written, place) = problem
            .message
            .split_once("attribute `")?
            .1
            .split_once('`')?;
        let mut path: Vec<&str> = written.split('.').collect();
        let missing = path.pop()?;
        if guess(problem.hint.as_deref()).is_some_and(|g| close(missing, g)) {
            return None;
        }
        let json = self.json.as_ref()?.get("")?;
        let (mut ty, mut shown) = if let Some(action) = place
            .strip_prefix(" in context for Action::\"")
            .and_then(|a| a.split_once('"'))
            .map(|(a, _)| a)
        {
            let context = json
                .get("actions")?
                .get(action)?
                .get("appliesTo")?
                .get("context")?;
            let shown = if path.first() == Some(&"arguments") {
                format!("in `{action}`, `context")
            } else {
                "`context".to_string()
            };
            (context, shown)
        } else {
            let entity = place.strip_prefix(" on entity type `")?.split_once('`')?.0;
            let shape = json.get("entityTypes")?.get(entity)?;
            let empty = shape.get("shape").is_none();
            if empty && path.is_empty() {
                return Some(format!("`{entity}` has no attributes"));
            }
            (shape.get("shape")?, format!("`{entity}"))
        };
        for step in &path {
            ty = record_attributes(json, ty)?.get(*step)?;
            shown = format!("{shown}.{step}");
        }
        let names: Vec<String> = record_attributes(json, ty)?.keys().cloned().collect();
        Some(if names.is_empty() {
            format!("{shown}` has no attributes")
        } else {
            format!("{shown}` has {}", join_backticked(&names))
        })
    }
}

/// Cedar's span for an attribute access can cover the whole expression
/// around it (`context.sesion.scopes.contains("a")`); underline only up to
/// the attribute named in the message (`context.sesion`).
fn narrow_to_attribute(problem: &mut Problem) {
    let Some(last) = problem
        .message
        .split_once("attribute `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .and_then(|(path, _)| path.rsplit('.').next())
        .map(|last| format!(".{last}"))
    else {
        return;
    };
    let Some(text) = problem.underlined() else {
        return;
    };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let end = text
        .match_indices(&last)
        .map(|(i, m)| i + m.len())
        .find(|&end| {
            !text
                .get(end..)
                .and_then(|t| t.chars().next())
                .is_some_and(is_ident)
        });
    if let Some(width) = end
        .and_then(|end| text.get(..end))
        .map(|t| t.chars().count())
    {
        problem.width = width;
    }
}

/// The attributes of a record type, following common-type names.
fn record_attributes<'a>(
    json: &'a Value,
    ty: &'a Value,
) -> Option<&'a serde_json::Map<String, Value>> {
    let mut ty = ty;
    for _ in 0..16 {
        match ty.get("type")?.as_str()? {
            "Record" => return ty.get("attributes")?.as_object(),
            "EntityOrCommon" | "CommonType" => {
                let name = ty.get("name")?.as_str()?;
                ty = json.get("commonTypes")?.get(name)?;
            }
            _ => return None,
        }
    }
    None
}

/// Cedar's `did you mean `x`?` guess, if the hint is one.
fn guess(hint: Option<&str>) -> Option<&str> {
    hint?
        .strip_prefix("did you mean `")?
        .split_once('`')
        .map(|(g, _)| g)
}

/// Whether `guess` is plausibly what `written` meant: a few typos apart.
fn close(written: &str, guess: &str) -> bool {
    distance(written, guess) <= (written.chars().count() / 3).max(1)
}

/// Edit distance counting a swap of neighbours as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let value = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a.get(i - 1) != b.get(j - 1));
                let mut v = (d.get(at(i - 1, j)).copied().unwrap_or(0) + 1)
                    .min(d.get(at(i, j - 1)).copied().unwrap_or(0) + 1)
                    .min(d.get(at(i - 1, j - 1)).copied().unwrap_or(0) + cost);
                if i > 1 && j > 1 && a.get(i - 1) == b.get(j - 2) && a.get(i - 2) == b.get(j - 1) {
                    v = v.min(d.get(at(i - 2, j - 2)).copied().unwrap_or(0) + 1);
                }
                v
            };
            if let Some(cell) = d.get_mut(at(i, j)) {
                *cell = value;
            }
        }
    }
    d.last().copied().unwrap_or(0)
}

/// Replaces Cedar's "did you mean" with `list` when the guess is far from
/// the name in the message (after `marker`), or when there is none.
fn replace_far_guess(problem: &mut Problem, marker: &str, list: String) {
    let Some(written) = problem
        .message
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(w, _)| w.to_string())
    else {
        return;
    };
    let keep = guess(problem.hint.as_deref()).is_some_and(|g| close(&written, g));
    if !keep {
        problem.hint = Some(list);
    }
}

fn add_hint(problem: &mut Problem, hint: Option<String>) {
    if let Some(hint) = hint {
        problem.hint = Some(match problem.hint.take() {
            Some(first) => format!("{first}\n{hint}"),
            None => hint,
        });
    }
}

/// For a type error at a string literal: what the literal should have been.
fn literal_hint(problem: &Problem) -> Option<String> {
    let text = problem.underlined()?;
    let literal = string_literal(text)?;
    let message = &problem.message;
    let wants = |ty: &str| {
        message.contains(&format!("expected {ty} "))
            || message.contains(&format!("the types {ty} and String"))
            || message.contains(&format!("the types String and {ty} "))
    };
    if wants("Long") && literal.parse::<i64>().is_ok() {
        return Some(format!(
            "`\"{literal}\"` is a String; write `{literal}` for a Long"
        ));
    }
    if wants("datetime") {
        return Some(format!(
            "`\"{literal}\"` is a String; write `datetime(\"{literal}\")` for a datetime"
        ));
    }
    // `context.user == "alice"`: an entity compared with its id.
    let types = message
        .split_once("the types ")?
        .1
        .split_once(" are not compatible")?
        .0;
    let (a, b) = types.split_once(" and ")?;
    let entity = [a, b]
        .into_iter()
        .find(|t| t.chars().next().is_some_and(char::is_uppercase) && !is_primitive(t))?;
    ([a, b].contains(&"String")).then(|| {
        format!(
            "`\"{literal}\"` is a String; write `{entity}::\"{literal}\"` for the {entity} entity"
        )
    })
}

fn is_primitive(ty: &str) -> bool {
    matches!(ty, "String" | "Long" | "Bool" | "Boolean")
        || ty.starts_with("Set<")
        || ty.starts_with('{')
}

/// The content of the first string literal in `text`, if it has no escapes.
fn string_literal(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let rest = text.get(start..)?;
    let end = rest.find('"')?;
    let literal = rest.get(..end)?;
    (!literal.contains('\\')).then_some(literal)
}

/// A syntax error in `file`, with a hint for a missing `;`, else the
/// tokens Cedar expected when they are few.
pub(crate) fn parse_problem(file: &SourceFile, diag: &dyn miette::Diagnostic) -> Problem {
    let mut problem = Problem::from_diagnostic(file, diag);
    let label = diag.labels().and_then(|mut labels| labels.next());
    let offset = label.as_ref().map_or(file.text().len(), |l| l.offset());
    if let Some(line) = missing_semicolon(file, &problem.message, offset) {
        problem.hint = Some(format!(
            "a policy ends with `;`: add one at the end of line {line}"
        ));
        return problem;
    }
    if problem.hint.is_none() {
        let expected = label.as_ref().and_then(|l| l.label()).map(tidy);
        problem.hint = expected.filter(|e| e.len() <= 60);
    }
    problem
}

/// The line where a policy ends without `;`, when that is why the error at
/// `offset` happened: the next policy starts there (`@`, `permit`,
/// `forbid`, or Cedar stumbling on the `(` after them) or the file ends,
/// right after a policy's closing `)` or `}`.
fn missing_semicolon(file: &SourceFile, message: &str, offset: usize) -> Option<usize> {
    let text = file.text();
    let starts_policy = ["@", "permit", "forbid"]
        .iter()
        .any(|t| message.starts_with(&format!("unexpected token `{t}`")));
    let next_policy = if starts_policy || message.starts_with("unexpected end of input") {
        offset
    } else if message.starts_with("unexpected token") {
        let before = text.get(..offset)?.trim_end();
        let word = ["permit", "forbid"]
            .into_iter()
            .find(|w| before.ends_with(w))?;
        before.len() - word.len()
    } else {
        return None;
    };
    let last = file.last_significant_before(next_policy)?;
    let closes = text
        .get(last..)
        .is_some_and(|t| t.starts_with(')') || t.starts_with('}'));
    closes.then(|| file.pos(last).line)
}

/// Cedar reports a mistake in a policy once for each action the policy
/// applies to; one problem naming every such action reads better.
pub(crate) fn merge_per_action(problems: Vec<Problem>) -> Vec<Problem> {
    const MARKER: &str = " in context for Action::\"";
    let mut out: Vec<(Problem, Vec<String>)> = Vec::new();
    for problem in problems {
        let split = problem.message.split_once(MARKER).and_then(|(head, rest)| {
            rest.split_once('"')
                .map(|(action, tail)| (head.to_string(), action.to_string(), tail.to_string()))
        });
        let Some((head, action, tail)) = split else {
            out.push((problem, Vec::new()));
            continue;
        };
        let key = format!("{head}{MARKER}\u{0}{tail}");
        let found = out.iter_mut().find(|(p, actions)| {
            !actions.is_empty()
                && p.message == key
                && p.pos == problem.pos
                && p.width == problem.width
                && p.file == problem.file
        });
        match found {
            Some((p, actions)) => {
                if !actions.contains(&action) {
                    actions.push(action);
                }
                if let Some(hint) = &problem.hint {
                    let known = p
                        .hint
                        .as_deref()
                        .is_some_and(|h| h.lines().any(|l| l == hint));
                    if !known {
                        add_hint(p, Some(hint.clone()));
                    }
                }
            }
            None => {
                let mut p = problem;
                p.message = key;
                out.push((p, vec![action]));
            }
        }
    }
    out.into_iter()
        .map(|(mut p, mut actions)| {
            if !actions.is_empty() {
                actions.sort();
                let named: Vec<String> =
                    actions.iter().map(|a| format!("Action::\"{a}\"")).collect();
                let names = join_plain(&named);
                p.message = p.message.replace(
                    &format!("{MARKER}\u{0}"),
                    &format!(" in context for {names}"),
                );
                if let Some(hint) = &p.hint {
                    let mut lines: Vec<&str> = hint.lines().collect();
                    lines.sort();
                    lines.dedup();
                    p.hint = Some(lines.join("\n"));
                }
            }
            p
        })
        .collect()
}

fn join(names: &[String]) -> String {
    join_plain(names)
}

fn join_backticked(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    join_plain(&names)
}

/// `a`, `a and b`, `a, b and c`.
fn join_plain(names: &[String]) -> String {
    match names {
        [] => "none".to_string(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_guesses_are_a_few_typos_away() {
        assert!(close("sesion", "session"));
        assert!(close("titel", "title"));
        assert!(close("Documnt", "Document"));
        assert!(!close("foo", "now"));
        assert!(!close("Foo", "Tool"));
        assert!(!close("frobnicate", "email:send"));
    }

    #[test]
    fn problems_repeated_per_action_are_merged() {
        let file = SourceFile::new("p.cedar", "when { context.x };\n");
        let one = |action: &str| {
            Problem::spanning(
                &file,
                7,
                9,
                format!("attribute `x` in context for Action::\"{action}\" not found"),
            )
            .with_hint(Some("did you mean `now`?".into()))
        };
        let merged = merge_per_action(vec![one("b"), one("a"), one("c")]);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged[0].message,
            "attribute `x` in context for Action::\"a\", Action::\"b\" and Action::\"c\" not found"
        );
        assert_eq!(merged[0].hint.as_deref(), Some("did you mean `now`?"));
    }

    #[test]
    fn string_literals_are_found_in_spans() {
        assert_eq!(string_literal("\"2\""), Some("2"));
        assert_eq!(string_literal("context.user == \"alice\""), Some("alice"));
        assert_eq!(string_literal("x"), None);
    }
}
