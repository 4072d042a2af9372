//! Line framing and hash computation: the only place that knows how a record's bytes look.
//!
//! Writing and verifying share these helpers so that both sides agree byte for byte on what the
//! hash covers. Verifying never re-serializes JSON: it splits the hash off the end of the line and
//! hashes the bytes in front of it.

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::BodyError;

mod valid;
pub(crate) use valid::check_record_line;

/// The longest record line any reader of the log accepts, its newline included: the verifier,
/// the record reader, the index and the writer's history check take a longer line for a
/// malformed record.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// The `prev_hash` of the first record of every log: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `format` field of the `log_start` record that opens every log.
pub const FORMAT: &str = "mandate-audit/1";

/// The `kind` of the record that opens every log.
pub const LOG_START_KIND: &str = "log_start";

/// Keys the log stamps itself; a body may not set them.
pub const RESERVED_KEYS: [&str; 4] = ["seq", "prev_hash", "timestamp", "hash"];

/// What sits between the hashed prefix and the hash: `,"hash":"`.
const HASH_INFIX: &[u8] = b",\"hash\":\"";

/// What closes every line (before its newline): `"}`.
const LINE_END: &[u8] = b"\"}";

/// Length of a SHA-256 digest in lowercase hex.
pub(crate) const HASH_HEX_LEN: usize = 64;

/// How every record line starts; lets the verifier tell a torn record from a foreign file.
pub(crate) const RECORD_START: &[u8] = b"{\"seq\":";

/// A body serialized to the inside of a JSON object (no braces), checked for reserved and
/// duplicate keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyFields(Vec<u8>);

impl BodyFields {
    /// The fields, without the braces.
    pub(crate) fn inner(&self) -> &[u8] {
        // Kept with its braces: cutting the `{` off would move every byte.
        self.0.get(1..self.0.len().saturating_sub(1)).unwrap_or(&[])
    }
}

impl BodyFields {
    /// Serializes `body` and checks that it is an object with no reserved or repeated key.
    pub(crate) fn new<T: Serialize + ?Sized>(body: &T) -> Result<Self, BodyError> {
        // Room for a typical decision record, so that it is not copied as it grows.
        let mut bytes = Vec::with_capacity(2048);
        serde_json::to_writer(&mut bytes, body).map_err(BodyError::Serialize)?;
        // The compact serializer writes an object as `{...}` with no surrounding whitespace.
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return Err(BodyError::NotAnObject);
        }
        check_keys(&bytes[1..bytes.len() - 1])?;
        Ok(Self(bytes))
    }

    /// Serializes a body whose type fixes its top-level keys, none of them reserved or
    /// repeated ([`FixedKeys`]), so that scanning them again on every record is not needed.
    #[cfg(feature = "writer")]
    pub(crate) fn with_fixed_keys<T: Serialize + FixedKeys>(body: &T) -> Result<Self, BodyError> {
        let mut bytes = Vec::with_capacity(2048);
        serde_json::to_writer(&mut bytes, body).map_err(BodyError::Serialize)?;
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return Err(BodyError::NotAnObject);
        }
        Ok(Self(bytes))
    }
}

/// The check `BodyFields::new` makes, for tests of [`FixedKeys`] types (in this crate and in
/// the guard, whose record types implement it).
pub fn check_body_keys<T: Serialize>(body: &T) -> Result<(), BodyError> {
    BodyFields::new(body).map(|_| ())
}

/// A record type that serializes to an object whose top-level keys are fixed by the type and
/// never reserved or repeated. Each implementation has a test that every shape of the type
/// passes the check `BodyFields::new` makes.
///
/// Sealed: a type that implements it skips that check when it is appended, so only this
/// crate's own record types (`crate::record`), whose tests prove the promise, may.
pub trait FixedKeys: sealed::Sealed {}

mod sealed {
    /// Implemented only in this crate, so no other crate can implement [`super::FixedKeys`].
    pub trait Sealed {}
    impl Sealed for crate::record::Record {}
}

