//! One record line on its own: its framing, its hash, and the fixed prefix that holds its seq,
//! `prev_hash` and kind.
//!
//! This is the verifier's hot path, so it avoids a JSON parse per record. Lines written by
//! Mandate start with `{"seq":N,"prev_hash":"<64 hex>","timestamp":"...",` and put `kind` first
//! among the body fields; those are read straight from the bytes. Only a line that does not
//! have that exact shape is parsed as JSON, and only the few kinds the verifier acts on
//! (`log_start`, `segment_start`, `checkpoint`, `retention`) have their bodies parsed.
//!
//! The audit layer writes those records with `kind` as the first body field. A record whose
//! `kind` comes later is, in the middle of a segment, taken for an ordinary record: a
//! `checkpoint` record written that way is not checked (which gains a forger nothing, as
//! stripping checkpoints is always possible; the checkpoint file is what catches that), and a
//! `retention` record written that way accounts for nothing, so the log fails to verify.

use serde::Deserialize;

use super::error::{ChainProblem, Malformed};
use crate::chain::{HASH_HEX_LEN, LOG_START_KIND, check_record_line};
use crate::checkpoint::CHECKPOINT_KIND;
use crate::segments::SEGMENT_START_KIND;

/// The `kind` of the `retention` record written before old segments are deleted.
pub(crate) const RETENTION_KIND: &str = "retention";

/// A record's hash (or `prev_hash`) as its 64 lowercase hex digits.
pub(super) type HexHash = [u8; HASH_HEX_LEN];

/// The record kinds the verifier acts on; every other kind is just a link in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `log_start`: opens the log.
    LogStart,
    /// `segment_start`: opens every later segment.
    SegmentStart,
    /// `checkpoint`: a signed statement about the record before it.
    Checkpoint,
    /// `retention`: written before old segments are deleted.
    Retention,
    /// Any other kind, or none.
    Other,
}

impl Kind {
    /// The kind named `kind`.
    pub(super) fn of(kind: &[u8]) -> Self {
        match kind {
            k if k == LOG_START_KIND.as_bytes() => Self::LogStart,
            k if k == SEGMENT_START_KIND.as_bytes() => Self::SegmentStart,
            k if k == CHECKPOINT_KIND.as_bytes() => Self::Checkpoint,
            k if k == RETENTION_KIND.as_bytes() => Self::Retention,
            _ => Self::Other,
        }
    }
}

/// A line whose framing and own hash checked out, with the fields the chain needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line<'a> {
    /// The record's seq.
    pub(super) seq: u64,
    /// Its `prev_hash`, as written (64 lowercase hex digits in a well-formed record).
    pub(super) prev_hash: PrevHash<'a>,
    /// Its own hash.
    pub(super) hash: HexHash,
    /// Its kind, as far as the verifier cares.
    pub(super) kind: Kind,
}

/// A `prev_hash` borrowed from the line's prefix, or decoded from JSON for a line of another
/// shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PrevHash<'a> {
    /// Read straight from the fixed prefix.
    Raw(&'a [u8]),
    /// Decoded by a JSON parse.
    Parsed(String),
}

impl PrevHash<'_> {
    /// The bytes to compare with the previous record's hash.
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Raw(bytes) => bytes,
            Self::Parsed(text) => text.as_bytes(),
        }
    }

    /// For messages.
    pub(super) fn to_text(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// Checks one line (without its newline) on its own, as [`check_record_line`] defines a valid
/// record, then reads its seq, `prev_hash` and kind.
pub(super) fn parse_line(line: &[u8]) -> Result<Line<'_>, ChainProblem> {
    let framed = check_record_line(line)?;
    let mut hash: HexHash = [0; HASH_HEX_LEN];
    hash.copy_from_slice(framed.hash.as_bytes());
    if let Some(prefix) = read_prefix(framed.prefix) {
        let kind = match prefix.kind {
            PrefixKind::Plain(kind) => kind,
            PrefixKind::Escaped => parse_head(line)?.1,
        };
        return Ok(Line {
            seq: prefix.seq,
            prev_hash: PrevHash::Raw(prefix.prev_hash),
            hash,
            kind,
        });
    }
    let (head, kind) = parse_head(line)?;
    Ok(Line {
        seq: head.seq,
        prev_hash: PrevHash::Parsed(head.prev_hash),
        hash,
        kind,
    })
}

