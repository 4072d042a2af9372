//! The verifier: walks a log line by line and names the first record where the chain breaks.
//!
//! It needs nothing but the bytes: no policy engine, no runtime, no configuration. Lines are read
//! as bytes into one reused buffer, so a large log is never held in memory at once and invalid
//! UTF-8 is reported as a malformed record rather than a panic.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::chain::{FORMAT, GENESIS_HASH, LOG_START_KIND, RECORD_START, split_framed};
use super::error::{
    ChainBroken, ChainProblem, Malformed, NotALog, NotALogReason, ReadFailed, VerifyError,
    json_message,
};

/// What a log that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records, the opening `log_start` record included.
    pub records: u64,
    /// The last record's seq (equal to `records` in a log that verifies).
    pub head_seq: u64,
    /// The last record's hash. Keep it somewhere else to detect later truncation at a line
    /// boundary, which a chain alone cannot reveal.
    pub head_hash: String,
}

/// Verifies the audit log at `path`.
///
/// Errors name the file; see [`verify_reader`] for what is checked.
pub fn verify_file(path: &Path) -> Result<VerifyReport, VerifyError> {
    let file = File::open(path).map_err(|error| {
        VerifyError::Io(ReadFailed {
            path: Some(path.to_path_buf()),
            error,
        })
    })?;
    verify_reader(BufReader::new(file)).map_err(|error| error.with_path(path))
}

/// Verifies an audit log read from `reader`.
///
/// Line 1 must be a `log_start` record of format `mandate-audit/1` with seq 1 and a `prev_hash`
/// of 64 zeros. Every line must end with a newline, carry the SHA-256 of its own bytes in `hash`,
/// hold the previous seq plus one, and hold the previous record's hash in `prev_hash`. The first
/// line that does not is reported with its line number and the seq expected there.
///
/// ```
/// use mandate::audit::{NotALogReason, VerifyError, verify_reader};
///
/// let error = verify_reader(&b"hello\n"[..]).unwrap_err();
/// assert!(matches!(error, VerifyError::NotALog(ref e) if e.reason == NotALogReason::NotFramed));
/// assert_eq!(error.first_bad_seq(), None);
/// ```
pub fn verify_reader<R: BufRead>(mut reader: R) -> Result<VerifyReport, VerifyError> {
    let mut chain = Chain::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|error| VerifyError::Io(ReadFailed { path: None, error }))?;
        if read == 0 {
            break;
        }
        match buf.strip_suffix(b"\n") {
            Some(line) => chain.push(line, true)?,
            None => chain.push(&buf, false)?,
        }
    }
    chain.finish()
}

/// The fields every record carries besides its hash.
#[derive(Deserialize)]
struct RecordHead {
    seq: u64,
    prev_hash: String,
}

/// The fields that mark line 1 as the start of a Mandate audit log.
#[derive(Deserialize)]
struct LogStart {
    kind: Option<String>,
    format: Option<String>,
}

/// A line whose framing, own hash and JSON checked out; its links are not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

/// Checks one line (without its newline) on its own: framing, hash, then JSON.
pub(crate) fn check_record(line: &[u8]) -> Result<Record, ChainProblem> {
    let framed = split_framed(line).ok_or(ChainProblem::Malformed(Malformed::NotFramed))?;
    if !framed.hash_matches() {
        return Err(ChainProblem::HashMismatch);
    }
    // serde_json skips ignored strings without checking their UTF-8, so check it here.
    let text = std::str::from_utf8(line)
        .map_err(|error| ChainProblem::Malformed(Malformed::from_utf8(error)))?;
    let head: RecordHead = serde_json::from_str(text)
        .map_err(|error| ChainProblem::Malformed(Malformed::from_json(&error)))?;
    Ok(Record {
        seq: head.seq,
        prev_hash: head.prev_hash,
        hash: framed.hash.to_owned(),
    })
}

