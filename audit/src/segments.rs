//! The on-disk layout of an audit log: a directory of segments, each a JSON
//! Lines file named by the seq of its first record, the chain running on from
//! one segment into the next.
//!
//! ```text
//! <log>/segment-00000000000000000001.jsonl   first segment, starts with log_start
//! <log>/segment-00000000000000004711.jsonl   next segment, starts with segment_start
//! <log>/checkpoints.jsonl                    signed checkpoints, to ship elsewhere
//! <log>/index.sqlite                         query index, derived, rebuildable
//! <log>/torn/                                torn tails set aside by crash repair
//! ```

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::chain::MAX_RECORD_BYTES;

/// File name prefix of a segment.
pub const SEGMENT_PREFIX: &str = "segment-";
/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".jsonl";
/// Record kind that opens every segment after the first.
pub const SEGMENT_START_KIND: &str = "segment_start";
/// Folder, inside the log directory, where torn tails are set aside.
pub const TORN_DIR: &str = "torn";
/// File name of the query index inside the log directory. It lives here, with the rest of the
/// layout, because the writer must know it without the index (a verifier-only build has none).
pub const INDEX_FILE: &str = "index.sqlite";
/// Name of the file the writer locks, inside the (private) log directory: another user can
/// neither open it nor the directory, so cannot hold the lock to keep the writer out.
pub const LOCK_FILE: &str = "writer.lock";

/// The file name of the segment whose first record has `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// The seq of its first record, from its name.
    pub first_seq: u64,
}

