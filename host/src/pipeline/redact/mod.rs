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
//! {"redacted":"sha256:<64 hex>","key_id":"<16 hex>","nonce":"<32 hex>"}
//! ```
//!
//! where, for the call `call_id`, the value's concrete path `path` (rooted
//! at the record's `action`, with indexes: `arguments.attachments[1].content`)
//! and a nonce of 16 random bytes drawn for this value alone (redaction v2):
//!
//! ```text
//! salt       = HMAC-SHA256(salt_key, "mandate-redaction/2" 0x00 u64be(len nonce) nonce
//!                                    u64be(len call_id) call_id u64be(len path) path)
//! commitment = SHA-256(salt || JCS(value))
//! ```
//!
//! The nonce enters as its 32 hex characters, and JCS is RFC 8785 ([`jcs`]):
//! keys sorted by UTF-16 code units, numbers as ECMAScript writes them, so
//! that the commitment does not depend on the key order or number spelling
//! the agent used, and any JCS library computes the same bytes. `key_id`
//! names the salt key ([`RedactionKey::key_id`]).
//!
//! The salt key is 32 random bytes held by the operator. Without it the salt
//! is unknown, so a commitment cannot be checked against guesses; with it,
//! whoever holds the original value can show that it is what was sent
//! ([`prove`]), and nobody can open a commitment to another value without a
//! SHA-256 second preimage. The nonce makes every salt unique: call ids
//! restart at `<session>:1` in every run, so without it a later run that
//! reuses a session id would give the same commitment to the same value, and
//! records could be linked by their commitments.
//!
//! A commitment without `nonce` is v1, written before the nonce existed:
//! salted over `mandate-redaction/1`, the call id and the path, over
//! [`canonical_json`] ([`commitment`]). [`prove`] still proves it.
//!
//! A guard built without a salt key makes a one-time random key that is
//! never written anywhere: values are still never in clear, but nothing can
//! be proven later.

mod jcs;
mod key;
mod prove;
mod v1;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use jcs::{JcsError, jcs};
pub use key::RedactionKey;
pub(crate) use key::hmac_sha256;
pub use prove::{Proof, ProveError, prove};
pub use v1::{canonical_json, commitment};

/// Key of the commitment object that replaces a sensitive value.
pub const REDACTED_FIELD: &str = "redacted";
/// Key of the salt key's id in a commitment object.
pub const KEY_ID_FIELD: &str = "key_id";
/// Prefix of the commitment text, before the hex digest.
pub const COMMITMENT_PREFIX: &str = "sha256:";
/// The field of a v2 commitment object holding its nonce (32 lowercase hex);
/// a commitment without it is v1.
pub const NONCE_FIELD: &str = "nonce";
/// Bytes of a v2 nonce, drawn afresh for every committed value.
const NONCE_BYTES: usize = 16;
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
    /// use mandate::pipeline::SensitivePaths;
    ///
    /// let paths = SensitivePaths::parse(&["body".into(), "attachments[].content".into()])?;
    /// assert!(!paths.is_empty());
    /// assert!(SensitivePaths::parse(&["attachments[0]".into()]).is_err());
    /// # Ok::<(), mandate::pipeline::SensitivePathError>(())
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

    /// `arguments` with every sensitive value replaced by its v2 commitment
    /// for the call `call_id` under `key`, each with a nonce of its own.
    pub fn redact(&self, arguments: &Value, key: &RedactionKey, call_id: &str) -> Value {
        self.redact_with(arguments, key, call_id, &mut random_nonce)
    }

    /// [`redact`](Self::redact) with the nonces drawn from `nonce`, so that
    /// unit tests can compare whole redacted values.
    fn redact_with(
        &self,
        arguments: &Value,
        key: &RedactionKey,
        call_id: &str,
        nonce: &mut dyn FnMut() -> String,
    ) -> Value {
        if self.is_empty() {
            return arguments.clone();
        }
        let mut path = String::from(ARGUMENTS_ROOT);
        let mut committer = Committer {
            key,
            call_id,
            nonce,
        };
        walk(&self.root, arguments, &mut path, &mut committer)
    }
}

