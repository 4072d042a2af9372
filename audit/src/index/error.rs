//! Why the query index could not be opened, caught up or queried.
//!
//! Messages are lowercase, have no final period, and name the file, line and seq at fault, with a
//! hint where one helps. Underlying errors are part of the message and kept in a public field
//! rather than exposed as [`std::error::Error::source`], so a report chain prints them once.

use std::io;
use std::path::PathBuf;

/// Why [`AuditIndex`](super::AuditIndex) failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The log directory could not be read (missing, not a directory, no permission).
    #[error("cannot read audit log `{}`: {error}", path.display())]
    LogUnreadable {
        /// The log directory.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The path is not a log directory: a file, or a directory without segment files.
    #[error(
        "`{}` is not an audit log directory: {reason}; pass the directory that holds the \
         `segment-*.jsonl` files",
        path.display()
    )]
    NotALogDirectory {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// A segment could not be read.
    #[error("cannot read segment `{}`: {error}", path.display())]
    SegmentUnreadable {
        /// The segment file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// A record cannot be indexed: the log is damaged or was not written by Mandate. The index
    /// keeps everything before it and refuses to go past it, so no answer comes from a record
    /// whose chain does not hold.
    #[error(
        "cannot index `{}` at byte {offset} (seq {}): {problem}; run `mandate audit verify` on \
         the log",
        segment.display(),
        seq.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
    )]
    BadRecord {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the record's line in the segment.
        offset: u64,
        /// The seq expected or read there, when known.
        seq: Option<u64>,
        /// What is wrong.
        problem: RecordProblem,
    },
    /// Records the index holds are no longer in the log as they were indexed: the log was
    /// edited, cut short or rewritten since. The index refuses to answer from them.
    #[error(
        "the log changed under its index: `{}` seq {seq} {problem}; records that were indexed \
         were altered or removed since, which a writer never does: check the log with \
         `mandate audit verify`, then `mandate audit reindex` builds the index from the log as \
         it is now",
        segment.display()
    )]
    LogChanged {
        /// The segment file.
        segment: PathBuf,
        /// The first record found changed.
        seq: u64,
        /// What changed.
        problem: String,
    },
    /// The index file cannot be created or opened for writing, typically because the log
    /// directory is read-only to this user.
    #[error(
        "cannot open audit index `{}` for writing: {error}; the index lives in the log \
         directory, so querying needs write access to it (copy the log elsewhere to query it)",
        path.display()
    )]
    Unwritable {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
    /// SQLite failed: the index file is unreadable, corrupt, locked for too long, or the disk
    /// is full.
    #[error(
        "audit index `{}`: {error}; the index is derived from the log, so \
         `mandate audit reindex <log>` rebuilds it",
        path.display()
    )]
    Sqlite {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
    /// The index file could not be removed for a rebuild.
    #[error("cannot remove audit index `{}`: {error}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
}

/// What is wrong with a record the index cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    /// The line does not end with `,"hash":"<64 hex>"}`.
    #[error("the line is not a framed record")]
    NotFramed,
    /// The line's `hash` is not the SHA-256 of its bytes.
    #[error("the record's hash does not match its bytes")]
    HashMismatch,
    /// The line is not valid JSON, or a field has the wrong type.
    #[error("invalid record: {0}")]
    Json(String),
    /// The seq is not the previous seq plus one.
    #[error("expected seq {expected}, found {found}")]
    SeqGap {
        /// The seq that should follow.
        expected: u64,
        /// The seq written.
        found: u64,
    },
    /// The `prev_hash` is not the previous record's hash.
    #[error("`prev_hash` is not the hash of the previous record")]
    PrevHashMismatch,
    /// A field a call row needs is missing or has an unknown value.
    #[error("{kind} record has no usable `{field}`")]
    MissingField {
        /// The record kind.
        kind: &'static str,
        /// The field, as a dotted path.
        field: &'static str,
    },
    /// The `timestamp` is not RFC 3339.
    #[error("`timestamp` `{0}` is not an RFC 3339 time")]
    BadTimestamp(String),
    /// A line without its newline, followed by more segments: not a write in progress but a
    /// damaged segment.
    #[error("the segment ends in a partial line but later segments exist")]
    TornInside,
    /// A line longer than the index reads.
    #[error("the line is longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: u64,
    },
}
