//! The one definition of a valid record line, shared by the verifier, the record reader and the
//! index, so that no reader takes a line another refuses.
//!
//! A valid line (without its newline) is at most [`MAX_RECORD_BYTES`] long with its newline,
//! holds no `\r`, ends with `,"hash":"<64 lowercase hex>"}` where the hash is the SHA-256 of the
//! bytes before `,"hash":"`, is UTF-8, starts with `{"seq":N,` where N is a decimal seq of at
//! least 1 without leading zeros, and parses as one JSON object with no key repeated in any
//! object.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Framed, MAX_RECORD_BYTES, RECORD_START, split_framed};
use crate::verify::{ChainProblem, Malformed};

/// Checks that `line` (without its newline) is a valid record line; returns its framing, whose
/// hash is then known to match.
pub(crate) fn check_record_line(line: &[u8]) -> Result<Framed<'_>, ChainProblem> {
    let malformed = |problem| Err(ChainProblem::Malformed(problem));
    // The limit counts the newline too.
    if line.len() >= MAX_RECORD_BYTES {
        return malformed(Malformed::TooLong {
            limit: MAX_RECORD_BYTES,
        });
    }
    let Some(framed) = split_framed(line) else {
        return malformed(Malformed::NotFramed);
    };
    if !framed.hash_matches() {
        return Err(ChainProblem::HashMismatch);
    }
    if let Some(column) = memchr::memchr(b'\r', line) {
        return malformed(Malformed::CarriageReturn { column: column + 1 });
    }
    if !line.is_ascii() {
        std::str::from_utf8(line).map_err(|e| ChainProblem::Malformed(Malformed::from_utf8(e)))?;
    }
    if !starts_with_seq(line) {
        return malformed(Malformed::NoSeqPrefix);
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let checked = Unique
        .deserialize_top(&mut de)
        .and_then(|()| de.end())
        .map_err(|error| ChainProblem::Malformed(Malformed::from_json(&error)));
    checked.map(|()| framed)
}

/// Whether the line starts with `{"seq":N,` with N at least 1, without leading zeros.
fn starts_with_seq(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(RECORD_START) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    matches!(rest.first(), Some(b'1'..=b'9')) && rest.get(digits) == Some(&b',')
}

/// A JSON value that is only checked: every object in it must name each key once.
struct Unique;

impl Unique {
    /// The whole line: one JSON object.
    fn deserialize_top<'de, D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(UniqueVisitor { top: true })
    }
}

impl<'de> de::DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(UniqueVisitor { top: false })
    }
}

struct UniqueVisitor {
    top: bool,
}

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.top {
            "a JSON object"
        } else {
            "a JSON value"
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys without escapes borrow from the line, so the set costs no copies.
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key `{}` appears twice in one object",
                    shown(&key)
                )));
            }
            seen.insert(key);
            map.next_value_seed(Unique)?;
        }
        Ok(())
    }
}

/// A key, borrowed from the line when it has no escapes.
struct Key;

impl<'de> de::DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Cow<'de, str>, D::Error> {
        de.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// At most 64 characters of an agent-controlled key, for a message.
fn shown(key: &str) -> String {
    let mut shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
    if key.chars().nth(64).is_some() {
        shown.push_str("...");
    }
    shown
}