/// What every commitment of one call is made with.
struct Committer<'a> {
    key: &'a RedactionKey,
    call_id: &'a str,
    nonce: &'a mut dyn FnMut() -> String,
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
fn walk(node: &Node, value: &Value, path: &mut String, committer: &mut Committer<'_>) -> Value {
    if node.whole {
        return commitment_object(committer, path, value);
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
                        let v = walk(child, field, path, committer);
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
                return commitment_object(committer, path, value);
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(walk(child, item, path, committer));
                path.truncate(len);
            }
            Value::Array(out)
        }
        // Not the shape the path expects: the secret may be anywhere in it.
        other => commitment_object(committer, path, other),
    }
}

fn commitment_object(committer: &mut Committer<'_>, path: &str, value: &Value) -> Value {
    let nonce = (committer.nonce)();
    // Should the value have no canonical form (a parsed value always has
    // one), the record says so in place of a commitment: the value is never
    // written in clear, and `audit prove` reports the commitment malformed.
    let redacted = commitment_v2(committer.key, &nonce, committer.call_id, path, value)
        .unwrap_or_else(|e| format!("unavailable: {e}"));
    let mut map = Map::with_capacity(3);
    map.insert(REDACTED_FIELD.into(), Value::String(redacted));
    map.insert(
        KEY_ID_FIELD.into(),
        Value::String(committer.key.key_id().to_string()),
    );
    map.insert(NONCE_FIELD.into(), Value::String(nonce));
    Value::Object(map)
}

/// 16 bytes from the system's random source as 32 lowercase hex: what makes
/// a v2 salt unique. The nonce is written in clear next to the commitment,
/// so it needs to be unique, not secret: should the random source fail, a
/// hash of the clock, a process-wide counter and the process id stands in.
fn random_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; NONCE_BYTES];
    if getrandom::fill(&mut bytes).is_err() {
        let mut h = Sha256::new();
        h.update(b"mandate-redaction-nonce/2\0");
        h.update(jiff::Timestamp::now().as_nanosecond().to_be_bytes());
        h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        h.update(std::process::id().to_be_bytes());
        let digest = h.finalize();
        for (b, d) in bytes.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
    }
    hex::encode(bytes)
}

