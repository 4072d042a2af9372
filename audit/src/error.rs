//! Typed errors for writing ([`AuditError`]) and verifying ([`VerifyError`]) audit logs.
//!
//! Messages are lowercase, have no final period and name the file (in backticks) and the line or
//! seq at fault. Underlying errors are part of the message and kept in a public field rather than
//! exposed as [`std::error::Error::source`], so that a report chain does not print them twice.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::verify::{
    CheckpointFileError, CheckpointProblem, CutShort, RetentionProblem, Rewritten, SegmentProblem,
    UnexplainedStart,
};

/// Why an audit record could not be appended, or a log could not be opened for appending.
///
/// Errors about one segment name that segment's file; the others name the log directory.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log directory could not be created, opened or locked, or a segment file in it could
    /// not be created or opened.
    #[error("cannot open audit log `{}`: {error}", path.display())]
    Open {
        /// The log directory or segment file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// Another [`AuditLog`](super::AuditLog), in this process or another, is appending to the log.
    #[error("audit log `{}` is already open for appending elsewhere", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The path names a file, but a log is a directory of segment files.
    #[error(
        "cannot open audit log `{}`: it is a file, but an audit log is a directory of segment files; \
         to keep appending to a log written as a single file, move it to `<dir>/segment-00000000000000000001.jsonl` \
         and open `<dir>`",
        path.display()
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The existing log could not be read to find where it ends.
    #[error("cannot read audit log `{}`: {error}", path.display())]
    Read {
        /// The log directory or segment file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The last whole record of the active segment does not match its hash. A crash tears a
    /// record short (that is repaired on open); it does not change a complete one, so the log
    /// was altered and the writer refuses to extend it.
    #[error(
        "refusing to append to audit log segment `{}`: its last record (line {line}, seq {seq}) does not \
         match its hash, so it was altered after it was written, which a crash cannot do; \
         check the log with `mandate audit verify` and restore it from a copy",
        path.display()
    )]
    Tampered {
        /// The segment file.
        path: PathBuf,
        /// The 1-based line in the segment.
        line: u64,
        /// The seq expected on that line.
        seq: u64,
    },
    /// The log is damaged before its last record, or its segments do not join up; appending
    /// would hide the damage, so the writer refuses.
    #[error(
        "refusing to append to audit log segment `{}`: line {line} (seq {seq}) {problem}; \
         check the log with `mandate audit verify`",
        path.display()
    )]
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// The 1-based line in the segment.
        line: u64,
        /// The seq expected on that line.
        seq: u64,
        /// What is wrong.
        problem: Damage,
    },
    /// `checkpoints.jsonl` holds a checkpoint signed with the writer's key for a record the log
    /// no longer holds: records it vouched for were removed, or the log was cut short.
    #[error(
        "refusing to append to audit log `{}`: `checkpoints.jsonl` holds a signed checkpoint for \
         seq {seq}, but the log no longer holds that record, so records were removed or the log \
         was cut short; check the log with `mandate audit verify`",
        path.display()
    )]
    CheckpointedRecordMissing {
        /// The log directory.
        path: PathBuf,
        /// The seq the checkpoint vouches for.
        seq: u64,
    },
    /// The directory holds what a log leaves next to its segments (checkpoints, torn tails, an
    /// index) but no segment file: the records were removed, and starting afresh would hide it.
    #[error(
        "refusing to start a new audit log in `{}`: it holds `checkpoints.jsonl`, `torn/` or \
         `index.sqlite` but no segment files, so the records of the log that was there were removed",
        path.display()
    )]
    SegmentsMissing {
        /// The log directory.
        path: PathBuf,
    },
    /// Writing or syncing failed. What was written of the batch was truncated away, so the log is
    /// intact and its head did not advance. Appends are refused until a write succeeds again.
    #[error(
        "cannot write audit log segment `{}`: {error}; nothing was recorded, and appends are refused \
         until the log can be written again",
        path.display()
    )]
    Write {
        /// The segment file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// Writing or syncing failed and truncating the partial records away failed too. Appends are
    /// refused; each later append tries the truncation again first.
    #[error(
        "cannot write audit log segment `{}`: {error}; removing the partial record also failed \
         ({rollback}), so appends are refused until it can be removed",
        path.display()
    )]
    WriteUnrecovered {
        /// The segment file.
        path: PathBuf,
        /// Why the write or sync failed.
        error: io::Error,
        /// Why truncating back to the last whole record failed.
        rollback: io::Error,
    },
    /// The active segment's name no longer exists: the file was deleted or moved away.
    #[error(
        "audit log segment `{}` was removed or moved away underneath the writer; refusing to append \
         until it is restored (move the same file back)",
        path.display()
    )]
    SegmentRemoved {
        /// The segment file.
        path: PathBuf,
    },
    /// The active segment's name now leads to another file.
    #[error(
        "audit log segment `{}` was replaced underneath the writer by another file; refusing to append \
         until the original is restored (move the same file back)",
        path.display()
    )]
    SegmentReplaced {
        /// The segment file.
        path: PathBuf,
    },
    /// Something other than the writer wrote to or truncated the active segment.
    #[error(
        "audit log segment `{}` was changed underneath the writer: it holds {found} bytes but the \
         writer wrote {expected}; refusing to append until it is restored",
        path.display()
    )]
    SegmentChanged {
        /// The segment file.
        path: PathBuf,
        /// The length the writer wrote.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// The record body cannot be written as record fields. Nothing was written.
    #[error("cannot append to audit log `{}`: {error}", path.display())]
    Body {
        /// The log directory.
        path: PathBuf,
        /// What is wrong with the body.
        error: BodyError,
    },
    /// The log already holds a record with the largest possible seq.
    #[error("audit log `{}` has no seq left after {}", path.display(), u64::MAX)]
    SeqExhausted {
        /// The log directory.
        path: PathBuf,
    },
    /// The log was closed; nothing more can be appended through this handle.
    #[error("audit log `{}` is closed", path.display())]
    Closed {
        /// The log directory.
        path: PathBuf,
    },
    /// The writer thread is gone without answering; whether the record was written is unknown
    /// until the log is reopened.
    #[error("the writer of audit log `{}` stopped unexpectedly; reopen the log", path.display())]
    WriterStopped {
        /// The log directory.
        path: PathBuf,
    },
}

