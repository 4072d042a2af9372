//! [`AuditLog`]: the one writer of a log directory, appending durable records to its chain.
//!
//! The parts, each in its own module: [`open`] finds where an existing log ends and repairs a
//! torn tail ([`repair`]); [`leader`] lets an appender that finds the writer idle commit its
//! own record, and [`thread`] batches the others' into group commits; [`core`] stamps, writes
//! and syncs them into the [`segment`] being appended to, rotates segments, applies
//! [`retention`] and signs checkpoints; [`faults`] lets tests make the disk refuse.

mod block;
mod bodies;
mod core;
mod faults;
mod history;
mod leader;
mod lines;
mod open;
mod repair;
mod retention;
mod segment;
mod thread;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::chain::{
    BodyFields, FixedKeys, MAX_RECORD_BYTES, encode_line, max_line_len, now_millis,
};
use super::config::AuditConfig;
use super::error::AuditError;
use super::error::BodyError;
use block::block_on;
use core::Shared;
#[doc(hidden)]
pub use faults::{Fault, FaultInjector, FaultPlan};
use leader::{Caller, Writer};
use thread::Request;

/// An append-only, hash-chained audit log: a directory of segment files.
///
/// Every append returns only once its record is durable (written and `fdatasync`ed). Appenders
/// serialize their records on their own threads. One that finds the writer idle (nobody
/// committing, nothing queued) commits its own record with one write and one sync, on its own
/// thread; the others queue theirs, and a writer thread commits whatever has queued up with one
/// write and one sync (group commit, [`Durability`](super::Durability)), then answers each
/// appender. Records get distinct, consecutive seqs in file order. The directory is locked against other writers (an advisory
/// lock, held until the log is closed or dropped), so two `AuditLog`s never fork one chain.
///
/// When the log cannot be written (disk full, permission denied, the active segment removed or
/// replaced), appends fail with an [`AuditError`] saying so and nothing is written; later appends
/// try again, and the first commit that succeeds starts with an `audit_outage` record.
///
/// Dropping the log closes it like [`AuditLog::close`] but cannot report a failure.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    queue: mpsc::Sender<Request>,
    writer: Arc<Writer>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What [`AuditLog::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The record's seq.
    pub seq: u64,
    /// The record's hash, which the next record holds as `prev_hash`.
    pub hash: String,
    /// The record's timestamp, exactly as written (whole milliseconds).
    pub timestamp: Timestamp,
}

/// Counters of the writer, for tests and benchmarks.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Commits (each one write and one sync) since the log was opened.
    pub commits: u64,
    /// Appends that their own appender committed (or saw refused) on its own thread, finding
    /// the writer idle; the others were committed by the writer thread, in batches.
    pub led_appends: u64,
    /// The seq of the last durable record.
    pub durable_seq: u64,
}

impl AuditLog {
    /// Opens the log in directory `dir` for appending, with [`AuditConfig::default`].
    ///
    /// See [`AuditLog::open_with`].
    ///
    /// ```
    /// use mandate_audit::AuditLog;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = AuditLog::open(dir.path().join("audit"))?;
    /// let appended = log.append(&serde_json::json!({"kind": "session_start"}))?;
    /// assert_eq!(appended.seq, 2);
    /// assert_eq!(log.head(), (2, appended.hash));
    /// log.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        Self::open_with(dir, AuditConfig::default())
    }

    /// Opens the log in directory `dir` for appending, creating it if needed.
    ///
    /// A new log gets its first segment and `log_start` record (seq 1), durably. In an existing
    /// log the active (last) segment is read to its end, checking every record's hash and link:
    ///
    /// - A torn last line (no newline at the end, or trailing NUL bytes), as a crash leaves it,
    ///   is moved into `torn/<segment>.torn-<unix millis>` (copied and synced, then cut off) and a
    ///   `repair` record saying so is appended.
    /// - A whole last record whose hash does not match was altered, which a crash cannot do:
    ///   the log refuses to open ([`AuditError::Tampered`]).
    /// - Any other damage refuses too ([`AuditError::Damaged`]).
    ///
    /// Then old segments are deleted if [`AuditConfig::retention`] says so.
    pub fn open_with(dir: impl AsRef<Path>, config: AuditConfig) -> Result<AuditLog, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        let shared = Arc::new(Shared::new());
        let capacity = config.queue_capacity.max(1);
        let core = open::open(&dir, config, Arc::clone(&shared))?;
        let (queue, requests) = mpsc::channel(capacity);
        let writer = Arc::new(Writer::new(core, requests));
        let thread = thread::spawn(&writer).map_err(|error| AuditError::Open {
            path: dir.clone(),
            error,
        })?;
        Ok(AuditLog {
            dir,
            queue,
            writer,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Appends a record with the fields of `body` and returns once it is durable.
    ///
    /// `body` must serialize to a JSON object without the keys `seq`, `prev_hash`, `timestamp`
    /// and `hash`, which the log stamps itself ([`AuditError::Body`] otherwise; nothing is
    /// written). A body whose record could be longer than
    /// [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES) is refused the same way
    /// ([`BodyError::TooLong`](super::BodyError::TooLong)). If the log cannot be written the record is not written, the head does not
    /// advance and the error says why ([`AuditError::Write`], [`AuditError::SegmentRemoved`],
    /// ...).
    ///
    /// This blocks the calling thread; async code should use [`AuditLog::append_async`]. When
    /// no other append is being committed, the record is committed on the calling thread.
    pub fn append<T: Serialize + ?Sized>(&self, body: &T) -> Result<Appended, AuditError> {
        block_on(self.append_fields(BodyFields::new(body), Caller::Blocking))
    }

    /// Like [`AuditLog::append`], for async callers: `body` is serialized now, and the future
    /// resolves once the record is durable.
    ///
    /// When it is first polled and finds the writer idle (no other append being committed or
    /// queued) while syncs are quick (the last one under a millisecond), the future commits the
    /// record there and then, blocking its thread for one write and one `fdatasync`, which costs
    /// less than handing the record to the writer thread. Otherwise the record is queued and no
    /// thread blocks while it waits, neither for room in the queue nor for the sync.
    ///
    /// Dropping the future after it was first polled does not take the record back: it may
    /// still be written.
    pub fn append_async<T: Serialize + ?Sized>(
        &self,
        body: &T,
    ) -> impl Future<Output = Result<Appended, AuditError>> + Send + 'static {
        self.append_fields(BodyFields::new(body), Caller::Async)
    }

    /// [`AuditLog::append_async`] of a record whose keys its type fixes.
    #[doc(hidden)]
    pub fn append_fixed_async<T: Serialize + FixedKeys>(
        &self,
        body: &T,
    ) -> impl Future<Output = Result<Appended, AuditError>> + Send + 'static {
        self.append_fields(BodyFields::with_fixed_keys(body), Caller::Async)
    }

    fn append_fields(
        &self,
        body: Result<BodyFields, BodyError>,
        caller: Caller,
    ) -> impl Future<Output = Result<Appended, AuditError>> + Send + 'static {
        // A record longer than the readers accept is refused here, alone: in the writer it
        // would fail the whole group commit it rides in.
        let body = body
            .and_then(|body| match max_line_len(&body) {
                bytes if bytes > MAX_RECORD_BYTES => Err(BodyError::TooLong {
                    bytes,
                    limit: MAX_RECORD_BYTES,
                }),
                _ => Ok(body),
            })
            .map_err(|error| AuditError::Body {
                path: self.dir.clone(),
                error,
            });
        let queue = self.queue.clone();
        let writer = Arc::clone(&self.writer);
        let shared = Arc::clone(&self.shared);
        let dir = self.dir.clone();
        async move {
            let body = match writer.lead(body?, caller, &shared) {
                Ok(led) => return led,
                Err(body) => body,
            };
            let (reply, answer) = oneshot::channel();
            if queue.send(Request::Append { body, reply }).await.is_err() {
                return Err(AuditError::Closed { path: dir });
            }
            answer
                .await
                .unwrap_or(Err(AuditError::WriterStopped { path: dir }))
        }
    }

    /// The line `body` would be written as if it were the next record now: stamped after the
    /// current head and hashed exactly as the writer does, but not written. Nothing changes in
    /// the log; an append made meanwhile takes the seq shown.
    pub fn preview<T: Serialize + ?Sized>(&self, body: &T) -> Result<String, AuditError> {
        let body = BodyFields::new(body).map_err(|error| AuditError::Body {
            path: self.dir.clone(),
            error,
        })?;
        Ok(self.preview_fields(&body))
    }

    /// [`AuditLog::preview`] of a record whose keys its type fixes.
    #[doc(hidden)]
    pub fn preview_fixed<T: Serialize + FixedKeys>(&self, body: &T) -> Result<String, AuditError> {
        let body = BodyFields::with_fixed_keys(body).map_err(|error| AuditError::Body {
            path: self.dir.clone(),
            error,
        })?;
        Ok(self.preview_fields(&body))
    }

    fn preview_fields(&self, body: &BodyFields) -> String {
        let (seq, prev_hash) = self.head();
        let line = encode_line(seq + 1, &prev_hash, now_millis(), body);
        // The framing is ASCII around serde_json's UTF-8, so this never
        // replaces anything.
        String::from_utf8(line.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The log directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The chain head: the last durable record's seq and hash.
    pub fn head(&self) -> (u64, String) {
        self.shared
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes the log: appends a final checkpoint (if a signer is configured and records were
    /// appended since the last one), then stops the writer and releases the directory lock.
    pub fn close(self) -> Result<(), AuditError> {
        self.shutdown()
    }

    /// Closes the log through a shared reference (for a log owned by an `Arc`, such as a
    /// guard's): like [`AuditLog::close`]; later appends fail with [`AuditError::Closed`].
    /// Closing an already closed log does nothing.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        let result = match block_on(self.queue.send(Request::Close { reply })) {
            Ok(()) => block_on(answer).unwrap_or(Err(AuditError::WriterStopped {
                path: self.dir.clone(),
            })),
            Err(_) => Ok(()),
        };
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            return Err(AuditError::WriterStopped {
                path: self.dir.clone(),
            });
        }
        result
    }

    /// Makes the writer's next commits fail on purpose (tests only).
    #[doc(hidden)]
    pub fn faults(&self) -> FaultInjector {
        self.shared.faults.clone()
    }

    /// The writer's counters (tests and benchmarks).
    #[doc(hidden)]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Errors cannot be reported from here; `close` reports them.
        let _ = self.shutdown();
    }
}