/// The state of a walk along the chain: how many lines were seen and the last good record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    line: u64,
    seq: u64,
    hash: String,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            line: 0,
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl Chain {
    /// Checks the next line (without its newline) against the chain so far and advances.
    /// `terminated` says whether the line ended with a newline.
    pub(crate) fn push(&mut self, line: &[u8], terminated: bool) -> Result<(), VerifyError> {
        self.line += 1;
        let record = if self.line == 1 {
            check_first(line, terminated)?
        } else {
            let Some(expected) = self.seq.checked_add(1) else {
                return Err(self.broken(u64::MAX, ChainProblem::SeqExhausted));
            };
            if !terminated {
                return Err(self.broken(expected, ChainProblem::TornTail));
            }
            let record = check_record(line).map_err(|problem| self.broken(expected, problem))?;
            if record.seq != expected {
                let problem = ChainProblem::SeqOutOfOrder {
                    expected,
                    found: record.seq,
                };
                return Err(self.broken(expected, problem));
            }
            record
        };
        if record.prev_hash != self.hash {
            let problem = ChainProblem::PrevHashMismatch {
                expected: self.hash.clone(),
                found: record.prev_hash,
            };
            return Err(self.broken(record.seq, problem));
        }
        self.seq = record.seq;
        self.hash = record.hash;
        Ok(())
    }

    /// Ends the walk: a log holds at least its `log_start` record.
    pub(crate) fn finish(self) -> Result<VerifyReport, VerifyError> {
        if self.line == 0 {
            return Err(not_a_log(NotALogReason::Empty));
        }
        Ok(VerifyReport {
            records: self.line,
            head_seq: self.seq,
            head_hash: self.hash,
        })
    }

    fn broken(&self, seq: u64, problem: ChainProblem) -> VerifyError {
        VerifyError::Broken(ChainBroken {
            path: None,
            line: self.line,
            seq,
            problem,
        })
    }
}

/// Checks line 1. A line that is not a record at all, or a record that is not a Mandate
/// `log_start`, means the input is not an audit log; a recognisable record that fails its own
/// hash, seq or (later) `prev_hash` means it is an audit log whose chain is broken at seq 1.
fn check_first(line: &[u8], terminated: bool) -> Result<Record, VerifyError> {
    let broken = |problem| {
        VerifyError::Broken(ChainBroken {
            path: None,
            line: 1,
            seq: 1,
            problem,
        })
    };
    if !terminated {
        // A log cut short inside its first record still starts like one.
        return if line.starts_with(RECORD_START) || RECORD_START.starts_with(line) {
            Err(broken(ChainProblem::TornTail))
        } else {
            Err(not_a_log(NotALogReason::NotFramed))
        };
    }
    let framed = split_framed(line).ok_or_else(|| not_a_log(NotALogReason::NotFramed))?;
    let invalid_json = |error: serde_json::Error| {
        not_a_log(NotALogReason::InvalidJson {
            message: json_message(&error),
        })
    };
    let text = std::str::from_utf8(line).map_err(|error| {
        not_a_log(NotALogReason::InvalidJson {
            message: Malformed::from_utf8(error).to_string(),
        })
    })?;
    let head: RecordHead = serde_json::from_str(text).map_err(invalid_json)?;
    if !framed.hash_matches() {
        return Err(broken(ChainProblem::HashMismatch));
    }
    if head.seq != 1 {
        return Err(broken(ChainProblem::SeqOutOfOrder {
            expected: 1,
            found: head.seq,
        }));
    }
    let start: LogStart = serde_json::from_str(text).map_err(invalid_json)?;
    if start.kind.as_deref() != Some(LOG_START_KIND) {
        return Err(not_a_log(NotALogReason::NotLogStart { found: start.kind }));
    }
    if start.format.as_deref() != Some(FORMAT) {
        return Err(not_a_log(NotALogReason::UnknownFormat {
            found: start.format,
        }));
    }
    Ok(Record {
        seq: head.seq,
        prev_hash: head.prev_hash,
        hash: framed.hash.to_owned(),
    })
}

fn not_a_log(reason: NotALogReason) -> VerifyError {
    VerifyError::NotALog(NotALog { path: None, reason })
}
