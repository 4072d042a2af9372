//! Redaction: the arguments a tool declares sensitive are written to the
//! audit log, and shown to reviewers, only as salted SHA-256 commitments.
//!
//! # Declaring sensitive paths
//!
//! [`ToolSpec::sensitive`](super::ToolSpec::sensitive) lists paths into the
//! tool's arguments, checked when the tool is registered:
//!
//! | path                  | redacts                                          |
//! |-----------------------|--------------------------------------------------|
//! | `body`                | the field `body`                                 |
//! | `meta.token`          | the field `token` of the object `meta`           |
//! | `recipients[]`        | every item of the array `recipients`             |
//! | `attachments[].content` | the field `content` of every item of `attachments` |
//!
//! A field name is any text without `.`, `[`, `]` or white space; `[]` means
//! every item of an array (a single index cannot be declared). A path inside
//! another sensitive path is covered by the outer one, and the commitment is
//! always over the value as the agent sent it.
//!
//! Where the arguments do not have the shape a path expects (an array where
//! a field is named, a string where `[]` is declared, arguments that are not
//! an object at all) the whole value at that point is committed: it may hold
//! the secret in another form. A missing field, or `null`, is left as it is.
//!
//! # The commitment
//!
//! Each sensitive value, whatever JSON it is, is replaced by
//!
//! ```text
//! {"redacted":"sha256:<64 hex>","key_id":"<16 hex>"}
//! ```
//!
//! where, for the call `call_id` and the value's concrete path `path` (rooted
//! at the record's `action`, with indexes: `arguments.attachments[1].content`):
//!
//! ```text
//! salt       = HMAC-SHA256(salt_key, "mandate-redaction/1" 0x00 u64be(len call_id) call_id u64be(len path) path)
//! commitment = SHA-256(salt || canonical_json(value))
//! ```
//!
//! and `key_id` names the salt key ([`RedactionKey::key_id`]). The salt key is
//! 32 random bytes held by the operator. Without it the salt is unknown, so a
//! commitment cannot be checked against guesses; with it, whoever holds the
//! original value can show that it is what was sent ([`prove`]), and nobody
//! can open a commitment to another value without a SHA-256 second preimage.
//! Salts differ per call and per path, so equal secrets in two calls give
//! unrelated commitments and records cannot be linked by them.
//!
//! A guard built without a salt key makes a one-time random key that is
//! never written anywhere: values are still never in clear, but nothing can
//! be proven later.
//!
//! [`canonical_json`] writes a value with object keys sorted by their UTF-8
//! bytes and no white space, so the commitment does not depend on the key
//! order the agent used.

mod key;
mod prove;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use key::RedactionKey;
pub(crate) use key::hmac_sha256;
pub use prove::{Proof, ProveError, prove};

/// Key of the commitment object that replaces a sensitive value.
pub const REDACTED_FIELD: &str = "redacted";
/// Key of the salt key's id in a commitment object.
pub const KEY_ID_FIELD: &str = "key_id";
/// Prefix of the commitment text, before the hex digest.
pub const COMMITMENT_PREFIX: &str = "sha256:";
/// Root of every concrete path: the `arguments` field of a record's `action`.
pub const ARGUMENTS_ROOT: &str = "arguments";
/// Longest declared path, in steps (fields and `[]`); keeps redaction shallow.
pub const MAX_PATH_STEPS: usize = 32;

/// Whether `value` is what redaction left in place of a sensitive value: an
/// object with a [`REDACTED_FIELD`].
pub(crate) fn is_commitment(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key(REDACTED_FIELD))
}