/// Checks the top-level keys of an object's inside, as `serde_json` writes it compactly.
///
/// This scans the bytes instead of parsing them again: a second parse cost about a tenth of
/// the writer's CPU. Keys compare as raw bytes, which is exact here because `serde_json`
/// escapes a given string always the same way.
fn check_keys(inner: &[u8]) -> Result<(), BodyError> {
    let mut seen: Vec<&[u8]> = Vec::with_capacity(16);
    let mut at = 0;
    while at < inner.len() {
        if inner[at] != b'"' {
            return Err(BodyError::NotAnObject);
        }
        let key_end = string_end(inner, at).ok_or(BodyError::NotAnObject)?;
        let key = &inner[at + 1..key_end - 1];
        if RESERVED_KEYS
            .iter()
            .any(|reserved| reserved.as_bytes() == key)
        {
            return Err(BodyError::ReservedKey {
                key: unescape_key(&inner[at..key_end]),
            });
        }
        if seen.contains(&key) {
            return Err(BodyError::DuplicateKey {
                key: unescape_key(&inner[at..key_end]),
            });
        }
        seen.push(key);
        if inner.get(key_end) != Some(&b':') {
            return Err(BodyError::NotAnObject);
        }
        at = value_end(inner, key_end + 1).ok_or(BodyError::NotAnObject)?;
        match inner.get(at) {
            None => break,
            Some(b',') => at += 1,
            Some(_) => return Err(BodyError::NotAnObject),
        }
    }
    Ok(())
}

/// The index just past the closing quote of the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        // A backslash escapes the byte after it (a `\uXXXX` escape's digits need no care).
        at += 2;
    }
}

/// The index just past the value that starts at `start`: at a top-level `,` or the end.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => return Some(at),
            _ => {}
        }
        at += 1;
    }
    (depth == 0).then_some(at)
}

/// A key for an error message, unescaped (its raw bytes if that fails, which it cannot for
/// `serde_json`'s own output).
fn unescape_key(quoted: &[u8]) -> String {
    serde_json::from_slice(quoted).unwrap_or_else(|_| String::from_utf8_lossy(quoted).into_owned())
}

/// Formats a timestamp as RFC 3339 UTC with exactly three fractional digits.
pub(crate) fn format_timestamp(timestamp: Timestamp) -> String {
    format!("{timestamp:.3}")
}

/// The current time, truncated to whole milliseconds so that the value handed back to the
/// caller is exactly the one written.
#[cfg(feature = "writer")]
pub(crate) fn now_millis() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// Lowercase hex SHA-256 of a line's hashed prefix.
pub(crate) fn hash_prefix(prefix: &[u8]) -> String {
    hex::encode(Sha256::digest(prefix))
}

/// A complete record line, newline included, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedLine {
    /// The bytes to write.
    pub(crate) bytes: Vec<u8>,
    /// The record's `hash` field.
    pub(crate) hash: String,
}

/// Frames one record: `{"seq":N,"prev_hash":"..","timestamp":"..",<body>,"hash":".."}\n`.
pub(crate) fn encode_line(
    seq: u64,
    prev_hash: &str,
    timestamp: Timestamp,
    body: &BodyFields,
) -> EncodedLine {
    let body = body.inner();
    let mut bytes = Vec::with_capacity(body.len() + 200);
    bytes.extend_from_slice(RECORD_START);
    bytes.extend_from_slice(seq.to_string().as_bytes());
    bytes.extend_from_slice(b",\"prev_hash\":\"");
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.extend_from_slice(b"\",\"timestamp\":\"");
    bytes.extend_from_slice(format_timestamp(timestamp).as_bytes());
    bytes.push(b'"');
    if !body.is_empty() {
        bytes.push(b',');
        bytes.extend_from_slice(body);
    }
    let hash = hash_prefix(&bytes);
    bytes.extend_from_slice(HASH_INFIX);
    bytes.extend_from_slice(hash.as_bytes());
    bytes.extend_from_slice(LINE_END);
    bytes.push(b'\n');
    EncodedLine { bytes, hash }
}

