//! Append-only, hash-chained audit log.
//!
//! An audit log is a [JSON Lines](https://jsonlines.org) file: one record per line, appended
//! and never rewritten. [`AuditLog`] writes it; [`verify_file`] and [`verify_reader`] check it
//! and need nothing else of Mandate (no policy engine, no WebAssembly runtime).
//!
//! # Line format (`mandate-audit/1`)
//!
//! Every line is exactly
//!
//! ```text
//! {"seq":N,"prev_hash":"<64 hex>","timestamp":"<RFC 3339 UTC>",<body fields...>,"hash":"<64 hex>"}\n
//! ```
//!
//! - `seq` counts records from 1 with no gaps.
//! - `prev_hash` is the previous record's `hash`; for seq 1 it is 64 zeros ([`GENESIS_HASH`]).
//! - `timestamp` is UTC with exactly three fractional digits, e.g. `2026-11-26T16:25:49.123Z`.
//! - The body fields are those of the caller's [`serde::Serialize`] value, which must serialize
//!   to a JSON object, in its own order, written compactly (no whitespace). They may not use the
//!   keys [`RESERVED_KEYS`] (`seq`, `prev_hash`, `timestamp`, `hash`); this is checked at run time
//!   ([`BodyError::ReservedKey`]). An empty object adds no fields (and no comma).
//! - `hash` is the lowercase hex SHA-256 of the line's bytes from its first byte up to, not
//!   including, the `,"hash":"` that precedes the hash. It covers the exact bytes written, so a
//!   verifier never re-serializes JSON.
//!
//! The first record is written by [`AuditLog::open`] when it creates a log:
//!
//! ```text
//! {"seq":1,"prev_hash":"000…000","timestamp":"…","kind":"log_start","format":"mandate-audit/1","hash":"…"}
//! ```
//!
//! A file whose first line is not such a record is not a Mandate audit log.
//!
//! # Verifying
//!
//! For each line the verifier checks that it ends with a newline, ends with
//! `,"hash":"<64 lowercase hex>"}`, that the hash is the SHA-256 of the bytes before it, and only
//! then parses the line as JSON to read `seq` and `prev_hash` (and, on line 1, `kind` and
//! `format`), which must be the previous seq plus one and the previous record's hash. The first
//! line that fails is reported with its line number and the seq expected there
//! ([`VerifyError::first_bad_seq`]). This detects any changed, deleted, inserted, reordered or
//! forged record and a truncated last record.
//!
//! A chain alone cannot reveal records cut off at a line boundary from the end (the shorter log
//! is itself a valid chain), nor a log rewritten from the first record on with all hashes
//! recomputed. Both are caught by comparing the head ([`VerifyReport::head_seq`] and
//! [`VerifyReport::head_hash`]) with one kept elsewhere, such as [`AuditLog::head`] recorded by
//! the embedding host.
//!
//! # Durability and failure
//!
//! [`AuditLog::append`] writes the whole line with one `write_all` on a file opened in append
//! mode, then `fsync`s the data before returning. A failed write or sync is truncated away, so
//! the chain stays intact and the head does not advance; if that fails too, the log refuses
//! further appends until reopened. Opening an existing log checks its first and last lines and
//! refuses to append after a torn or damaged tail.
//!
//! ```
//! use mandate::audit::{AuditLog, verify_file};
//!
//! let dir = tempfile::tempdir()?;
//! let log = AuditLog::open(dir.path().join("audit.jsonl"))?;
//! log.append(&serde_json::json!({"kind": "session_start", "session_id": "s-1"}))?;
//!
//! let report = verify_file(log.path())?;
//! assert_eq!(report.head_seq, 2);
//! assert_eq!(log.head(), (report.head_seq, report.head_hash));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chain;
mod checkpoint;
mod config;
mod error;
mod segments;
#[doc(hidden)]
pub mod synthetic;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use chain::{FORMAT, GENESIS_HASH, LOG_START_KIND, RESERVED_KEYS};
pub use error::{
    AuditError, BodyError, ChainBroken, ChainProblem, Malformed, NotALog, NotALogReason,
    ReadFailed, VerifyError,
};
pub use checkpoint::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, Checkpoint, CheckpointError, CheckpointSigner,
    CheckpointVerifier, KeyError, SignedCheckpoint,
};
pub use config::{AuditConfig, Durability, Retention};
pub use segments::{
    RawRecord, RecordReader, SEGMENT_PREFIX, SEGMENT_START_KIND, SEGMENT_SUFFIX, Segment,
    TORN_DIR, line_seq, list_segments, segment_name,
};
pub use verify::{VerifyReport, verify_file, verify_reader};
pub use writer::{Appended, AuditLog};