/// The concrete paths of the commitments under `value`, which sits at `path`
/// (`arguments.attachments[1].content`), at most `limit` of them.
pub(crate) fn commitment_paths(value: &Value, path: &str, limit: usize) -> Vec<String> {
    fn walk(value: &Value, path: &mut String, found: &mut Vec<String>, limit: usize) {
        if found.len() >= limit {
            return;
        }
        if is_commitment(value) {
            found.push(path.clone());
            return;
        }
        let len = path.len();
        match value {
            Value::Object(map) => {
                for (name, v) in map {
                    path.push('.');
                    path.push_str(name);
                    walk(v, path, found, limit);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    walk(v, path, found, limit);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, &mut path.to_string(), &mut found, limit);
    found
}

/// A declared sensitive path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sensitive path `{path}` is malformed: {reason}")]
pub struct SensitivePathError {
    /// The path as declared.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One node of the compiled paths: what is sensitive at and below a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// The value here is sensitive as a whole.
    whole: bool,
    /// Fields of an object, by name.
    fields: BTreeMap<String, Node>,
    /// Every item of an array.
    items: Option<Box<Node>>,
}

/// One step of a declared path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Items,
}

/// A tool's sensitive paths, parsed and checked once at registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensitivePaths {
    root: Node,
    declared: Vec<String>,
}

impl SensitivePaths {
    /// Parses the paths a tool declares (see the module docs for the syntax).
    ///
    /// ```
    /// use mandate::guard::SensitivePaths;
    ///
    /// let paths = SensitivePaths::parse(&["body".into(), "attachments[].content".into()])?;
    /// assert!(!paths.is_empty());
    /// assert!(SensitivePaths::parse(&["attachments[0]".into()]).is_err());
    /// # Ok::<(), mandate::guard::SensitivePathError>(())
    /// ```
    pub fn parse(paths: &[String]) -> Result<Self, SensitivePathError> {
        let mut root = Node::default();
        for path in paths {
            let steps = parse_declared(path).map_err(|reason| SensitivePathError {
                path: path.clone(),
                reason,
            })?;
            let mut node = &mut root;
            for step in steps {
                node = match step {
                    Step::Field(name) => node.fields.entry(name).or_default(),
                    Step::Items => node.items.get_or_insert_with(Box::default),
                };
            }
            node.whole = true;
        }
        Ok(SensitivePaths {
            root,
            declared: paths.to_vec(),
        })
    }

    /// True when nothing is sensitive.
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// The paths as declared.
    pub fn declared(&self) -> &[String] {
        &self.declared
    }

    /// `arguments` with every sensitive value replaced by its commitment for
    /// the call `call_id` under `key`.
    pub fn redact(&self, arguments: &Value, key: &RedactionKey, call_id: &str) -> Value {
        if self.is_empty() {
            return arguments.clone();
        }
        let mut path = String::from(ARGUMENTS_ROOT);
        walk(&self.root, arguments, &mut path, key, call_id)
    }
}

fn parse_declared(path: &str) -> Result<Vec<Step>, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    let mut steps = Vec::new();
    for segment in path.split('.') {
        let name_end = segment.find('[').unwrap_or(segment.len());
        let (name, mut rest) = segment.split_at(name_end);
        if name.is_empty() {
            return Err("a field name is missing; write `field`, `a.b` or `items[].field`".into());
        }
        if let Some(c) = name.chars().find(|c| *c == ']' || c.is_whitespace()) {
            return Err(format!("field name `{name}` contains {c:?}"));
        }
        steps.push(Step::Field(name.to_string()));
        while !rest.is_empty() {
            match rest.strip_prefix("[]") {
                Some(after) => {
                    steps.push(Step::Items);
                    rest = after;
                }
                None => {
                    return Err(format!(
                        "`{rest}` after `{name}`: only `[]` (every item of an array) may follow a field name; a single index cannot be declared"
                    ));
                }
            }
        }
    }
    if steps.len() > MAX_PATH_STEPS {
        return Err(format!(
            "it has {} steps, more than {MAX_PATH_STEPS}",
            steps.len()
        ));
    }
    Ok(steps)
}

/// Redacts `value`, found at the concrete `path`, as `node` says. `path` is
/// restored before returning.
fn walk(node: &Node, value: &Value, path: &mut String, key: &RedactionKey, call_id: &str) -> Value {
    if node.whole {
        return commitment_object(key, call_id, path, value);
    }
    let wants_fields = !node.fields.is_empty();
    match value {
        Value::Null => Value::Null,
        Value::Object(map) if wants_fields => {
            let mut out = Map::with_capacity(map.len());
            for (name, field) in map {
                let redacted = match node.fields.get(name) {
                    Some(child) => {
                        let len = path.len();
                        path.push('.');
                        path.push_str(name);
                        let v = walk(child, field, path, key, call_id);
                        path.truncate(len);
                        v
                    }
                    None => field.clone(),
                };
                out.insert(name.clone(), redacted);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let Some(child) = node.items.as_deref() else {
                return commitment_object(key, call_id, path, value);
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(walk(child, item, path, key, call_id));
                path.truncate(len);
            }
            Value::Array(out)
        }
        // Not the shape the path expects: the secret may be anywhere in it.
        other => commitment_object(key, call_id, path, other),
    }
}

fn commitment_object(key: &RedactionKey, call_id: &str, path: &str, value: &Value) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert(
        REDACTED_FIELD.into(),
        Value::String(commitment(key, call_id, path, value)),
    );
    map.insert(KEY_ID_FIELD.into(), Value::String(key.key_id().to_string()));
    Value::Object(map)
}