/// The longest a formatted timestamp can be: jiff's earliest year, `-009999`, takes 7 of them.
#[cfg(feature = "writer")]
const TIMESTAMP_MAX_LEN: usize = "-009999-01-01T00:00:00.000Z".len();

/// The longest line `body` can be encoded as by [`encode_line`], newline included, whatever its
/// seq (up to the 20 digits of `u64::MAX`) and timestamp: the writer checks this against
/// [`MAX_RECORD_BYTES`] before a record is queued, so one body is refused on its own, never a
/// whole group commit, and no line it writes is longer than a reader accepts.
#[cfg(feature = "writer")]
pub(crate) fn max_line_len(body: &BodyFields) -> usize {
    let body = body.inner();
    let separator = usize::from(!body.is_empty());
    RECORD_START.len()
        + u64::MAX.to_string().len()
        + b",\"prev_hash\":\"".len()
        + HASH_HEX_LEN
        + b"\",\"timestamp\":\"".len()
        + TIMESTAMP_MAX_LEN
        + 1
        + separator
        + body.len()
        + HASH_INFIX.len()
        + HASH_HEX_LEN
        + LINE_END.len()
        + 1
}

/// A line split into the bytes its hash covers and the hash it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framed<'a> {
    /// Everything before `,"hash":"`.
    pub(crate) prefix: &'a [u8],
    /// The recorded hash: 64 lowercase hex digits.
    pub(crate) hash: &'a str,
}

impl Framed<'_> {
    /// Whether the recorded hash is the hash of the prefix.
    pub(crate) fn hash_matches(&self) -> bool {
        // Hex-encoded on the stack: this runs once per record when a log is verified.
        let mut hex = [0u8; HASH_HEX_LEN];
        hex::encode_to_slice(Sha256::digest(self.prefix), &mut hex).is_ok()
            && hex == self.hash.as_bytes()
    }
}