/// The fields every record carries besides its hash, for a line parsed as JSON.
#[derive(Deserialize)]
pub(super) struct RecordHead {
    pub(super) seq: u64,
    pub(super) prev_hash: String,
}

#[derive(Deserialize)]
struct KindField {
    kind: Option<String>,
}

/// Parses a whole line as JSON for its seq, `prev_hash` and kind: for lines not in the fixed
/// shape.
fn parse_head(line: &[u8]) -> Result<(RecordHead, Kind), ChainProblem> {
    let malformed =
        |error: serde_json::Error| ChainProblem::Malformed(Malformed::from_json(&error));
    let head: RecordHead = serde_json::from_slice(line).map_err(malformed)?;
    let kind: KindField = serde_json::from_slice(line).map_err(malformed)?;
    let kind = kind
        .kind
        .map_or(Kind::Other, |kind| Kind::of(kind.as_bytes()));
    Ok((head, kind))
}

/// What the fixed prefix of a line holds.
struct Prefix<'a> {
    seq: u64,
    prev_hash: &'a [u8],
    // Only the index reads it.
    #[cfg_attr(not(feature = "index"), allow(dead_code))]
    timestamp: &'a [u8],
    kind: PrefixKind,
}

/// The fields the chain writes around a body (`seq`, `prev_hash`, `timestamp`), read from the
/// fixed prefix of a line: for readers that read the body with its own type (the index).
#[cfg(feature = "index")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The record's seq.
    pub(crate) seq: u64,
    /// Its `prev_hash`, as written.
    pub(crate) prev_hash: &'a [u8],
    /// Its timestamp, as written (without escapes).
    pub(crate) timestamp: &'a [u8],
}

/// The frame of a line whose hashed prefix is `prefix`, when it is in the fixed shape the
/// writer writes; `None` for a line of another shape.
#[cfg(feature = "index")]
pub(crate) fn read_frame(prefix: &[u8]) -> Option<Frame<'_>> {
    read_prefix(prefix).map(|p| Frame {
        seq: p.seq,
        prev_hash: p.prev_hash,
        timestamp: p.timestamp,
    })
}

/// The kind as read from the prefix.
enum PrefixKind {
    /// Read as is (or absent, or not the first body field: [`Kind::Other`]).
    Plain(Kind),
    /// Written with a JSON escape: only a JSON parse can tell what it says.
    Escaped,
}