impl AuditError {
    /// The log directory or segment file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. }
            | Self::Locked { path }
            | Self::NotADirectory { path }
            | Self::Read { path, .. }
            | Self::Tampered { path, .. }
            | Self::Damaged { path, .. }
            | Self::SegmentsMissing { path }
            | Self::CheckpointedRecordMissing { path, .. }
            | Self::Write { path, .. }
            | Self::WriteUnrecovered { path, .. }
            | Self::SegmentRemoved { path }
            | Self::SegmentReplaced { path }
            | Self::SegmentChanged { path, .. }
            | Self::Body { path, .. }
            | Self::SeqExhausted { path }
            | Self::Closed { path }
            | Self::WriterStopped { path } => path,
        }
    }
}

/// What is wrong where the writer refuses to extend a log (see [`AuditError::Damaged`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The line does not end with `,"hash":"<64 lowercase hex>"}`.
    #[error("is not a record: it does not end with a `hash` field")]
    NotFramed,
    /// The recorded hash is not the hash of the line's bytes.
    #[error("does not match its hash: the record was altered")]
    HashMismatch,
    /// The line is not a JSON object with `seq` and `prev_hash`.
    #[error("is not a record: {message}")]
    InvalidJson {
        /// What the parser said.
        message: String,
    },
    /// The line holds another seq than the one after the record before it.
    #[error("holds seq {found}: a record was deleted, inserted or reordered")]
    SeqOutOfOrder {
        /// The seq the line holds.
        found: u64,
    },
    /// The line's `prev_hash` is not the hash of the record before it.
    #[error("has `prev_hash` `{found}` but the record before it has hash `{expected}`")]
    PrevHashMismatch {
        /// The hash of the record before it.
        expected: String,
        /// The `prev_hash` the line holds.
        found: String,
    },
    /// A segment does not start with the record it must start with.
    #[error("is {}, but a segment starts with a `{expected}` record", match found {
        Some(kind) => format!("a `{kind}` record"),
        None => "a record without a `kind`".to_owned(),
    })]
    WrongStart {
        /// `log_start` or `segment_start`.
        expected: &'static str,
        /// The kind found.
        found: Option<String>,
    },
    /// The first record declares another format than `mandate-audit/1`.
    #[error("declares format {}, expected `mandate-audit/1`", match found {
        Some(format) => format!("`{format}`"),
        None => "nothing".to_owned(),
    })]
    UnknownFormat {
        /// The format found.
        found: Option<String>,
    },
    /// A segment other than the active one ends without a newline; only the active segment can
    /// be torn by a crash.
    #[error("is cut short (no newline), but only the last segment can be torn by a crash")]
    Torn,
    /// The record's hash is not the one a checkpoint signed with the writer's key vouches for.
    #[error(
        "does not have the hash a signed checkpoint vouches for: it or a record before it was \
         altered and the chain rewritten"
    )]
    CheckpointMismatch,
    /// A checkpoint record that names the writer's key does not verify.
    #[error("is a checkpoint that does not verify: {0}")]
    BadCheckpoint(super::checkpoint::CheckpointError),
    /// A `retention` record no signed checkpoint covers, though segments it names are gone.
    #[error(
        "is a `retention` record no signed checkpoint covers, yet the segments it names are gone: \
         the writer signs a retention record before it deletes any segment, so this one is forged"
    )]
    UnsignedRetention,
    /// The oldest segment does not start the log and no retention record explains why.
    #[error(
        "starts the log after seq 1, but no {}`retention` record says the records before it \
         were removed", if *signed { "signed " } else { "" }
    )]
    UnexplainedStart {
        /// Whether the retention record must be covered by a signed checkpoint.
        signed: bool,
    },
    /// The line is longer than any record may be.
    #[error(
        "is longer than {} bytes, the most a record may hold",
        super::chain::MAX_RECORD_BYTES
    )]
    TooLong,
    /// The active segment is empty and no segment before it says where the chain stands.
    #[error("does not exist: the segment is empty and no segment precedes it")]
    Missing,
}

