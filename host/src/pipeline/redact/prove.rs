//! [`prove`]: checks an original value against the commitment a redacted
//! argument left in a record, as `mandate audit prove` does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::commitment_paths;
use super::{
    ARGUMENTS_ROOT, COMMITMENT_PREFIX, JcsError, KEY_ID_FIELD, NONCE_FIELD, REDACTED_FIELD,
    RedactionKey, commitment, commitment_v2, is_nonce,
};
use crate::audit::RecordReader;

/// Most redacted paths named in the hint of an error.
const HINT_PATHS: usize = 8;

/// The answer of [`prove`]: whether the value is the one committed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The record's seq.
    pub seq: u64,
    /// The record's call id, part of the salt.
    pub call_id: String,
    /// The concrete path, as written in the salt.
    pub path: String,
    /// The commitment found in the record, `sha256:<hex>`.
    pub recorded: String,
    /// The commitment computed from the value and the key.
    pub computed: String,
    /// The nonce of a v2 commitment; `None` for a v1 commitment (written
    /// before nonces, proven the old way).
    pub nonce: Option<String>,
    /// True when they are equal: the value is what was sent.
    pub matches: bool,
}

/// Why a value could not be checked against a record. A value that was
/// checked and differs is not an error but a [`Proof`] that does not match.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The path is not a concrete path into a record's arguments.
    #[error(
        "path `{path}` is malformed: {reason}; write it like `arguments.body` or `arguments.attachments[0].content`"
    )]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The log could not be read.
    #[error("cannot read audit log `{}`: {error}", log.display())]
    Read {
        /// The log.
        log: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// No record has this seq.
    #[error("seq {seq} is not in audit log `{}`{}", log.display(), range_hint(*.seq, *.first, *.last))]
    SeqNotFound {
        /// The log.
        log: PathBuf,
        /// The seq asked for.
        seq: u64,
        /// The first seq seen in the log.
        first: Option<u64>,
        /// The last seq seen before the search stopped.
        last: Option<u64>,
    },
    /// The record's line is not JSON.
    #[error("record {seq} is not valid json: {message}; run `mandate audit verify` on the log")]
    NotJson {
        /// The record's seq.
        seq: u64,
        /// The parser's message.
        message: String,
    },
    /// The record is not a tool call.
    #[error(
        "record {seq} has no `call_id` and `action`: only decision records of tool calls hold redacted arguments"
    )]
    NotACall {
        /// The record's seq.
        seq: u64,
    },
    /// Nothing at that path.
    #[error("record {seq} has no `{path}`{}", paths_hint(.redacted))]
    PathNotFound {
        /// The record's seq.
        seq: u64,
        /// The path.
        path: String,
        /// The redacted paths the record does hold.
        redacted: Vec<String>,
    },
    /// The value at that path is in clear (or not a commitment).
    #[error("`{path}` in record {seq} is not redacted{}", paths_hint(.redacted))]
    NotRedacted {
        /// The record's seq.
        seq: u64,
        /// The path.
        path: String,
        /// The redacted paths the record does hold.
        redacted: Vec<String>,
    },
    /// The commitment object is damaged.
    #[error(
        "`{path}` in record {seq} holds a malformed commitment: `{REDACTED_FIELD}` should be `{COMMITMENT_PREFIX}<64 hex>`, `{KEY_ID_FIELD}` a string and `{NONCE_FIELD}`, if present (v2), 32 lowercase hex"
    )]
    BadCommitment {
        /// The record's seq.
        seq: u64,
        /// The path.
        path: String,
    },
    /// The record was redacted with another salt key.
    #[error(
        "`{path}` in record {seq} was redacted with salt key `{recorded}`, not with the key given (`{given}`); use the salt key the guard ran with"
    )]
    WrongKey {
        /// The record's seq.
        seq: u64,
        /// The path.
        path: String,
        /// The key id in the record.
        recorded: String,
        /// The key id of the key given.
        given: String,
    },
    /// The value given has no RFC 8785 form (a parsed value always has one).
    #[error("the value cannot be checked: {0}")]
    Canonical(#[from] JcsError),
}

fn range_hint(seq: u64, first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (None, _) | (_, None) => ": the log has no records".into(),
        (Some(first), _) if seq < first => format!(": its oldest record is seq {first}"),
        (_, Some(last)) if seq > last => format!(": its last record is seq {last}"),
        _ => String::new(),
    }
}