/// Splits a line (without its newline) that ends in `,"hash":"<64 lowercase hex>"}`.
pub(crate) fn split_framed(line: &[u8]) -> Option<Framed<'_>> {
    let rest = line.strip_suffix(LINE_END)?;
    let hash_start = rest.len().checked_sub(HASH_HEX_LEN)?;
    let (rest, hash) = rest.split_at(hash_start);
    if !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let prefix = rest.strip_suffix(HASH_INFIX)?;
    let hash = std::str::from_utf8(hash).ok()?;
    Some(Framed { prefix, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(millis).unwrap()
    }

    #[test]
    fn timestamps_always_have_three_fractional_digits() {
        assert_eq!(
            format_timestamp(at(1_795_710_349_123)),
            "2026-11-26T16:25:49.123Z"
        );
        assert_eq!(
            format_timestamp(at(1_795_710_349_000)),
            "2026-11-26T16:25:49.000Z"
        );
        assert_eq!(
            format_timestamp(at(1_795_710_349_020)),
            "2026-11-26T16:25:49.020Z"
        );
    }

    #[test]
    fn encoded_line_has_the_documented_shape_and_splits_back() {
        let body = BodyFields::new(&json!({"kind": "x", "n": 1})).unwrap();
        let line = encode_line(7, GENESIS_HASH, at(1_795_710_349_123), &body);
        let text = String::from_utf8(line.bytes.clone()).unwrap();
        let expected_prefix = format!(
            "{{\"seq\":7,\"prev_hash\":\"{GENESIS_HASH}\",\"timestamp\":\"2026-11-26T16:25:49.123Z\",\"kind\":\"x\",\"n\":1"
        );
        assert_eq!(
            text,
            format!("{expected_prefix},\"hash\":\"{}\"}}\n", line.hash)
        );
        assert_eq!(line.hash, hash_prefix(expected_prefix.as_bytes()));

        let framed = split_framed(line.bytes.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(framed.prefix, expected_prefix.as_bytes());
        assert_eq!(framed.hash, line.hash);
        assert!(framed.hash_matches());
        serde_json::from_slice::<serde_json::Value>(&line.bytes).unwrap();
    }

    #[test]
    fn an_empty_body_adds_no_fields() {
        let line = encode_line(
            1,
            GENESIS_HASH,
            at(0),
            &BodyFields::new(&json!({})).unwrap(),
        );
        let value: serde_json::Value = serde_json::from_slice(&line.bytes).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn body_field_order_is_kept() {
        #[derive(Serialize)]
        struct Body {
            zeta: u8,
            alpha: u8,
        }
        let body = BodyFields::new(&Body { zeta: 1, alpha: 2 }).unwrap();
        assert_eq!(body.inner(), b"\"zeta\":1,\"alpha\":2");
    }

    #[test]
    fn bodies_that_are_not_objects_or_set_reserved_keys_are_rejected() {
        for body in [json!(null), json!(3), json!("x"), json!([1, 2])] {
            assert!(
                matches!(BodyFields::new(&body), Err(BodyError::NotAnObject)),
                "{body}"
            );
        }
        for key in RESERVED_KEYS {
            let body = json!({ "kind": "x", key: 1 });
            assert!(
                matches!(BodyFields::new(&body), Err(BodyError::ReservedKey { key: ref k }) if k == key),
                "{body}"
            );
        }
    }

    #[test]
    fn bodies_with_a_repeated_key_are_rejected() {
        struct Twice;
        impl Serialize for Twice {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("kind", "a")?;
                map.serialize_entry("kind", "b")?;
                map.end()
            }
        }
        assert!(matches!(
            BodyFields::new(&Twice),
            Err(BodyError::DuplicateKey { key }) if key == "kind"
        ));
    }

    #[test]
    fn only_top_level_keys_count_as_reserved_or_repeated() {
        // Reserved names nested deeper, inside strings, or behind escapes are ordinary data.
        let body = json!({
            "kind": "decision",
            "arguments": {"seq": 1, "hash": [{"seq": 2}], "kind": "nested"},
            "note": "\",\"seq\":1,\"kind\":\"x",
            "tricky \"seq\" \\": {"a": ["]", "}", "{", "[", "\\"]},
            "empty": {},
            "list": [[], {}, null, true, 1.5e3]
        });
        let fields = BodyFields::new(&body).unwrap();
        let inner = serde_json::to_vec(&body).unwrap();
        assert_eq!(fields.inner(), &inner[1..inner.len() - 1]);
        assert_eq!(BodyFields::new(&json!({})).unwrap().inner(), b"");

        // A repeated key whose name needs escaping is still caught, and named unescaped.
        struct Twice;
        impl Serialize for Twice {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("a\"b", &json!({"a\"b": 1}))?;
                map.serialize_entry("a\"b", "again")?;
                map.end()
            }
        }
        assert!(matches!(
            BodyFields::new(&Twice),
            Err(BodyError::DuplicateKey { key }) if key == "a\"b"
        ));
    }

    #[test]
    fn split_framed_rejects_lines_without_a_well_formed_hash() {
        let hash = "a".repeat(64);
        assert!(split_framed(format!("{{\"x\":1,\"hash\":\"{hash}\"}}").as_bytes()).is_some());
        let upper = "A".repeat(64);
        assert!(split_framed(format!("{{\"x\":1,\"hash\":\"{upper}\"}}").as_bytes()).is_none());
        let short = "a".repeat(63);
        assert!(split_framed(format!("{{\"x\":1,\"hash\":\"{short}\"}}").as_bytes()).is_none());
        assert!(split_framed(format!("{{\"x\":1,\"hash\": \"{hash}\"}}").as_bytes()).is_none());
        assert!(split_framed(b"").is_none());
        assert!(split_framed(b"\"}").is_none());
    }
}