/// The segments of the log directory `dir`, oldest first. Files that are not
/// segments are ignored.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
        else {
            continue;
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(first_seq) = digits.parse() else {
            continue;
        };
        if entry.file_type()?.is_file() {
            segments.push(Segment {
                path: entry.path(),
                first_seq,
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Reads the seq from the fixed prefix every record line starts with,
/// `{"seq":N,`, without parsing the JSON.
pub fn line_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(br#"{"seq":"#)?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    if end == 0 || rest.get(end) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

/// Reads the records of a log in order, across segments, one line at a
/// time. It does not verify; run the verifier for that.
pub struct RecordReader {
    segments: std::vec::IntoIter<Segment>,
    current: Option<(PathBuf, BufReader<std::fs::File>)>,
    line: u64,
}

/// One record line as read, without its newline.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The segment it is in.
    pub segment: PathBuf,
    /// 1-based line number within the segment.
    pub line: u64,
    /// The seq read from the line's prefix, if it has one.
    pub seq: Option<u64>,
    /// The line's bytes.
    pub bytes: Vec<u8>,
    /// Whether the line ended with its newline. The last line of a log the
    /// writer is appending to may not have yet; nor does a torn one.
    pub terminated: bool,
}

impl RawRecord {
    /// Checks the line against the one definition of a valid record line that the verifier
    /// and the index apply too (hash, framing, UTF-8, seq prefix, one JSON object without
    /// repeated keys, [`MAX_RECORD_BYTES`]).
    pub fn check(&self) -> Result<(), crate::verify::ChainProblem> {
        super::chain::check_record_line(&self.bytes).map(|_| ())
    }

    /// The line's recorded hash (64 lowercase hex digits), after the same
    /// check as [`RawRecord::check`]: a line whose hash does not match is refused.
    pub fn checked_hash(&self) -> Result<&str, crate::verify::ChainProblem> {
        super::chain::check_record_line(&self.bytes).map(|framed| framed.hash)
    }
}

impl RecordReader {
    /// Reads the log at `path`: a log directory, or a single segment file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_from(path, 1)
    }

    /// Reads the log at `path` from the segment that holds `seq` on: the
    /// segments wholly before it are not opened (the records read first may
    /// still come before `seq`). For a reader that resumes, such as shipping.
    pub fn open_from(path: &Path, seq: u64) -> std::io::Result<Self> {
        let mut segments = if path.is_dir() {
            list_segments(path)?
        } else {
            vec![Segment {
                path: path.to_path_buf(),
                first_seq: 1,
            }]
        };
        // The last segment starting at or before `seq` holds it, if any does.
        let skip = segments
            .iter()
            .rposition(|segment| segment.first_seq <= seq)
            .unwrap_or(0);
        segments.drain(..skip);
        Ok(RecordReader {
            segments: segments.into_iter(),
            current: None,
            line: 0,
        })
    }
}

impl Iterator for RecordReader {
    type Item = std::io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let segment = self.segments.next()?;
                match std::fs::File::open(&segment.path) {
                    Ok(f) => self.current = Some((segment.path, BufReader::new(f))),
                    Err(e) => return Some(Err(e)),
                }
                self.line = 0;
            }
            let (path, reader) = self.current.as_mut()?;
            let mut bytes = Vec::new();
            // The one record limit all readers share: a longer line is refused, not buffered.
            match (&mut *reader)
                .take(MAX_RECORD_BYTES as u64)
                .read_until(b'\n', &mut bytes)
            {
                Ok(0) => self.current = None,
                Ok(_) if bytes.len() >= MAX_RECORD_BYTES && bytes.last() != Some(&b'\n') => {
                    let error = std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "`{}` line {}: malformed record: the line is longer than {MAX_RECORD_BYTES} bytes with its newline",
                            path.display(),
                            self.line + 1
                        ),
                    );
                    // Nothing after an unreadable line is read: its end is not known.
                    self.current = None;
                    self.segments = Vec::new().into_iter();
                    return Some(Err(error));
                }
                Ok(_) => {
                    self.line += 1;
                    let terminated = bytes.last() == Some(&b'\n');
                    if terminated {
                        bytes.pop();
                    }
                    return Some(Ok(RawRecord {
                        segment: path.clone(),
                        line: self.line,
                        seq: line_seq(&bytes),
                        bytes,
                        terminated,
                    }));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_first_seq_and_others_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [100u64, 1, 20] {
            std::fs::write(dir.path().join(segment_name(seq)), b"").unwrap();
        }
        std::fs::write(dir.path().join("checkpoints.jsonl"), b"").unwrap();
        std::fs::write(dir.path().join("segment-12.jsonl"), b"").unwrap();
        let seqs: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(seqs, vec![1, 20, 100]);
    }

    #[test]
    fn the_seq_is_read_from_the_line_prefix() {
        assert_eq!(line_seq(br#"{"seq":42,"prev_hash":"x"}"#), Some(42));
        assert_eq!(line_seq(br#"{"seq":,"#), None);
        assert_eq!(line_seq(br#"{"seq":4x"#), None);
        assert_eq!(line_seq(b"garbage"), None);
    }

    #[test]
    fn a_reader_from_a_seq_skips_the_segments_before_it_and_says_what_is_unterminated() {
        let dir = tempfile::tempdir().unwrap();
        let line = |seq: u64| format!("{{\"seq\":{seq},\"x\":1}}\n");
        std::fs::write(dir.path().join(segment_name(1)), line(1) + &line(2)).unwrap();
        std::fs::write(dir.path().join(segment_name(3)), line(3) + &line(4)).unwrap();
        // The writer is in the middle of seq 6.
        std::fs::write(
            dir.path().join(segment_name(5)),
            line(5) + "{\"seq\":6,\"x\"",
        )
        .unwrap();
        let read = |from| -> Vec<(Option<u64>, bool)> {
            RecordReader::open_from(dir.path(), from)
                .unwrap()
                .map(|r| r.map(|r| (r.seq, r.terminated)).unwrap())
                .collect()
        };
        assert_eq!(read(1).len(), 6);
        assert_eq!(read(4)[0], (Some(3), true), "from the segment holding 4");
        assert_eq!(read(5), vec![(Some(5), true), (Some(6), false)]);
        assert_eq!(read(99).len(), 2, "past the end: the last segment");
        assert_eq!(read(0).len(), 6);
    }
}
