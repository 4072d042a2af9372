//! Text that reaches a person's terminal.
//!
//! An agent controls tool names, argument field names, tool error text, its own
//! output and its result, and a reviewer controls their reason. Printed raw, such
//! text can move the cursor, hide what follows (`ESC[8m`, conceal), reorder what
//! is shown (bidi controls) or hide characters (zero-width, tags), and so draw a
//! fake approval block or forge a table row. Everything printed from such a
//! source goes through [`escape`] (one line) or [`escape_lines`] (many lines):
//! every character a terminal would not show as itself becomes a visible
//! `\u{..}` escape, so what the operator reads is what the bytes say.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest text [`bounded`] shows by default, in characters after escaping.
pub const DISPLAY_CHARS: usize = 512;

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls, DEL,
/// line and paragraph separators, bidi controls, zero-width and other
/// invisible characters, variation selectors and tag characters.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            // soft hyphen, combining grapheme joiner, Arabic letter mark
            | '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            // Hangul and Khmer fillers and invisible vowels
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            // Mongolian variation selectors and vowel separator
            | '\u{180b}'..='\u{180f}'
            // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{200b}'..='\u{200f}'
            // line and paragraph separators, bidi embeddings and overrides
            | '\u{2028}'..='\u{202e}'
            // word joiner, invisible operators, bidi isolates, deprecated formats
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            // interlinear annotation
            | '\u{fff9}'..='\u{fffb}'
            | '\u{1d173}'..='\u{1d17a}'
            // tag characters and the variation selectors supplement
            | '\u{e0000}'..='\u{e007f}'
            | '\u{e0100}'..='\u{e01ef}'
    )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Writing to a String cannot fail.
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `text` on one line, with every unsafe character (see [`is_unsafe`]) and every
/// line break written as a visible escape (`\n`, `\t`, `\u{1b}`, `\u{202e}`).
/// Borrows when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`], then cut to `max_chars` characters; a cut text ends with
/// `… (N bytes in all)` so that a reader knows it is not the whole.
pub fn bounded(text: &str, max_chars: usize) -> String {
    let escaped = escape(text);
    match escaped.char_indices().nth(max_chars) {
        None => escaped.into_owned(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &escaped[..cut], text.len()),
    }
}

/// Multi-line `text` (an agent's output), each line escaped and preceded by
/// `prefix` so that nothing in it can pass for the host's own lines. A `\r\n`
/// ends a line like `\n`; a final line break adds no empty line.
pub fn escape_lines(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(prefix);
        out.push_str(&escape(line));
        out.push('\n');
    }
    out
}

/// One cell of a whitespace-separated table. A cell that is empty, starts with
/// a quote, or contains whitespace of any kind, a backslash or an unsafe
/// character, is written in double quotes, with `"` and `\` escaped by a
/// backslash and every whitespace other than a plain space and every unsafe
/// character escaped as in [`escape`]; any other cell as is (so
/// `Tool::"send_email"` stays readable). So a cell can neither look like two
/// cells nor hide what it holds, and a quoted cell is always one this function
/// quoted.
pub fn cell(text: &str) -> Cow<'_, str> {
    let plain = !text.is_empty()
        && !text.starts_with('"')
        && text
            .chars()
            .all(|c| !(c.is_whitespace() || c == '\\' || is_unsafe(c)));
    if plain {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push(' '),
            c if c.is_whitespace() || is_unsafe(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// A cell for an optional value: `-` for none, and a value that is itself `-`
/// quoted, so that the two cannot be confused.
pub fn cell_or_none(text: Option<&str>) -> Cow<'_, str> {
    match text {
        None => Cow::Borrowed("-"),
        Some("-") => Cow::Borrowed("\"-\""),
        Some(t) => cell(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "send_email to bob@example.com: ok, café, 東京";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_and_controls_become_visible() {
        assert_eq!(
            escape("a\u{1b}[8mhidden\u{1b}[0m"),
            "a\\u{1b}[8mhidden\\u{1b}[0m"
        );
        assert_eq!(escape("x\ny\r\tz"), "x\\ny\\r\\tz");
        assert_eq!(escape("\u{0}\u{7}\u{7f}"), "\\u{0}\\u{7}\\u{7f}");
        // C1: CSI (U+009B) starts an escape sequence on its own in some terminals.
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("\u{85}"), "\\u{85}");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{61c}',
        ] {
            let text = format!("evil{c}moc.elpmaxe");
            let shown = escape(&text);
            assert!(!shown.contains(c), "{c:?} passed: {shown}");
            assert!(
                shown.contains(&format!("\\u{{{:x}}}", u32::from(c))),
                "{shown}"
            );
        }
    }

    #[test]
    fn zero_width_and_invisible_characters_are_escaped() {
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{2061}',
            '\u{2064}',
            '\u{feff}',
            '\u{ad}',
            '\u{fe0f}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{e0100}',
            '\u{2028}',
            '\u{2029}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
            assert_eq!(escape(&c.to_string()), format!("\\u{{{:x}}}", u32::from(c)));
        }
        // Printable neighbours stay.
        for c in ['a', '~', '\u{a0}', 'é', '\u{2010}', '\u{e0080}', '\u{fe10}'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn bounded_text_is_cut_and_says_its_whole_size() {
        assert_eq!(bounded("short", 10), "short");
        let long = "x".repeat(100);
        assert_eq!(
            bounded(&long, 10),
            format!("{}… (100 bytes in all)", "x".repeat(10))
        );
        // The bound counts escaped characters: escapes cannot widen it.
        let shown = bounded(&"\u{1b}".repeat(1000), 20);
        assert!(!shown.contains('\u{1b}'));
        assert!(shown.starts_with("\\u{1b}\\u{1b}\\u{1b}"), "{shown}");
        assert!(shown.ends_with("… (1000 bytes in all)"), "{shown}");
        assert!(shown.chars().count() < 50, "{shown}");
    }

    #[test]
    fn lines_are_prefixed_and_escaped_one_by_one() {
        assert_eq!(
            escape_lines("one\r\n\u{1b}[8mtwo\n\nthree\n", "agent| "),
            "agent| one\nagent| \\u{1b}[8mtwo\nagent| \nagent| three\n"
        );
        assert_eq!(escape_lines("x", "> "), "> x\n");
    }

    #[test]
    fn a_cell_cannot_pass_for_two_cells_or_hide_characters() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("alice bob"), "\"alice bob\"");
        assert_eq!(cell("a\u{3000}b"), "\"a\\u{3000}b\"");
        assert_eq!(cell("a\u{a0}b"), "\"a\\u{a0}b\"");
        assert_eq!(cell("a\tb"), "\"a\\tb\"");
        assert_eq!(cell("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
        assert_eq!(cell("Tool::\"send_email\""), "Tool::\"send_email\"");
        assert_eq!(cell("\"x\""), "\"\\\"x\\\"\"");
        assert_eq!(cell("a\\b"), "\"a\\\\b\"");
        assert_eq!(cell("bob\u{200b}"), "\"bob\\u{200b}\"");
        assert_eq!(cell(""), "\"\"");
        assert_eq!(cell_or_none(None), "-");
        assert_eq!(cell_or_none(Some("-")), "\"-\"");
        assert_eq!(cell_or_none(Some("x y")), "\"x y\"");
    }
}