/// Why a record body cannot be spliced into a record line.
///
/// The reserved keys are a runtime check rather than a type-level guarantee because bodies are
/// any [`serde::Serialize`] value.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Serializing the body failed.
    #[error("the body cannot be serialized as JSON: {0}")]
    Serialize(serde_json::Error),
    /// The body serializes to something other than a JSON object.
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// The body sets a key the log stamps itself.
    #[error(
        "the body sets `{key}`, which the audit log stamps itself (seq, prev_hash, timestamp and hash are reserved)"
    )]
    ReservedKey {
        /// The reserved key.
        key: String,
    },
    /// The body sets the same key twice, which would make the record ambiguous.
    #[error("the body sets `{key}` more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The record would be longer than any reader of the log accepts
    /// ([`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES)).
    #[error(
        "the record would take up to {bytes} bytes, over the limit of {limit} bytes a record \
         may hold (every reader of the log refuses a longer line); nothing was written"
    )]
    TooLong {
        /// The longest the record's line could be, with its framing and newline.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why a log failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input does not start with a Mandate `log_start` record.
    #[error(transparent)]
    NotALog(NotALog),
    /// Reading the input failed.
    #[error(transparent)]
    Io(ReadFailed),
    /// The input is a Mandate audit log whose chain is broken.
    #[error(transparent)]
    Broken(ChainBroken),
    /// The log starts after seq 1 and no `retention` record accounts for the missing records.
    #[error(transparent)]
    UnexplainedStart(UnexplainedStart),
    /// A signed checkpoint from the checkpoint file contradicts the log.
    #[error(transparent)]
    Rewritten(Box<Rewritten>),
    /// A signed checkpoint from the checkpoint file vouches for a seq past the log's end.
    #[error(transparent)]
    CutShort(CutShort),
    /// The checkpoint file cannot be read or does not verify with the key.
    #[error(transparent)]
    CheckpointFile(CheckpointFileError),
    /// With a key, records that no signed checkpoint covers, and no `--allow-unsigned-tail`.
    #[error(transparent)]
    UnsignedTail(crate::verify::UnsignedTail),
    /// A checkpoint file was given without the public key to check its signatures.
    #[error(
        "checkpoint file `{}` can only be checked with the public key that signed it: give the key too",
        .0.display()
    )]
    CheckpointsNeedKey(PathBuf),
}