fn paths_hint(redacted: &[String]) -> String {
    if redacted.is_empty() {
        "; the record holds no redacted values".into()
    } else {
        let list: Vec<String> = redacted.iter().map(|p| format!("`{p}`")).collect();
        format!("; its redacted values are at {}", list.join(", "))
    }
}

/// One step of a concrete path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// Parses `arguments(.field|[index])*`; returns the steps after `arguments`
/// and the path written back in the one form the salt uses.
fn parse_concrete(path: &str) -> Result<(Vec<Step>, String), String> {
    let Some(mut rest) = path.strip_prefix(ARGUMENTS_ROOT) else {
        return Err(format!("it must start with `{ARGUMENTS_ROOT}`"));
    };
    let mut steps = Vec::new();
    let mut canonical = String::from(ARGUMENTS_ROOT);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let (name, tail) = after.split_at(end);
            if name.is_empty() {
                return Err("a field name is missing".into());
            }
            if let Some(c) = name.chars().find(|c| *c == ']' || c.is_whitespace()) {
                return Err(format!("field name `{name}` contains {c:?}"));
            }
            canonical.push('.');
            canonical.push_str(name);
            steps.push(Step::Field(name.to_string()));
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| "a `[` is not closed".to_string())?;
            let (digits, tail) = after.split_at(end);
            let canonical_number = digits == "0"
                || (!digits.is_empty()
                    && !digits.starts_with('0')
                    && digits.bytes().all(|b| b.is_ascii_digit()));
            let index: usize = match digits.parse() {
                Ok(i) if canonical_number => i,
                _ => return Err(format!("`[{digits}]` is not an array index such as `[0]`")),
            };
            canonical.push_str(&format!("[{index}]"));
            steps.push(Step::Index(index));
            rest = tail.get(1..).unwrap_or_default();
        } else {
            return Err(format!("unexpected `{rest}`"));
        }
    }
    Ok((steps, canonical))
}

/// A commitment object's fields: the commitment, the key id and, for v2,
/// the nonce.
type CommitmentFields<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a Value>);

/// The commitment, key id and nonce if `value` is a commitment object.
fn as_commitment(value: &Value) -> Option<CommitmentFields<'_>> {
    let map = value.as_object()?;
    let recorded = map.get(REDACTED_FIELD)?;
    Some((
        recorded.as_str(),
        map.get(KEY_ID_FIELD).and_then(Value::as_str),
        map.get(NONCE_FIELD),
    ))
}

/// Reads the line of record `seq` from the log at `log` (a log directory
/// or a single segment file). Stops at the first larger seq.
fn find_record(log: &Path, seq: u64) -> Result<Vec<u8>, ProveError> {
    let read_error = |error| ProveError::Read {
        log: log.to_path_buf(),
        error,
    };
    let (mut first, mut last) = (None, None);
    for record in RecordReader::open(log).map_err(read_error)? {
        let record = record.map_err(read_error)?;
        let Some(s) = record.seq else { continue };
        first.get_or_insert(s);
        last = Some(s);
        if s == seq {
            return Ok(record.bytes);
        }
        if s > seq {
            break;
        }
    }
    Err(ProveError::SeqNotFound {
        log: log.to_path_buf(),
        seq,
        first,
        last,
    })
}

