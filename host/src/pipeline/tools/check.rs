//! The argument check of a tool whose schema is data (an MCP server's or a
//! program's), not a Rust type: the arguments must be a value of the Cedar
//! type derived from that schema, so that what policies see is exactly what
//! the schema declares and nothing more.

use serde_json::Value;

use super::ArgumentsError;
use crate::pipeline::schema::CedarType;

/// Longest field name quoted back to the agent: the names are the agent's.
const NAME_CHARS: usize = 64;

/// Checks `value` (the whole arguments) against `ty`.
pub(super) fn arguments(value: &Value, ty: &CedarType) -> Result<(), ArgumentsError> {
    check(value, ty, None)
}

fn check(value: &Value, ty: &CedarType, path: Option<&str>) -> Result<(), ArgumentsError> {
    let wrong = |expected: &str| mismatch(path, format!("expected {expected}"));
    match (ty, value) {
        (_, Value::Null) => Err(mismatch(
            path,
            "is null; leave the field out instead".to_string(),
        )),
        (CedarType::String | CedarType::Entity(_) | CedarType::Datetime, Value::String(_)) => {
            Ok(())
        }
        (CedarType::String | CedarType::Entity(_) | CedarType::Datetime, _) => {
            Err(wrong("a string"))
        }
        (CedarType::Bool, Value::Bool(_)) => Ok(()),
        (CedarType::Bool, _) => Err(wrong("true or false")),
        (CedarType::Long, Value::Number(n)) if n.is_i64() => Ok(()),
        (CedarType::Long, Value::Number(n)) if n.is_f64() => Err(mismatch(
            path,
            "is a fractional number, which cedar cannot hold; send an integer".to_string(),
        )),
        (CedarType::Long, _) => Err(wrong("an integer")),
        (CedarType::Set(item), Value::Array(items)) => {
            let base = path.unwrap_or("");
            for (index, item_value) in items.iter().enumerate() {
                check(item_value, item, Some(&format!("{base}[{index}]")))?;
            }
            Ok(())
        }
        (CedarType::Set(_), _) => Err(wrong("an array")),
        (CedarType::Record(attributes), Value::Object(fields)) => {
            for (name, field) in fields {
                let Some(attribute) = attributes.iter().find(|a| &a.name == name) else {
                    let declared: Vec<String> =
                        attributes.iter().map(|a| format!("`{}`", a.name)).collect();
                    let hint = if declared.is_empty() {
                        "it takes no fields".to_string()
                    } else {
                        format!("expected one of {}", declared.join(", "))
                    };
                    return Err(ArgumentsError::Mismatch {
                        field: Some(join(path, &bounded_name(name))),
                        at: None,
                        message: format!("unknown field `{}`, {hint}", bounded_name(name)),
                    });
                };
                check(field, &attribute.ty, Some(&join(path, name)))?;
            }
            if let Some(missing) = attributes
                .iter()
                .find(|a| a.required && !fields.contains_key(&a.name))
            {
                return Err(ArgumentsError::Mismatch {
                    field: Some(join(path, &missing.name)),
                    at: path.map(str::to_string),
                    message: format!("missing field `{}`", missing.name),
                });
            }
            Ok(())
        }
        (CedarType::Record(_), _) => Err(wrong("an object")),
    }
}

/// `message` about the field at `path` (the arguments themselves at none).
fn mismatch(path: Option<&str>, message: String) -> ArgumentsError {
    match path {
        Some(path) => ArgumentsError::Mismatch {
            field: Some(path.to_string()),
            at: Some(path.to_string()),
            message,
        },
        None => ArgumentsError::Mismatch {
            field: None,
            at: None,
            message: format!("the arguments {message}"),
        },
    }
}

fn join(path: Option<&str>, name: &str) -> String {
    match path {
        Some(path) => format!("{path}.{name}"),
        None => name.to_string(),
    }
}

/// A field name as the agent sent it, cut to [`NAME_CHARS`] characters and
/// with control characters escaped: it reaches records and terminals.
fn bounded_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(NAME_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().count() > NAME_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pipeline::schema::Attribute;

    fn record(attributes: &[(&str, CedarType, bool)]) -> CedarType {
        CedarType::Record(
            attributes
                .iter()
                .map(|(name, ty, required)| Attribute {
                    name: (*name).to_string(),
                    ty: ty.clone(),
                    required: *required,
                })
                .collect(),
        )
    }

    fn files() -> CedarType {
        record(&[
            ("path", CedarType::String, true),
            ("head", CedarType::Long, false),
            (
                "edits",
                CedarType::set(record(&[("old", CedarType::String, true)])),
                false,
            ),
        ])
    }

    fn refused(value: Value) -> String {
        arguments(&value, &files()).unwrap_err().to_string()
    }

    #[test]
    fn a_value_of_the_declared_type_passes() {
        arguments(
            &json!({"path": "a", "head": 3, "edits": [{"old": "x"}]}),
            &files(),
        )
        .unwrap();
        arguments(&json!({"path": "a"}), &files()).unwrap();
    }

    #[test]
    fn each_refusal_names_the_field_and_what_is_wrong() {
        assert_eq!(refused(json!({})), "missing field `path`");
        assert_eq!(
            refused(json!({"path": "a", "mode": 1})),
            "unknown field `mode`, expected one of `path`, `head`, `edits`"
        );
        assert_eq!(
            refused(json!({"path": 1})),
            "field `path`: expected a string"
        );
        assert_eq!(
            refused(json!({"path": "a", "head": 1.5})),
            "field `head`: is a fractional number, which cedar cannot hold; send an integer"
        );
        assert_eq!(
            refused(json!({"path": "a", "head": null})),
            "field `head`: is null; leave the field out instead"
        );
        assert_eq!(
            refused(json!({"path": "a", "edits": [{"old": "x"}, {}]})),
            "field `edits[1]`: missing field `old`"
        );
        assert_eq!(refused(json!([1])), "the arguments expected an object");
    }

    #[test]
    fn an_unknown_field_name_is_bounded_and_escaped() {
        let name = format!("\u{1b}[31m{}", "x".repeat(500));
        let text = refused(json!({"path": "a", name: 1}));
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.len() < 300, "{}", text.len());
    }
}