impl VerifyError {
    /// The seq of the first bad record: the seq the chain expected at the line where it broke.
    /// `None` when the input is not an audit log at all or could not be read.
    ///
    /// For a log rewritten after a checkpoint this is the seq the checkpoint contradicts (the
    /// rewrite began there or earlier); for a log cut short, the first seq that is gone; for
    /// records missing from the start, the first missing seq. `None` when the input is not an
    /// audit log at all, could not be read, or the checkpoint file itself is at fault.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.seq),
            Self::UnexplainedStart(start) => Some(start.first_missing),
            Self::Rewritten(rewritten) => Some(rewritten.seq),
            Self::CutShort(short) => Some(short.head_seq.saturating_add(1)),
            Self::UnsignedTail(tail) => Some(tail.first_unsigned()),
            Self::NotALog(_)
            | Self::Io(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_) => None,
        }
    }

    /// Whether the input could not be read at all (missing, unreadable, not an audit log, or
    /// asked for wrongly), as opposed to a log that was read and failed a check: `mandate audit
    /// verify` exits 2 for the first and 1 for the second.
    pub fn is_unreadable(&self) -> bool {
        match self {
            Self::NotALog(_) | Self::Io(_) | Self::CheckpointsNeedKey(_) => true,
            Self::CheckpointFile(error) => {
                matches!(error, crate::CheckpointFileError::Read { .. })
            }
            Self::Broken(_)
            | Self::UnexplainedStart(_)
            | Self::Rewritten(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_) => false,
        }
    }

    /// The 1-based line number at fault, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.line),
            Self::Rewritten(rewritten) => Some(rewritten.line),
            Self::NotALog(not) => {
                (!matches!(not.reason, NotALogReason::Empty | NotALogReason::NoSegments))
                    .then_some(1)
            }
            Self::Io(_)
            | Self::UnexplainedStart(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_) => None,
        }
    }

    /// Attaches the file name so that the message says which log is at fault. Errors that
    /// already name their files are returned as they are.
    pub(crate) fn with_path(self, path: &Path) -> Self {
        let path = Some(path.to_path_buf());
        match self {
            Self::NotALog(e) => Self::NotALog(NotALog { path, ..e }),
            Self::Io(e) => Self::Io(ReadFailed { path, ..e }),
            Self::Broken(e) => Self::Broken(ChainBroken { path, ..e }),
            other @ (Self::UnexplainedStart(_)
            | Self::Rewritten(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_)) => other,
        }
    }
}

/// Renders "audit log `path`" or just "audit log" when the input has no name.
struct LogName<'a>(&'a Option<PathBuf>);

impl fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "audit log `{}`", path.display()),
            None => f.write_str("audit log"),
        }
    }
}

/// The input is not a Mandate audit log: its first line is not a `log_start` record.
#[derive(Debug, thiserror::Error)]
#[error("{}not a mandate audit log: {reason}", match path {
    Some(path) => format!("`{}` is ", path.display()),
    None => String::new(),
})]
pub struct NotALog {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What is wrong with line 1.
    pub reason: NotALogReason,
}

/// Why line 1 is not the start of a Mandate audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotALogReason {
    /// The input is empty.
    #[error("it is empty")]
    Empty,
    /// The directory holds no segment files.
    #[error("the directory holds no segment files (`segment-<seq>.jsonl`)")]
    NoSegments,
    /// Line 1 does not end with a `hash` field.
    #[error("line 1 is not a hash-chained record")]
    NotFramed,
    /// Line 1 is not a JSON object with `seq` and `prev_hash`.
    #[error("line 1 is not a record: {message}")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
    },
    /// Line 1 is a record but not a `log_start` record.
    #[error("line 1 is {}, not `log_start`", match found {
        Some(kind) => format!("a `{kind}` record"),
        None => "a record without a `kind`".to_owned(),
    })]
    NotLogStart {
        /// The `kind` line 1 has, if any.
        found: Option<String>,
    },
    /// Line 1 is a `log_start` record of another format.
    #[error("line 1 declares format {}, expected `mandate-audit/1`", match found {
        Some(format) => format!("`{format}`"),
        None => "nothing".to_owned(),
    })]
    UnknownFormat {
        /// The `format` line 1 declares, if any.
        found: Option<String>,
    },
}

