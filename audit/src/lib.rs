//! Append-only, hash-chained audit log: Mandate's records, chain, checkpoints, writer, verifier
//! and query index, in a crate of its own so that it depends on neither Cedar nor wasmtime.
//!
//! Cargo features, both on by default: `writer` ([`AuditLog`], needs tokio) and `index`
//! ([`AuditIndex`], SQLite compiled from C). An auditor who only verifies builds
//! `--no-default-features`: records, chain, checkpoints and [`verify_log`].
//!
//! The bodies of the records the guard writes (sessions, decisions, approvals, outcomes) are
//! the types of [`record`], which the guard writes with and the index and replay read back with.
//!
//! An audit log is a directory of [JSON Lines](https://jsonlines.org) segment files: one record
//! per line, appended and never rewritten, the chain running on from one segment into the next.
//! [`AuditLog`] writes it; [`verify_file`] and [`verify_reader`] check it
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
//! [`verify_log`] (and [`verify_file`], without a key) reads the segments in seq order. For
//! each line it checks that it ends with a newline, ends with `,"hash":"<64 lowercase hex>"}`,
//! that the hash is the SHA-256 of the bytes before it, and that the seq and `prev_hash` read
//! from the line's fixed prefix are the previous seq plus one and the previous record's hash;
//! JSON is parsed only for line 1 and the few records the audit layer writes about itself. The
//! first problem is reported with its file, line and seq ([`VerifyError::first_bad_seq`]). This
//! detects any changed, deleted, inserted, reordered or forged record, a truncated last record,
//! a missing segment, and records missing from the start that no `retention` record accounts
//! for.
//!
//! A chain alone cannot reveal records cut off at a line boundary from the end (the shorter log
//! is itself a valid chain), nor a log rewritten from some record on with all hashes
//! recomputed. Signed checkpoints do: given the public key ([`VerifyOptions::key`]), every
//! `checkpoint` record's signature is checked, and the checkpoint file, kept elsewhere, is held
//! against the log ([`VerifyError::Rewritten`], [`VerifyError::CutShort`]).
//!
//! # Durability and failure
//!
//! A log is a directory of segment files (see [`list_segments`] for the layout). One writer
//! thread per [`AuditLog`] owns the active segment; [`AuditLog::append`] (or
//! [`AuditLog::append_async`]) returns only once its record is written and `fdatasync`ed.
//! Concurrent appends share syncs (group commit), each still waiting for its own record. The
//! segment rotates by size and age, each new segment starting with a `segment_start` record that
//! continues the chain; [`Retention`] deletes whole old segments only after a durable `retention`
//! record names the last removed seq and hash. With a [`CheckpointSigner`] configured, signed
//! `checkpoint` records go into the log periodically and at close, and into `checkpoints.jsonl`.
//!
//! A failed write or sync is truncated away, so the chain stays intact, the head does not advance
//! and the caller gets an error saying what is wrong; so does an append while the active segment
//! was removed or replaced underneath. Later appends try again, and once the log is writable
//! the first commit starts with an `audit_outage` record saying since when appends were refused,
//! why and how many. Opening a log moves a torn last line (a crash mid-write) into `torn/` and
//! records a `repair`; it refuses a log whose last whole record was altered or whose active
//! segment is damaged.
//!
//! ```
//! use mandate_audit::{AuditLog, verify_file};
//!
//! let dir = tempfile::tempdir()?;
//! let log = AuditLog::open(dir.path().join("audit"))?;
//! log.append(&serde_json::json!({"kind": "session_start", "session_id": "s-1"}))?;
//!
//! let report = verify_file(log.path())?;
//! assert_eq!(report.head_seq, 2);
//! assert_eq!(log.head(), (report.head_seq, report.head_hash));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
// Feature gates: `writer` (tokio) and `index` (SQLite) are on by default; without them this crate
// is the records, chain, checkpoints and verifier alone, which is what an auditor builds.

mod chain;
mod checkpoint;
mod config;
mod error;
#[cfg(feature = "index")]
mod index;
#[cfg(any(feature = "writer", feature = "index"))]
mod modes;
pub mod record;
mod segments;
#[doc(hidden)]
pub mod synthetic;
mod verify;
#[cfg(feature = "writer")]
mod writer;

// Two attributes, not `all(test, ...)`: clippy sees test code only under a plain `cfg(test)`.
#[cfg(test)]
#[cfg(feature = "writer")]
mod tests;

// Shared with the `mandate` crate (the guard's record tests and its secret key files), not
// part of the audit log's API. `FixedKeys` is sealed: only this crate's record types have it.
#[doc(hidden)]
pub use chain::{FixedKeys, check_body_keys};
#[doc(hidden)]
pub use checkpoint::{read_secret_key_file, write_private};

pub use chain::{FORMAT, GENESIS_HASH, LOG_START_KIND, MAX_RECORD_BYTES, RESERVED_KEYS};
pub use checkpoint::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, Checkpoint, CheckpointError, CheckpointSigner,
    CheckpointVerifier, KeyError, SignedCheckpoint,
};
pub use config::{AuditConfig, Durability, Retention};
pub use error::{AuditError, BodyError, Damage};
#[cfg(feature = "index")]
pub use index::{
    AuditIndex, CallEffect, CallQuery, CallResult, CallRow, CatchUp, IndexError, LineCall,
    RebuildReason, RecordProblem, line_call,
};
#[cfg(any(feature = "writer", feature = "index"))]
pub(crate) use modes::Modes;
pub use segments::{
    INDEX_FILE, LOCK_FILE, RawRecord, RecordReader, SEGMENT_PREFIX, SEGMENT_START_KIND,
    SEGMENT_SUFFIX, Segment, TORN_DIR, line_seq, list_segments, segment_name,
};
pub use verify::{
    ChainBroken, ChainProblem, CheckpointFileError, CheckpointProblem, CheckpointReport, CutShort,
    Evidence, Malformed, NotALog, NotALogReason, Origin, ReadFailed, RetentionProblem, Rewritten,
    SegmentProblem, UnexplainedStart, Verification, VerifyError, VerifyOptions, VerifyReport,
    verify_file, verify_log, verify_log_all, verify_reader,
};
#[cfg(feature = "writer")]
pub use writer::{Appended, AuditLog};
#[cfg(feature = "writer")]
#[doc(hidden)]
pub use writer::{Fault, FaultInjector, FaultPlan, Stats};
