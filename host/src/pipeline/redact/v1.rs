//! Redaction v1, kept so that records written before v2 can still be
//! proven: a commitment object without `nonce`, salted over the call id and
//! path only (so it repeats when a later run reuses a session id), over this
//! project's own canonical JSON rather than RFC 8785.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{COMMITMENT_PREFIX, RedactionKey};

/// The v1 commitment text `sha256:<64 hex>` to `value`, found at the concrete
/// `path` (e.g. `arguments.attachments[1].content`) of the call `call_id`:
/// what records written before v2 hold (no `nonce`); kept so that they can
/// still be proven.
pub fn commitment(key: &RedactionKey, call_id: &str, path: &str, value: &Value) -> String {
    let salt = key.salt(call_id, path);
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(canonical_json(value));
    format!("{COMMITMENT_PREFIX}{}", hex::encode(hasher.finalize()))
}

/// `value` as compact JSON with object keys sorted by their UTF-8 bytes: the
/// bytes a v1 commitment covers (v2 covers [`jcs`](super::jcs)). Strings
/// escape `"`, `\` and control characters only; integers are written in decimal, other numbers in the shortest
/// decimal form that reads back as the same double.
///
/// ```
/// use mandate::pipeline::canonical_json;
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