/// Whether `nonce` is a v2 nonce as written: 32 lowercase hex characters.
pub(crate) fn is_nonce(nonce: &str) -> bool {
    nonce.len() == 2 * NONCE_BYTES
        && nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The v2 commitment text `sha256:<64 hex>` to `value`, found at the
/// concrete `path` (e.g. `arguments.attachments[1].content`) of the call
/// `call_id`, under `nonce` (as written in the commitment object):
/// SHA-256(salt || RFC 8785 JCS(value)), the salt as
/// [`RedactionKey`] derives it from the nonce, call id and path.
pub fn commitment_v2(
    key: &RedactionKey,
    nonce: &str,
    call_id: &str,
    path: &str,
    value: &Value,
) -> Result<String, JcsError> {
    let canonical = jcs(value)?;
    let mut hasher = Sha256::new();
    hasher.update(key.salt_v2(nonce, call_id, path));
    hasher.update(canonical);
    Ok(format!(
        "{COMMITMENT_PREFIX}{}",
        hex::encode(hasher.finalize())
    ))
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

    const NONCE: &str = "000102030405060708090a0b0c0d0e0f";

    /// `p` applied to `args` of call `c:1`, every nonce [`NONCE`].
    fn redact(p: &SensitivePaths, args: &Value) -> Value {
        p.redact_with(args, &key(), "c:1", &mut || NONCE.to_string())
    }

    /// The commitment object for `value` at `path` of call `c:1`.
    fn committed(path: &str, value: Value) -> Value {
        json!({
            "redacted": v2(&key(), NONCE, "c:1", path, &value),
            "key_id": key().key_id(),
            "nonce": NONCE,
        })
    }

    #[test]
    fn a_top_level_field_is_replaced_by_its_commitment() {
        let args = json!({"to": "bob@example.com", "body": "secret"});
        let out = redact(&paths(&["body"]), &args);
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
        let out = redact(
            &paths(&["meta.token", "attachments[].content", "recipients[]"]),
            &args,
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
        let out = redact(&paths(&["grid[][]", "meta.token", "meta"]), &args);
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
        let out = redact(&p, &args);
        assert_eq!(
            out,
            json!({
                "attachments": committed("arguments.attachments", json!("content: secret")),
                "meta": committed("arguments.meta", json!(["token", "secret"])),
            })
        );
        // Arguments that are not an object at all.
        let out = redact(&p, &json!(["secret"]));
        assert_eq!(out, committed("arguments", json!(["secret"])));
        // Missing fields and nulls hold nothing.
        let args = json!({"meta": null, "other": "kept"});
        assert_eq!(redact(&p, &args), args);
    }

    /// The v2 commitment under `nonce`.
    fn v2(key: &RedactionKey, nonce: &str, call_id: &str, path: &str, value: &Value) -> String {
        commitment_v2(key, nonce, call_id, path, value).unwrap()
    }

    #[test]
    fn the_same_value_gives_different_commitments_per_nonce_call_path_and_key() {
        let v = json!("same body");
        let (n, body) = (NONCE, "arguments.body");
        let a = v2(&key(), n, "s:1", body, &v);
        assert_eq!(a, v2(&key(), n, "s:1", body, &v));
        // The nonce alone tells two runs that reuse the call id `s:1` apart.
        assert_ne!(
            a,
            v2(&key(), "ffffffffffffffffffffffffffffffff", "s:1", body, &v)
        );
        assert_ne!(a, v2(&key(), n, "s:2", body, &v));
        assert_ne!(a, v2(&key(), n, "s:1", "arguments.note", &v));
        assert_ne!(
            a,
            v2(&RedactionKey::from_bytes([8; 32]), n, "s:1", body, &v)
        );
        // Field boundaries are unambiguous: moving bytes between the nonce,
        // the call id and the path changes the salt.
        assert_ne!(a, v2(&key(), n, "s:1a", "rguments.body", &v));
        assert_ne!(a, v2(&key(), &format!("{n}s"), ":1", body, &v));
        // v1 (no nonce) differs from v2 for the same call, path and value.
        assert_ne!(a, commitment(&key(), "s:1", body, &v));
    }

    #[test]
    fn redaction_draws_a_fresh_nonce_for_every_value() {
        let args = json!({"to": ["a@example.com", "a@example.com"]});
        let first = paths(&["to[]"]).redact(&args, &key(), "c:1");
        let second = paths(&["to[]"]).redact(&args, &key(), "c:1");
        let nonces: Vec<&str> = [&first["to"][0], &first["to"][1], &second["to"][0]]
            .iter()
            .map(|c| c["nonce"].as_str().unwrap())
            .collect();
        assert!(nonces.iter().all(|n| is_nonce(n)), "{nonces:?}");
        assert_ne!(nonces[0], nonces[1]);
        assert_ne!(nonces[0], nonces[2]);
        assert_ne!(first["to"][0]["redacted"], second["to"][0]["redacted"]);
        assert_ne!(first["to"][0]["redacted"], first["to"][1]["redacted"]);
    }

    #[test]
    fn the_commitment_ignores_key_order_but_not_values() {
        let a = json!({"x": 1, "y": [true, null]});
        let b: Value = serde_json::from_str(r#"{"y":[true,null],"x":1}"#).unwrap();
        let c = |v: &Value| v2(&key(), NONCE, "c", "arguments.m", v);
        assert_eq!(c(&a), c(&b));
        assert_ne!(c(&a), c(&json!({"x": 2, "y": [true, null]})));
        // Equal numbers in two spellings are one double, one commitment.
        let e: Value = serde_json::from_str(r#"{"y":[true,null],"x":1.0e0}"#).unwrap();
        assert_eq!(c(&a), c(&e));
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
