//! Tool arguments arrive as JSON; Cedar holds a narrower set of values. Every
//! value either converts exactly or is refused with the path to it, never
//! dropped or approximated.

use cedar_policy::RestrictedExpression;
use cedar_policy_core::ast::{RestrictedExpr, Value as CedarValue};
use ref_cast::RefCast;
use serde_json::Value;

/// A JSON value that Cedar cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {what}")]
pub struct ArgumentError {
    /// Where in the arguments, e.g. `arguments.recipients[2]`.
    pub path: String,
    /// What is wrong with the value.
    pub what: String,
}

/// Converts `value` (found at `path`) to a Cedar value.
///
/// Strings, booleans and integers map to themselves, objects to records and
/// arrays to sets (Cedar sets are unordered and hold each value once).
/// `null` and fractional or out-of-range numbers have no Cedar equivalent and
/// are errors.
pub fn to_cedar(value: &Value, path: &str) -> Result<RestrictedExpression, ArgumentError> {
    let value = RestrictedExpr::from(to_value(value, path)?);
    Ok(RestrictedExpression::ref_cast(&value).clone())
}

/// [`to_cedar`] as an evaluated Cedar value, for the guard's call path,
/// which adds it to a prepared context without evaluating anything again.
pub fn to_value(value: &Value, path: &str) -> Result<CedarValue, ArgumentError> {
    let err = |what: &str| ArgumentError {
        path: path.to_string(),
        what: what.to_string(),
    };
    Ok(match value {
        Value::Null => return Err(err("null has no cedar equivalent; leave the field out")),
        Value::Bool(b) => CedarValue::from(*b),
        Value::String(s) => CedarValue::from(s.as_str()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CedarValue::from(i),
            None if n.is_u64() => return Err(err("integer is larger than cedar's 64-bit long")),
            None => {
                return Err(err(
                    "fractional numbers have no cedar equivalent; send an integer or a string",
                ));
            }
        },
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(to_value(item, &format!("{path}[{i}]"))?);
            }
            CedarValue::set(out, None)
        }
        Value::Object(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            for (k, v) in fields {
                out.push((k.as_str(), to_value(v, &format!("{path}.{k}"))?));
            }
            CedarValue::record(out, None)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_convert() {
        let v =
            json!({"to": ["a@x", "b@x"], "n": 3, "flag": true, "meta": {"k": "v", "deep": [[-7]]}});
        let converted = to_value(&v, "arguments").unwrap();
        let expected = CedarValue::record(
            [
                (
                    "to",
                    CedarValue::set([CedarValue::from("a@x"), CedarValue::from("b@x")], None),
                ),
                ("n", CedarValue::from(3_i64)),
                ("flag", CedarValue::from(true)),
                (
                    "meta",
                    CedarValue::record(
                        [
                            ("k", CedarValue::from("v")),
                            (
                                "deep",
                                CedarValue::set(
                                    [CedarValue::set([CedarValue::from(-7_i64)], None)],
                                    None,
                                ),
                            ),
                        ],
                        None,
                    ),
                ),
            ],
            None,
        );
        assert_eq!(converted, expected);
    }

    #[test]
    fn null_is_refused_with_its_path() {
        let e = to_cedar(&json!({"a": [1, null]}), "arguments").unwrap_err();
        assert_eq!(e.path, "arguments.a[1]");
        assert!(e.what.contains("null"));
    }

    #[test]
    fn fractions_and_huge_integers_are_refused() {
        assert!(
            to_cedar(&json!(1.5), "x")
                .unwrap_err()
                .what
                .contains("fractional")
        );
        assert!(
            to_cedar(&json!(u64::MAX), "x")
                .unwrap_err()
                .what
                .contains("larger")
        );
    }
}
