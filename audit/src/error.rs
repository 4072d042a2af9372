//! Typed errors for writing audit logs ([`AuditError`], [`BodyError`], [`Damage`]). The
//! verifier's errors live in one module of their own, `verify/error.rs`, which imports nothing
//! of this one.
//!
//! Messages are lowercase, have no final period and name the file (in backticks) and the line or
//! seq at fault. Underlying errors are part of the message and kept in a public field rather than
//! exposed as [`std::error::Error::source`], so that a report chain does not print them twice.

use std::io;
use std::path::{Path, PathBuf};

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