/// The commitment text `sha256:<64 hex>` to `value`, found at the concrete
/// `path` (e.g. `arguments.attachments[1].content`) of the call `call_id`.
pub fn commitment(key: &RedactionKey, call_id: &str, path: &str, value: &Value) -> String {
    let salt = key.salt(call_id, path);
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(canonical_json(value));
    format!("{COMMITMENT_PREFIX}{}", hex::encode(hasher.finalize()))
}

/// `value` as compact JSON with object keys sorted by their UTF-8 bytes: the
/// bytes a commitment covers. Strings escape `"`, `\` and control characters
/// only; integers are written in decimal, other numbers in the shortest
/// decimal form that reads back as the same double.
///
/// ```
/// use mandate::guard::canonical_json;
///
/// let v = serde_json::json!({"b": [1, 2.5, null], "a": "x\n"});
/// assert_eq!(canonical_json(&v), br#"{"a":"x\n","b":[1,2.5,null]}"#);
/// ```
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            let text = if let Some(u) = n.as_u64() {
                u.to_string()
            } else if let Some(i) = n.as_i64() {
                i.to_string()
            } else {
                n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string())
            };
            out.extend_from_slice(text.as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(p: &[&str]) -> SensitivePaths {
        SensitivePaths::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn key() -> RedactionKey {
        RedactionKey::from_bytes([7; 32])
    }

    /// The commitment object for `value` at `path` of call `c:1`.
    fn committed(path: &str, value: Value) -> Value {
        json!({"redacted": commitment(&key(), "c:1", path, &value), "key_id": key().key_id()})
    }

    #[test]
    fn a_top_level_field_is_replaced_by_its_commitment() {
        let args = json!({"to": "bob@example.com", "body": "secret"});
        let out = paths(&["body"]).redact(&args, &key(), "c:1");
        assert_eq!(
            out,
            json!({"to": "bob@example.com", "body": committed("arguments.body", json!("secret"))})
        );
        let text = out.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(
            out["body"]["redacted"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn nested_fields_and_every_array_item_are_redacted_with_their_own_paths() {
        let args = json!({
            "meta": {"token": {"v": 1}, "user": "alice"},
            "attachments": [
                {"name": "a.txt", "content": "first secret"},
                {"name": "b.txt", "content": ["second", "secret"]},
            ],
            "recipients": ["x@example.com", "y@example.com"],
        });
        let out = paths(&["meta.token", "attachments[].content", "recipients[]"]).redact(
            &args,
            &key(),
            "c:1",
        );
        assert_eq!(
            out,
            json!({
                "meta": {"token": committed("arguments.meta.token", json!({"v": 1})), "user": "alice"},
                "attachments": [
                    {"name": "a.txt", "content": committed("arguments.attachments[0].content", json!("first secret"))},
                    {"name": "b.txt", "content": committed("arguments.attachments[1].content", json!(["second", "secret"]))},
                ],
                "recipients": [
                    committed("arguments.recipients[0]", json!("x@example.com")),
                    committed("arguments.recipients[1]", json!("y@example.com")),
                ],
            })
        );
        let text = out.to_string();
        for secret in ["secret", "x@example.com", "\"v\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn nested_arrays_and_an_outer_path_covering_an_inner_one() {
        let args = json!({"grid": [["a", "b"], ["c"]], "meta": {"token": "t", "x": 1}});
        let out = paths(&["grid[][]", "meta.token", "meta"]).redact(&args, &key(), "c:1");
        assert_eq!(
            out["grid"][1][0],
            committed("arguments.grid[1][0]", json!("c"))
        );
        // `meta` as a whole wins, committed over the value as sent.
        assert_eq!(
            out["meta"],
            committed("arguments.meta", json!({"token": "t", "x": 1}))
        );
    }

    #[test]
    fn a_value_of_another_shape_than_the_path_expects_is_committed_whole() {
        let p = paths(&["attachments[].content", "meta.token"]);
        let args = json!({"attachments": "content: secret", "meta": ["token", "secret"]});
        let out = p.redact(&args, &key(), "c:1");
        assert_eq!(
            out,
            json!({
                "attachments": committed("arguments.attachments", json!("content: secret")),
                "meta": committed("arguments.meta", json!(["token", "secret"])),
            })
        );
        // Arguments that are not an object at all.
        let out = p.redact(&json!(["secret"]), &key(), "c:1");
        assert_eq!(out, committed("arguments", json!(["secret"])));
        // Missing fields and nulls hold nothing.
        let args = json!({"meta": null, "other": "kept"});
        assert_eq!(p.redact(&args, &key(), "c:1"), args);
    }

    #[test]
    fn the_same_value_gives_different_commitments_per_call_path_and_key() {
        let v = json!("same body");
        let a = commitment(&key(), "s:1", "arguments.body", &v);
        assert_ne!(a, commitment(&key(), "s:2", "arguments.body", &v));
        assert_ne!(a, commitment(&key(), "s:1", "arguments.note", &v));
        assert_ne!(
            a,
            commitment(
                &RedactionKey::from_bytes([8; 32]),
                "s:1",
                "arguments.body",
                &v
            )
        );
        assert_eq!(a, commitment(&key(), "s:1", "arguments.body", &v));
        // Field boundaries are unambiguous: moving bytes between call id and
        // path changes the salt.
        assert_ne!(
            commitment(&key(), "s:1a", "rguments.body", &v),
            commitment(&key(), "s:1", "arguments.body", &v)
        );
    }

    #[test]
    fn the_commitment_ignores_key_order_but_not_values() {
        let a = json!({"x": 1, "y": [true, null]});
        let b: Value = serde_json::from_str(r#"{"y":[true,null],"x":1}"#).unwrap();
        assert_eq!(
            commitment(&key(), "c", "arguments.m", &a),
            commitment(&key(), "c", "arguments.m", &b)
        );
        assert_ne!(
            commitment(&key(), "c", "arguments.m", &a),
            commitment(
                &key(),
                "c",
                "arguments.m",
                &json!({"x": 2, "y": [true, null]})
            )
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_matches_serde_json_on_sorted_input() {
        let v: Value = serde_json::from_str(
            r#"{"é":1,"b":{"z":null,"a":"q\"\\\u0001\t/é"},"a":[-3,1.5e3,0.1]}"#,
        )
        .unwrap();
        let canonical = String::from_utf8(canonical_json(&v)).unwrap();
        assert_eq!(
            canonical,
            r#"{"a":[-3,1500,0.1],"b":{"a":"q\"\\\u0001\t/é","z":null},"é":1}"#
        );
        let sorted = json!({"a": "q\"\\\u{1}\t/é\u{8}\u{c}\r\n", "b": [1, -2, true]});
        assert_eq!(
            canonical_json(&sorted),
            serde_json::to_vec(&sorted).unwrap()
        );
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            (".body", "missing"),
            ("meta..token", "missing"),
            ("meta.", "missing"),
            ("[]", "missing"),
            ("attachments[0].content", "single index"),
            ("attachments[", "only `[]`"),
            ("attachments[]x", "only `[]`"),
            ("a b", "contains"),
            ("a]", "contains"),
        ] {
            let err = SensitivePaths::parse(&[bad.to_string()]).unwrap_err();
            assert_eq!(err.path, bad);
            assert!(err.reason.contains(why), "`{bad}`: {}", err.reason);
        }
        let deep = vec!["a"; MAX_PATH_STEPS + 1].join(".");
        assert!(SensitivePaths::parse(&[deep]).is_err());
        assert!(paths(&[]).is_empty());
        assert_eq!(
            paths(&["a[][]", "b-c.d_e"]).declared(),
            ["a[][]", "b-c.d_e"]
        );
    }
}
