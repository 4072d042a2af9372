//! Bounds on the strings an agent controls, applied before they reach a
//! record or go back to the agent.
//!
//! The agent is untrusted: a tool name, an error text or a result it hands
//! the host may be megabytes long and hold terminal escapes. A record keeps
//! a bounded form and, when that is not the whole string, the whole
//! string's size and SHA-256 (a [`Truncated`] beside the field, named
//! `<field>_truncated`), so an auditor holding the original can still match
//! it. The bounds are in [`crate::limits`].

use serde::Serialize;

use crate::limits::{RECORDED_TEXT_BYTES, TOOL_NAME_BYTES};

pub use crate::audit::record::Truncated;

/// Marks where a bounded form stops short of the whole string.
const ELLIPSIS: &str = "…";

/// Whether `name` could be a registered tool's name: 1 to
/// [`TOOL_NAME_BYTES`] bytes of ASCII letters, digits, `_`, `-` and `.`.
pub fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOOL_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A tool name as the agent gave it, bounded: itself when it is a possible
/// tool name, else its first characters with every character outside the
/// alphabet written as `\u{..}`, and the whole name's size and digest. No
/// such name can be a registered tool, so nothing else needs it whole.
pub fn tool_name(name: &str) -> (String, Option<Truncated>) {
    if is_tool_name(name) {
        return (name.to_string(), None);
    }
    let mut shown = String::new();
    let mut complete = true;
    for (taken, c) in name.chars().enumerate() {
        if taken == TOOL_NAME_BYTES {
            complete = false;
            break;
        }
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
            shown.push(c);
        } else {
            shown.extend(c.escape_unicode());
        }
    }
    if !complete {
        shown.push_str(ELLIPSIS);
    }
    (shown, Some(Truncated::of(name)))
}

/// `text` cut to at most [`RECORDED_TEXT_BYTES`] bytes (on a character
/// boundary, ending in `…`), and the whole text's size and digest when it
/// was cut.
pub fn text(text: &str) -> (String, Option<Truncated>) {
    if text.len() <= RECORDED_TEXT_BYTES {
        return (text.to_string(), None);
    }
    (cut(text), Some(Truncated::of(text)))
}

/// `text` cut to at most [`RECORDED_TEXT_BYTES`] bytes, for what goes back
/// to the agent or to an observer (the record keeps the digest).
pub fn cut(text: &str) -> String {
    if text.len() <= RECORDED_TEXT_BYTES {
        return text.to_string();
    }
    let mut end = RECORDED_TEXT_BYTES - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

/// The number of bytes `value` takes as JSON text, without building it.
pub fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; were serialization to, the value
    // counts as too large, which refuses it.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// A JSON object `{ <field>: text, <field>_truncated: .. }` part: inserts
/// the bounded `text` under `field` and, when cut, its [`Truncated`].
pub fn insert_text(map: &mut serde_json::Map<String, serde_json::Value>, field: &str, whole: &str) {
    let (shown, truncated) = text(whole);
    map.insert(field.to_string(), serde_json::Value::String(shown));
    if let Some(t) = truncated {
        map.insert(
            format!("{field}_truncated"),
            serde_json::json!({ "bytes": t.bytes, "sha256": t.sha256 }),
        );
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn a_possible_tool_name_is_kept_whole() {
        assert_eq!(tool_name("send_email"), ("send_email".to_string(), None));
    }

    #[test]
    fn a_name_outside_the_alphabet_is_escaped_and_digested() {
        let (shown, t) = tool_name("a\u{1b}[8mb");
        assert_eq!(shown, "a\\u{1b}\\u{5b}8mb");
        assert_eq!(t.unwrap().bytes, 6);
    }

    #[test]
    fn a_long_name_is_cut_with_its_size_and_digest() {
        let name = "x".repeat(1000);
        let (shown, t) = tool_name(&name);
        assert_eq!(shown, format!("{}…", "x".repeat(TOOL_NAME_BYTES)));
        let t = t.unwrap();
        assert_eq!(t.bytes, 1000);
        assert_eq!(t.sha256, hex::encode(Sha256::digest(name.as_bytes())));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let whole = "é".repeat(RECORDED_TEXT_BYTES);
        let (shown, t) = text(&whole);
        assert!(shown.len() <= RECORDED_TEXT_BYTES);
        assert!(shown.ends_with(ELLIPSIS));
        assert_eq!(t.unwrap().bytes, whole.len());
        assert_eq!(text("short"), ("short".to_string(), None));
    }

    #[test]
    fn json_len_counts_the_escaped_text() {
        let v = serde_json::json!({ "a": "\u{1}" });
        assert_eq!(json_len(&v), serde_json::to_string(&v).unwrap().len());
    }
}
