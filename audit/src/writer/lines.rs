//! Reading back what the writer needs of existing records: the fields of one line, checked on
//! its own (framing, hash, JSON), and the last line of a file without reading all of it.
//!
//! This is deliberately not the verifier: opening a log only has to find the end of the active
//! segment and make sure the chain it extends is intact there. `mandate audit verify` checks the
//! whole log.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use jiff::Timestamp;
use serde::Deserialize;

use super::super::chain::split_framed;
use super::super::error::Damage;

/// The fields of a record line the writer looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) seq: u64,
    pub(super) prev_hash: String,
    pub(super) hash: String,
    pub(super) timestamp: Option<Timestamp>,
    pub(super) kind: Option<String>,
    pub(super) format: Option<String>,
    /// `repair` records: the segment repaired and where its torn bytes went.
    pub(super) segment: Option<String>,
    pub(super) set_aside: Option<String>,
}

#[derive(Deserialize)]
struct Fields {
    seq: u64,
    prev_hash: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    segment: Option<serde_json::Value>,
    #[serde(default)]
    set_aside: Option<serde_json::Value>,
}

/// Checks one line (without its newline): it must end with a hash that matches its bytes and
/// be a JSON object with `seq` and `prev_hash`.
pub(super) fn parse_line(line: &[u8]) -> Result<Line, Damage> {
    let framed = split_framed(line).ok_or(Damage::NotFramed)?;
    if !framed.hash_matches() {
        return Err(Damage::HashMismatch);
    }
    let text = std::str::from_utf8(line).map_err(|error| Damage::InvalidJson {
        message: format!("invalid UTF-8 at column {}", error.valid_up_to() + 1),
    })?;
    let fields: Fields = serde_json::from_str(text).map_err(|error| Damage::InvalidJson {
        message: error.to_string(),
    })?;
    let text_field = |value: Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Line {
        seq: fields.seq,
        prev_hash: fields.prev_hash,
        hash: framed.hash.to_owned(),
        timestamp: fields.timestamp.and_then(|t| t.parse().ok()),
        kind: fields.kind,
        format: fields.format,
        segment: text_field(fields.segment),
        set_aside: text_field(fields.set_aside),
    })
}

/// Where the whole lines of a file of `len` bytes end: just after its last newline, ignoring
/// trailing NUL bytes (what a crash can leave where the file grew but the data never landed).
/// Everything from there on is a torn tail.
pub(super) fn whole_lines_end(file: &File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 8 * 1024;
    let mut reader = file;
    let mut end = len;
    let mut skipping_nuls = true;
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        chunk.resize(usize::try_from(end - start).map_err(io::Error::other)?, 0);
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut chunk)?;
        for (offset, byte) in chunk.iter().enumerate().rev() {
            if skipping_nuls && *byte == 0 {
                continue;
            }
            skipping_nuls = false;
            if *byte == b'\n' {
                return Ok(start + offset as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// The last whole line of a file (without its newline), or `None` when the file is empty.
/// Fails with [`Damage::Torn`] when the file does not end with a newline.
pub(super) fn last_line(file: &File) -> io::Result<Result<Option<Vec<u8>>, Damage>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Ok(None));
    }
    let end = whole_lines_end(file, len)?;
    if end != len {
        return Ok(Err(Damage::Torn));
    }
    // The newline before the last line: search the file up to the last newline.
    let before = whole_lines_end(file, end - 1)?;
    let mut line = vec![0u8; usize::try_from(end - 1 - before).map_err(io::Error::other)?];
    let mut reader = file;
    reader.seek(SeekFrom::Start(before))?;
    reader.read_exact(&mut line)?;
    Ok(Ok(Some(line)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(bytes).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file)
    }

    #[test]
    fn whole_lines_end_after_the_last_newline_and_before_trailing_nuls() {
        for (bytes, expected) in [
            (&b""[..], 0),
            (b"abc", 0),
            (b"a\n", 2),
            (b"a\nbc", 2),
            (b"a\nb\n", 4),
            (b"a\nb\n\0\0\0", 4),
            (b"a\nbc\0\0", 2),
            (b"\0\0", 0),
        ] {
            let (_tmp, file) = file_with(bytes);
            let len = bytes.len() as u64;
            assert_eq!(whole_lines_end(&file, len).unwrap(), expected, "{bytes:?}");
        }
        // Across chunk boundaries.
        let mut long = vec![b'x'; 20_000];
        long.push(b'\n');
        long.extend(vec![b'y'; 10_000]);
        long.extend(vec![0u8; 9_000]);
        let (_tmp, file) = file_with(&long);
        assert_eq!(whole_lines_end(&file, long.len() as u64).unwrap(), 20_001);
    }

    #[test]
    fn the_last_line_is_read_without_its_newline() {
        let (_tmp, file) = file_with(b"first\nsecond\n");
        assert_eq!(last_line(&file).unwrap(), Ok(Some(b"second".to_vec())));
        let (_tmp, file) = file_with(b"only\n");
        assert_eq!(last_line(&file).unwrap(), Ok(Some(b"only".to_vec())));
        let (_tmp, file) = file_with(b"first\nsec");
        assert_eq!(last_line(&file).unwrap(), Err(Damage::Torn));
        let (_tmp, file) = file_with(b"");
        assert_eq!(last_line(&file).unwrap(), Ok(None));
    }
}
