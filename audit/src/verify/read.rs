//! Reading an input as lines, in large chunks, without copying a line unless it straddles two
//! reads.

use std::io::{self, Read};

use super::error::VerifyError;
use crate::chain::MAX_RECORD_BYTES;

/// Bytes asked for per read: large enough that system calls cost nothing next to hashing.
pub(super) const CHUNK: usize = 1 << 20;

/// The longest line held: one more than a record may be, so that a longer line is seen whole
/// enough to be refused, without holding unbounded memory.
pub(super) const MAX_LINE: usize = MAX_RECORD_BYTES;

/// Why reading lines stopped early.
pub(super) enum Stop {
    /// The input could not be read.
    Io(io::Error),
    /// A line is longer than [`MAX_LINE`].
    TooLong,
    /// The line callback refused a line.
    Line(VerifyError),
}

/// The size of read buffer to use for inputs of at most `len` bytes: no larger than needed
/// to read a small input at once, no larger than [`CHUNK`].
pub(super) fn buffer_size(len: u64) -> usize {
    usize::try_from(len.saturating_add(1))
        .unwrap_or(CHUNK)
        .clamp(4096, CHUNK)
}

/// Calls `on_line(line, terminated)` for every line of `input` (without its newline;
/// `terminated` is false only for a last line that has none), and `on_read(n)` after every
/// read of `n` bytes. `buf` is the reusable read buffer, whose length is the size of a read;
/// it grows only for a line longer than it.
///
/// A line longer than [`MAX_LINE`] stops the read with [`Stop::TooLong`]; see
/// [`for_each_line_skipping`] to go on after it.
pub(super) fn for_each_line(
    input: impl Read,
    buf: &mut Vec<u8>,
    on_read: impl FnMut(u64),
    on_line: impl FnMut(&[u8], bool) -> Result<(), VerifyError>,
) -> Result<(), Stop> {
    for_each_line_skipping(input, buf, on_read, on_line, || Err(Stop::TooLong))
}

/// [`for_each_line`], but a line longer than [`MAX_LINE`] calls `on_too_long()` instead of
/// stopping (unless it fails); the rest of that line is skipped unread, and reading goes on
/// with the line after it, so that one oversized line cannot hide what follows.
pub(super) fn for_each_line_skipping(
    mut input: impl Read,
    buf: &mut Vec<u8>,
    mut on_read: impl FnMut(u64),
    mut on_line: impl FnMut(&[u8], bool) -> Result<(), VerifyError>,
    mut on_too_long: impl FnMut() -> Result<(), Stop>,
) -> Result<(), Stop> {
    if buf.is_empty() {
        buf.resize(buffer_size(u64::MAX), 0);
    }
    // `buf[start..end]` holds unread input; no newline lies in `buf[start..scan]`. While
    // `skipping`, the bytes up to the next newline belong to an oversized line and are dropped.
    let (mut start, mut scan, mut end) = (0, 0, 0);
    let mut skipping = false;
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                (scan, end) = (scan - start, end - start);
                start = 0;
            } else if buf.len() >= MAX_LINE {
                if !skipping {
                    on_too_long()?;
                }
                skipping = true;
                (start, scan, end) = (0, 0, 0);
            } else {
                buf.resize(buf.len().saturating_mul(2).min(MAX_LINE), 0);
            }
        }
        let free = buf.get_mut(end..).unwrap_or_default();
        let read = match input.read(free) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Stop::Io(error)),
        };
        on_read(read as u64);
        end += read;
        let filled = buf.get(..end).unwrap_or_default();
        for newline in memchr::memchr_iter(b'\n', filled.get(scan..).unwrap_or_default()) {
            let newline = scan + newline;
            if skipping {
                skipping = false;
            } else {
                let line = filled.get(start..newline).unwrap_or_default();
                on_line(line, true).map_err(Stop::Line)?;
            }
            start = newline + 1;
        }
        scan = end;
    }
    if skipping {
        // The oversized line was also the last, without a newline: already reported.
        return Ok(());
    }
    if start < end {
        let rest = buf.get(start..end).unwrap_or_default();
        on_line(rest, false).map_err(Stop::Line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], buf_len: usize) -> Vec<(Vec<u8>, bool)> {
        let mut buf = vec![0; buf_len];
        assert!(buf_len > 0);
        let mut seen = Vec::new();
        let mut read = 0;
        for_each_line(
            input,
            &mut buf,
            |n| read += n,
            |line, terminated| {
                seen.push((line.to_vec(), terminated));
                Ok(())
            },
        )
        .map_err(|_| ())
        .unwrap();
        assert_eq!(read, input.len() as u64);
        seen
    }

    #[test]
    fn lines_split_at_newlines_and_a_last_line_without_one_is_marked() {
        let got = lines(b"a\n\nbc\nd", 2);
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"a".to_vec(), true),
            (b"".to_vec(), true),
            (b"bc".to_vec(), true),
            (b"d".to_vec(), false),
        ];
        assert_eq!(got, want);
        assert!(lines(b"", CHUNK).is_empty());
    }

    #[test]
    fn lines_longer_than_a_chunk_are_whole() {
        let long = vec![b'x'; CHUNK * 2 + 17];
        let mut input = long.clone();
        input.push(b'\n');
        input.extend_from_slice(b"short\n");
        let got = lines(&input, 4096);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, long);
        assert_eq!(got[1].0, b"short");
    }
}