/// Reading the input failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {error}", LogName(path))]
pub struct ReadFailed {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What the operating system said.
    pub error: io::Error,
}

/// The chain breaks at a line: everything before it verified, this line does not.
#[derive(Debug, thiserror::Error)]
#[error("{} is broken at line {line} (seq {seq}): {problem}", LogName(path))]
pub struct ChainBroken {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// The 1-based line number.
    pub line: u64,
    /// The first bad seq: the seq the chain expected on this line.
    pub seq: u64,
    /// What is wrong with the line.
    pub problem: ChainProblem,
}

/// What is wrong with the line where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    /// The recorded hash is not the hash of the line's bytes.
    #[error("the hash does not match the record's bytes: the record was altered")]
    HashMismatch,
    /// The line holds another seq than the one after the previous record.
    #[error("expected seq {expected}, found {found}: a record was deleted, inserted or reordered")]
    SeqOutOfOrder {
        /// The previous record's seq plus one.
        expected: u64,
        /// The seq the line holds.
        found: u64,
    },
    /// The line's `prev_hash` is not the previous record's hash.
    #[error(
        "`prev_hash` is `{found}` but the previous record's hash is `{expected}`: a record was replaced or forged"
    )]
    PrevHashMismatch {
        /// The previous record's hash.
        expected: String,
        /// The `prev_hash` the line holds.
        found: String,
    },
    /// The line is not a record.
    #[error("malformed record: {0}")]
    Malformed(Malformed),
    /// The file does not end with a newline: its last record was cut short.
    #[error("the last line has no newline: the file was truncated mid-record")]
    TornTail,
    /// A line follows the record with the largest possible seq.
    #[error("a record follows seq {}, the largest possible seq", u64::MAX)]
    SeqExhausted,
    /// The segment does not start the way the layout requires.
    #[error(transparent)]
    Segment(SegmentProblem),
    /// A `checkpoint` record does not vouch for the record before it, or its signature does
    /// not verify.
    #[error(transparent)]
    Checkpoint(CheckpointProblem),
    /// A `retention` record contradicts the chain.
    #[error(transparent)]
    Retention(RetentionProblem),
}

/// How a line fails to be a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The line does not end with `,"hash":"<64 lowercase hex>"}`.
    #[error("the line does not end with a `hash` field")]
    NotFramed,
    /// The line is not UTF-8, so it is not JSON.
    #[error("invalid UTF-8 at column {column}")]
    InvalidUtf8 {
        /// The 1-based column (byte) of the first invalid byte.
        column: usize,
    },
    /// The line is not JSON, or lacks `seq` or `prev_hash`.
    #[error("{message} (column {column})")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
        /// The 1-based column (byte) in the line.
        column: usize,
    },
    /// The line holds a carriage return, which no record does.
    #[error("a carriage return at column {column}: records end with a bare newline")]
    CarriageReturn {
        /// The 1-based column (byte) of the carriage return.
        column: usize,
    },
    /// The line does not start with `{"seq":N,`, N a seq of at least 1 without leading zeros.
    #[error(
        "the line does not start with `{{\"seq\":N,` where N is a seq of 1 or more without leading zeros"
    )]
    NoSeqPrefix,
    /// The line is longer than any record the verifier accepts.
    #[error("the line is longer than {limit} bytes with its newline")]
    TooLong {
        /// The longest line accepted, in bytes.
        limit: usize,
    },
}

impl Malformed {
    /// Describes a UTF-8 error in a single line.
    pub(crate) fn from_utf8(error: std::str::Utf8Error) -> Self {
        Self::InvalidUtf8 {
            column: error.valid_up_to() + 1,
        }
    }

    /// Describes a JSON error about a single line.
    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        Self::InvalidJson {
            message: json_message(error),
            column: error.column(),
        }
    }
}

/// A JSON error's message without serde_json's "at line 1 column N" suffix, which would be
/// confused with the file's line number.
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}