/// Checks `value` against the commitment at the concrete `path` (e.g.
/// `arguments.attachments[1].content`) of record `seq` in the log at `log`,
/// recomputing it from `key` and the record's call id.
///
/// It checks one record as written; run the verifier to know the record
/// itself is authentic.
pub fn prove(
    log: &Path,
    seq: u64,
    path: &str,
    value: &Value,
    key: &RedactionKey,
) -> Result<Proof, ProveError> {
    let (steps, canonical) = parse_concrete(path).map_err(|reason| ProveError::BadPath {
        path: path.to_string(),
        reason,
    })?;
    let line = find_record(log, seq)?;
    let record: Value = serde_json::from_slice(&line).map_err(|e| ProveError::NotJson {
        seq,
        message: e.to_string(),
    })?;
    let (Some(call_id), Some(arguments)) = (
        record.get("call_id").and_then(Value::as_str),
        record.get("action").and_then(|a| a.get(ARGUMENTS_ROOT)),
    ) else {
        return Err(ProveError::NotACall { seq });
    };
    let hint = || commitment_paths(arguments, ARGUMENTS_ROOT, HINT_PATHS);
    let mut node = arguments;
    for step in &steps {
        let next = match step {
            Step::Field(name) => node.as_object().and_then(|m| m.get(name)),
            Step::Index(i) => node.as_array().and_then(|a| a.get(*i)),
        };
        node = next.ok_or_else(|| ProveError::PathNotFound {
            seq,
            path: canonical.clone(),
            redacted: hint(),
        })?;
    }
    let Some((recorded, key_id, nonce)) = as_commitment(node) else {
        return Err(ProveError::NotRedacted {
            seq,
            path: canonical,
            redacted: hint(),
        });
    };
    let well_formed = recorded.filter(|r| {
        r.strip_prefix(COMMITMENT_PREFIX)
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    // v2 has a nonce of 32 lowercase hex; v1 has no `nonce` at all. A
    // malformed nonce is not taken for v1: that would let a damaged record
    // be proven under the weaker scheme.
    let nonce = match nonce {
        None => Ok(None),
        Some(Value::String(n)) if is_nonce(n) => Ok(Some(n.as_str())),
        Some(_) => Err(()),
    };
    let (Some(recorded), Some(key_id), Ok(nonce)) = (well_formed, key_id, nonce) else {
        return Err(ProveError::BadCommitment {
            seq,
            path: canonical,
        });
    };
    if key_id != key.key_id() {
        return Err(ProveError::WrongKey {
            seq,
            path: canonical,
            recorded: key_id.to_string(),
            given: key.key_id().to_string(),
        });
    }
    let computed = match nonce {
        Some(nonce) => commitment_v2(key, nonce, call_id, &canonical, value)?,
        None => commitment(key, call_id, &canonical, value),
    };
    Ok(Proof {
        seq,
        call_id: call_id.to_string(),
        path: canonical,
        matches: computed == recorded,
        recorded: recorded.to_string(),
        computed,
        nonce: nonce.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use sha2::{Digest, Sha256};

    use super::super::SensitivePaths;
    use super::*;
    use crate::audit::AuditLog;

    fn key() -> RedactionKey {
        RedactionKey::from_bytes([3; 32])
    }

    /// A log whose record 2 is a decision of call `s:1` with `arguments`
    /// redacted at `sensitive`, and whose record 3 is not a call.
    fn log_with(arguments: Value, sensitive: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let paths =
            SensitivePaths::parse(&sensitive.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let redacted = paths.redact(&arguments, &key(), "s:1");
        let seq = log
            .append(&json!({
                "kind": "decision",
                "call_id": "s:1",
                "action": {"type": "tool_call", "tool": "t", "arguments": redacted},
            }))
            .unwrap()
            .seq;
        assert_eq!(seq, 2);
        log.append(&json!({"kind": "session_end"})).unwrap();
        (dir, path)
    }

    #[test]
    fn the_original_value_matches_and_another_does_not() {
        let args = json!({
            "body": "hello",
            "attachments": [{"content": "a"}, {"content": {"k": [1, 2]}}],
        });
        let (_dir, log) = log_with(args, &["body", "attachments[].content"]);
        let proof = prove(&log, 2, "arguments.body", &json!("hello"), &key()).unwrap();
        assert!(proof.matches);
        assert_eq!(proof.call_id, "s:1");
        assert_eq!(proof.recorded, proof.computed);
        let nested = json!({"k": [1, 2]});
        let p = "arguments.attachments[1].content";
        assert!(prove(&log, 2, p, &nested, &key()).unwrap().matches);
        // The same value at another index is not what was committed there.
        let p0 = "arguments.attachments[0].content";
        assert!(!prove(&log, 2, p0, &nested, &key()).unwrap().matches);
        let wrong = prove(&log, 2, "arguments.body", &json!("hellp"), &key()).unwrap();
        assert!(!wrong.matches);
        assert_ne!(wrong.recorded, wrong.computed);
    }

    #[test]
    fn a_v1_commitment_without_a_nonce_is_still_proven() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let v1 = commitment(&key(), "s:1", "arguments.body", &json!("hello"));
        log.append(&json!({
            "kind": "decision",
            "call_id": "s:1",
            "action": {"type": "tool_call", "tool": "t", "arguments": {
                "body": {"redacted": v1, "key_id": key().key_id()},
            }},
        }))
        .unwrap();
        assert!(
            prove(&path, 2, "arguments.body", &json!("hello"), &key())
                .unwrap()
                .matches
        );
        assert!(
            !prove(&path, 2, "arguments.body", &json!("hellp"), &key())
                .unwrap()
                .matches
        );
    }

    #[test]
    fn a_v2_commitment_is_sha256_of_the_nonce_bound_salt_and_the_jcs_value() {
        let (_dir, log) = log_with(json!({"body": {"n": 1e21, "a": [0.1]}}), &["body"]);
        let line = find_record(&log, 2).unwrap();
        let record: Value = serde_json::from_slice(&line).unwrap();
        let object = &record["action"]["arguments"]["body"];
        let nonce = object["nonce"].as_str().unwrap();
        assert_eq!(nonce.len(), 32, "{object}");
        // Recomputed here from design.md's definition, not with the module.
        let mut parts = b"mandate-redaction/2\0".to_vec();
        for part in [nonce, "s:1", "arguments.body"] {
            parts.extend_from_slice(&(part.len() as u64).to_be_bytes());
            parts.extend_from_slice(part.as_bytes());
        }
        let salt = super::super::key::hmac_for_tests(&[3; 32], &parts);
        let mut h = Sha256::new();
        h.update(salt);
        h.update(br#"{"a":[0.1],"n":1e+21}"#);
        let want = format!("sha256:{}", hex::encode(h.finalize()));
        assert_eq!(object["redacted"], want.as_str());
        let value = json!({"a": [0.1], "n": 1e21});
        assert!(
            prove(&log, 2, "arguments.body", &value, &key())
                .unwrap()
                .matches
        );
    }

    #[test]
    fn another_salt_key_is_named_as_such() {
        let (_dir, log) = log_with(json!({"body": "hello"}), &["body"]);
        let other = RedactionKey::from_bytes([4; 32]);
        let err = prove(&log, 2, "arguments.body", &json!("hello"), &other).unwrap_err();
        assert!(matches!(err, ProveError::WrongKey { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(key().key_id()) && text.contains(other.key_id()),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_seq_the_path_and_what_the_record_holds() {
        let (_dir, log) = log_with(json!({"to": "bob", "body": "hello"}), &["body"]);
        let v = json!("x");
        let err = |seq, path: &str| prove(&log, seq, path, &v, &key()).unwrap_err().to_string();

        let e = err(9, "arguments.body");
        assert!(
            e.contains("seq 9 is not in audit log") && e.contains("last record is seq 3"),
            "{e}"
        );
        let e = err(3, "arguments.body");
        assert!(e.contains("record 3 has no `call_id`"), "{e}");
        let e = err(2, "arguments.to");
        assert!(
            e.contains("`arguments.to` in record 2 is not redacted"),
            "{e}"
        );
        assert!(
            e.contains("its redacted values are at `arguments.body`"),
            "{e}"
        );
        let e = err(2, "arguments.cc[0]");
        assert!(e.contains("record 2 has no `arguments.cc[0]`"), "{e}");
        for (bad, why) in [
            ("body", "must start with `arguments`"),
            ("arguments..body", "field name is missing"),
            ("arguments.a[01]", "not an array index"),
            ("arguments.a[x]", "not an array index"),
            ("arguments.a[1", "not closed"),
            ("argumentsx", "unexpected"),
        ] {
            let e = err(2, bad);
            assert!(e.starts_with(&format!("path `{bad}` is malformed")), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
        let missing = log.with_file_name("nope.jsonl");
        let e = prove(&missing, 2, "arguments.body", &v, &key()).unwrap_err();
        assert!(matches!(e, ProveError::Read { .. }), "{e}");
    }

    #[test]
    fn concrete_paths_are_written_back_in_one_form() {
        let (steps, canonical) = parse_concrete("arguments.a[10].b[0][2]").unwrap();
        assert_eq!(canonical, "arguments.a[10].b[0][2]");
        assert_eq!(
            steps,
            [
                Step::Field("a".into()),
                Step::Index(10),
                Step::Field("b".into()),
                Step::Index(0),
                Step::Index(2),
            ]
        );
        assert_eq!(parse_concrete("arguments").unwrap().1, "arguments");
    }
}