/// Reads `{"seq":N,"prev_hash":"<64 bytes>","timestamp":"<no quote>"` and then either the end
/// of the hashed prefix or `,` and the first body field. `None` when the line is not in that
/// shape (the caller then parses it as JSON).
fn read_prefix(prefix: &[u8]) -> Option<Prefix<'_>> {
    let rest = prefix.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = rest.split_at_checked(digits)?;
    // JSON allows no leading zeros, and the writer never writes them.
    if number.is_empty() || (number.len() > 1 && number.first() == Some(&b'0')) {
        return None;
    }
    let seq = number.iter().try_fold(0u64, |seq, digit| {
        seq.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })?;
    let rest = rest.strip_prefix(b",\"prev_hash\":\"")?;
    let (prev_hash, rest) = rest.split_at_checked(HASH_HEX_LEN)?;
    let rest = rest.strip_prefix(b"\",\"timestamp\":\"")?;
    let close = memchr::memchr(b'"', rest)?;
    let (timestamp, rest) = rest.split_at(close);
    if timestamp.contains(&b'\\') {
        return None;
    }
    let rest = rest.strip_prefix(b"\"")?;
    let kind = if rest.is_empty() {
        PrefixKind::Plain(Kind::Other)
    } else {
        let body = rest.strip_prefix(b",")?;
        match body.strip_prefix(b"\"kind\":\"") {
            Some(kind) => {
                let kind = kind.get(..memchr::memchr(b'"', kind)?)?;
                if kind.contains(&b'\\') {
                    PrefixKind::Escaped
                } else {
                    PrefixKind::Plain(Kind::of(kind))
                }
            }
            None => PrefixKind::Plain(Kind::Other),
        }
    };
    Some(Prefix {
        seq,
        prev_hash,
        timestamp,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{BodyFields, GENESIS_HASH, encode_line, hash_prefix};
    use jiff::Timestamp;
    use serde_json::json;

    fn framed(prefix: &str) -> Vec<u8> {
        format!("{prefix},\"hash\":\"{}\"}}", hash_prefix(prefix.as_bytes())).into_bytes()
    }

    #[test]
    fn lines_written_by_the_chain_are_read_from_their_prefix() {
        for (body, kind) in [
            (json!({"kind": "log_start", "format": "x"}), Kind::LogStart),
            (json!({"kind": "segment_start"}), Kind::SegmentStart),
            (json!({"kind": "checkpoint", "x": 1}), Kind::Checkpoint),
            (json!({"kind": "retention"}), Kind::Retention),
            (json!({"kind": "decision"}), Kind::Other),
            (json!({"a": 1}), Kind::Other),
            (json!({}), Kind::Other),
        ] {
            let encoded = encode_line(
                12_345,
                GENESIS_HASH,
                Timestamp::UNIX_EPOCH,
                &BodyFields::new(&body).unwrap(),
            );
            let bytes = encoded.bytes.strip_suffix(b"\n").unwrap();
            let line = parse_line(bytes).unwrap();
            assert_eq!(line.seq, 12_345, "{body}");
            assert!(matches!(line.prev_hash, PrevHash::Raw(p) if p == GENESIS_HASH.as_bytes()));
            assert_eq!(line.hash, encoded.hash.as_bytes(), "{body}");
            assert_eq!(line.kind, kind, "{body}");
        }
    }

    #[test]
    fn lines_that_do_not_start_with_a_seq_are_not_records() {
        let hash = "ab".repeat(32);
        let other_order = framed(&format!(
            "{{\"prev_hash\":\"{hash}\",\"seq\":7,\"kind\":\"checkpoint\""
        ));
        assert_eq!(
            parse_line(&other_order),
            Err(ChainProblem::Malformed(Malformed::NoSeqPrefix))
        );
        // A leading zero, or seq 0, which no record has.
        for seq in ["07", "0"] {
            let line = framed(&format!(
                "{{\"seq\":{seq},\"prev_hash\":\"{hash}\",\"timestamp\":\"t\""
            ));
            assert_eq!(
                parse_line(&line),
                Err(ChainProblem::Malformed(Malformed::NoSeqPrefix))
            );
        }
    }

    #[test]
    fn an_escaped_kind_is_what_json_says_it_is() {
        let hash = "ab".repeat(32);
        let escaped = framed(&format!(
            "{{\"seq\":7,\"prev_hash\":\"{hash}\",\"timestamp\":\"t\",\"kind\":\"check\\u0070oint\""
        ));
        assert_eq!(parse_line(&escaped).unwrap().kind, Kind::Checkpoint);
    }

    #[test]
    fn a_hash_valid_line_that_is_not_one_json_object_without_repeated_keys_is_malformed() {
        let hash = "ab".repeat(32);
        let start = format!("{{\"seq\":7,\"prev_hash\":\"{hash}\",\"timestamp\":\"t\"");
        for body in [
            ",\"kind\":\"decision\",\"x\":[1,}",
            ",\"kind\":\"decision\",\"x\":tru",
            ",\"kind\":\"decision\",\"kind\":\"checkpoint\"",
            ",\"kind\":\"decision\",\"a\":{\"b\":1,\"\\u0062\":2}",
            "} {\"a\":1",
        ] {
            let line = framed(&format!("{start}{body}"));
            assert!(
                matches!(
                    parse_line(&line),
                    Err(ChainProblem::Malformed(Malformed::InvalidJson { .. }))
                ),
                "{}: {:?}",
                String::from_utf8_lossy(&line),
                parse_line(&line)
            );
        }
        let crlf = framed(&format!("{start},\"a\":\"x\ry\""));
        assert!(matches!(
            parse_line(&crlf),
            Err(ChainProblem::Malformed(Malformed::CarriageReturn { .. }))
        ));
    }

    #[test]
    fn a_seq_beyond_u64_is_malformed() {
        let hash = "ab".repeat(32);
        let line = framed(&format!(
            "{{\"seq\":18446744073709551616,\"prev_hash\":\"{hash}\",\"timestamp\":\"t\""
        ));
        assert!(matches!(
            parse_line(&line),
            Err(ChainProblem::Malformed(Malformed::InvalidJson { .. }))
        ));
    }

    #[test]
    fn a_wrong_hash_is_reported_before_anything_else() {
        let mut line = framed("{\"seq\":1");
        line[3] = b'x';
        assert_eq!(parse_line(&line), Err(ChainProblem::HashMismatch));
        assert_eq!(
            parse_line(b"{\"seq\":1}"),
            Err(ChainProblem::Malformed(Malformed::NotFramed))
        );
    }
}
