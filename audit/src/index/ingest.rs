//! Catching the index up with the log, one batch per transaction.
//!
//! A batch starts where the index left off: it checks that the last record it
//! took is still in the log, byte for byte where it was, and reads on from just
//! after it. If that record is gone (the log was replaced, rewritten, or its
//! segment removed), the batch clears the index and starts from the oldest
//! segment. Every record read is checked on its own (framing and hash) and
//! against the one before (seq and `prev_hash`), so the index never takes a
//! record that does not extend the chain it already holds.
//!
//! A last line without its newline is a write still in progress: the batch
//! stops before it and a later catch-up takes it once it is complete.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::RebuildReason;
use super::error::{IndexError, RecordProblem};
use super::record::{self, CallOutcome, Change, NewCall, Parsed};
use super::schema::{self, Position};
use super::unchanged::{self, Indexed};
use crate::chain::{MAX_RECORD_BYTES, check_record_line, split_framed};
use crate::segments::{Segment, line_seq, list_segments, segment_name};
use crate::verify::ChainProblem;

/// Records per transaction: large enough that commits cost little, small
/// enough that a long first build makes progress another process can see.
pub(super) const BATCH_RECORDS: u64 = 50_000;

/// Longest line the index reads, without its newline: the one record limit all readers share
/// (a longer one is refused rather than buffered).
const MAX_LINE: u64 = MAX_RECORD_BYTES as u64 - 1;

/// What one batch did.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Records taken.
    pub(super) records: u64,
    /// Call rows added.
    pub(super) calls: u64,
    /// Call rows retention took out.
    removed: u64,
    /// Segments whose indexed records were read again, their files having changed.
    pub(super) rechecked: u64,
    /// Whether it reached the end of the log (else it stopped at the batch size).
    pub(super) at_end: bool,
    /// Set when it had to clear the index first.
    pub(super) rebuilt: Option<RebuildReason>,
    /// The last record in the index: the one remembered, then each one taken.
    head: Option<Position>,
    /// The segment records were last taken from; what was taken is up to `head`.
    reading: Option<Reading>,
}

/// A segment records are being taken from.
#[derive(Debug)]
struct Reading {
    name: String,
    first_seq: u64,
    /// Its fingerprint before reading it.
    fingerprint: Option<String>,
}

/// Remembers how far the index got in the segment it took records from last.
fn save_reading(tx: &Transaction<'_>, batch: &Batch) -> rusqlite::Result<()> {
    let (Some(reading), Some(head)) = (&batch.reading, &batch.head) else {
        return Ok(());
    };
    if head.segment != reading.name {
        return Ok(());
    }
    let indexed = Indexed {
        first_seq: reading.first_seq,
        indexed_end: head.line_end,
        last_seq: head.seq,
        last_hash: head.hash.clone(),
        fingerprint: reading.fingerprint.clone(),
    };
    unchanged::save(tx, &reading.name, &indexed)
}

/// The files a batch works on, for error messages.
pub(super) struct Files<'a> {
    pub(super) log: &'a Path,
    pub(super) index: &'a Path,
}

impl Files<'_> {
    pub(super) fn sql(&self, error: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.index.to_path_buf(),
            error,
        }
    }
}

/// The segments of the log, oldest first; an error if there are none.
pub(super) fn segments(log: &Path) -> Result<Vec<Segment>, IndexError> {
    let segments = list_segments(log).map_err(|error| match error.kind() {
        ErrorKind::NotADirectory => IndexError::NotALogDirectory {
            path: log.to_path_buf(),
            reason: "it is not a directory",
        },
        _ => IndexError::LogUnreadable {
            path: log.to_path_buf(),
            error,
        },
    })?;
    if segments.is_empty() {
        return Err(IndexError::NotALogDirectory {
            path: log.to_path_buf(),
            reason: "it holds no segment files",
        });
    }
    Ok(segments)
}

/// Takes up to `max_records` new records into the index in one transaction.
/// With `check`, it first checks that the records already indexed are still the log's
/// ([`unchanged::check`]); a catch-up does that in its first batch only, as later ones go on
/// from records it has just read.
pub(super) fn batch(
    conn: &mut Connection,
    files: &Files<'_>,
    max_records: u64,
    check: bool,
) -> Result<Batch, IndexError> {
    // IMMEDIATE: two processes catching up the same index take turns, and the
    // second one reads the position the first one left.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| files.sql(e))?;
    let segments = segments(files.log)?;
    let checked = if check {
        unchanged::check(&tx, files, &segments)?
    } else {
        unchanged::Checked::default()
    };
    let mut batch = Batch {
        removed: checked.removed,
        rechecked: checked.rechecked,
        ..Batch::default()
    };
    let (first, offset, head) = match schema::position(&tx).map_err(|e| files.sql(e))? {
        None => (0, 0, None),
        Some(position) => match locate(&segments, &position)? {
            Ok(i) => (i, position.line_end, Some(position)),
            Err(reason) => {
                schema::clear(&tx).map_err(|e| files.sql(e))?;
                batch.rebuilt = Some(reason);
                (0, 0, None)
            }
        },
    };

    batch.head = head;
    let read = read_on(
        &tx,
        files,
        &segments,
        (first, offset),
        max_records,
        &mut batch,
    );
    // Keep what was read before a bad record: the index then answers for
    // everything up to it, and the error names where it stopped.
    save_reading(&tx, &batch).map_err(|e| files.sql(e))?;
    if (batch.records > 0 || batch.removed > 0)
        && let Some(head) = &batch.head
    {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let delta = count(batch.calls).saturating_sub(count(batch.removed));
        schema::set_position(&tx, head, delta).map_err(|e| files.sql(e))?;
    }
    tx.commit().map_err(|e| files.sql(e))?;
    read.map(|()| batch)
}

/// Reads and applies records after `head`, from segment `start.0` at byte
/// `start.1` on, until the end of the log or `max_records`.
fn read_on(
    tx: &Transaction<'_>,
    files: &Files<'_>,
    segments: &[Segment],
    (first, offset): (usize, u64),
    max_records: u64,
    batch: &mut Batch,
) -> Result<(), IndexError> {
    let mut buf = Vec::new();
    batch.at_end = true;
    for (i, segment) in segments.iter().enumerate().skip(first) {
        let start = if i == first { offset } else { 0 };
        let name = segment_name(segment.first_seq);
        let unreadable = |error| IndexError::SegmentUnreadable {
            path: segment.path.clone(),
            error,
        };
        // Taken before reading: a change made while the records are read moves it.
        let fingerprint = unchanged::before_reading(&segment.path);
        let mut reader = open_at(&segment.path, start).map_err(unreadable)?;
        let mut pos = start;
        loop {
            if batch.records >= max_records {
                batch.at_end = false;
                return Ok(());
            }
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(unreadable)?;
            if read == 0 {
                break;
            }
            let bad = |problem| IndexError::BadRecord {
                segment: segment.path.clone(),
                offset: pos,
                seq: batch
                    .head
                    .as_ref()
                    .and_then(|h| h.seq.checked_add(1))
                    .or_else(|| line_seq(&buf)),
                problem,
            };
            let Some(line) = buf.strip_suffix(b"\n") else {
                if buf.len() as u64 > MAX_LINE {
                    return Err(bad(RecordProblem::TooLong {
                        limit: MAX_RECORD_BYTES as u64,
                    }));
                }
                if i + 1 == segments.len() {
                    return Ok(());
                }
                return Err(bad(RecordProblem::TornInside));
            };
            // The one definition of a valid record line, as the verifier checks it.
            check_record_line(line).map_err(|problem| {
                bad(match problem {
                    ChainProblem::HashMismatch => RecordProblem::HashMismatch,
                    other => RecordProblem::Json(other.to_string()),
                })
            })?;
            let parsed = record::parse(line).map_err(bad)?;
            if let Some(prev) = &batch.head {
                let expected = prev.seq.saturating_add(1);
                if parsed.seq != expected {
                    return Err(bad(RecordProblem::SeqGap {
                        expected,
                        found: parsed.seq,
                    }));
                }
                if parsed.prev_hash != prev.hash {
                    return Err(bad(RecordProblem::PrevHashMismatch));
                }
            }
            let line_start = pos;
            pos = pos.saturating_add(read as u64);
            let (added, removed) = apply(tx, &parsed).map_err(|e| files.sql(e))?;
            batch.calls += added;
            batch.removed += removed;
            batch.records += 1;
            if batch.reading.as_ref().is_none_or(|r| r.name != name) {
                // The first record taken from this segment: what was taken from the one
                // before is saved now, so only the last segment waits for the commit.
                save_reading(tx, batch).map_err(|e| files.sql(e))?;
                batch.reading = Some(Reading {
                    name: name.clone(),
                    first_seq: segment.first_seq,
                    fingerprint: fingerprint.clone(),
                });
            }
            batch.head = Some(Position {
                segment: name.clone(),
                line_start,
                line_end: pos,
                seq: parsed.seq,
                hash: parsed.hash,
            });
        }
    }
    Ok(())
}

/// Finds the segment holding the remembered record and checks the record is
/// still there, unchanged. `Err` says why the index must be rebuilt instead.
fn locate(
    segments: &[Segment],
    position: &Position,
) -> Result<Result<usize, RebuildReason>, IndexError> {
    let Some(i) = segments
        .iter()
        .position(|s| segment_name(s.first_seq) == position.segment)
    else {
        return Ok(Err(RebuildReason::SegmentGone {
            segment: position.segment.clone(),
        }));
    };
    let changed = Err(RebuildReason::RecordChanged { seq: position.seq });
    let Some(segment) = segments.get(i) else {
        return Ok(changed);
    };
    let len = position.line_end.saturating_sub(position.line_start);
    if len == 0 || len > MAX_LINE + 1 {
        return Ok(changed);
    }
    let mut line = Vec::new();
    let read = open_at(&segment.path, position.line_start)
        .and_then(|f| f.take(len).read_to_end(&mut line));
    if let Err(error) = read {
        return Err(IndexError::SegmentUnreadable {
            path: segment.path.clone(),
            error,
        });
    }
    let same = line.len() as u64 == len
        && line
            .strip_suffix(b"\n")
            .filter(|l| line_seq(l) == Some(position.seq))
            .and_then(split_framed)
            .is_some_and(|f| f.hash == position.hash && f.hash_matches());
    Ok(if same { Ok(i) } else { changed })
}

fn open_at(path: &Path, offset: u64) -> std::io::Result<BufReader<File>> {
    let mut file = File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(BufReader::with_capacity(256 * 1024, file))
}

/// Applies one record; returns the number of call rows added and removed.
fn apply(tx: &Transaction<'_>, parsed: &Parsed) -> rusqlite::Result<(u64, u64)> {
    match &parsed.change {
        Change::Call(call) => insert_call(tx, parsed.seq, call).map(|()| (1, 0)),
        Change::Outcome(outcome) => set_outcome(tx, parsed.seq, outcome).map(|()| (0, 0)),
        Change::RemovedThrough(seq) => {
            // What retention removed from the log leaves the index too, so a
            // caught-up index equals one built afresh from what remains.
            let removed = tx
                .prepare_cached("DELETE FROM calls WHERE decision_seq <= ?1")?
                .execute([seq])?;
            Ok((0, removed as u64))
        }
        Change::Nothing => Ok((0, 0)),
    }
}

fn insert_call(tx: &Transaction<'_>, seq: u64, c: &NewCall) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO calls (decision_seq, call_id, time_ms, session_id, trace_id, user_id,
             agent_id, tool, resource, effect, decided_by, policies, message, approval_required,
             approval_outcome, reviewer, approved_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        seq,
        c.call_id,
        c.time_ms,
        c.session_id,
        c.trace_id,
        c.user_id,
        c.agent_id,
        c.tool,
        c.resource,
        c.effect,
        c.decided_by,
        c.policies,
        c.message,
        c.approval_required,
        c.approval_outcome,
        c.reviewer,
        c.approved_by,
    ])?;
    Ok(())
}

/// Joins an outcome to its decision's row. An outcome whose decision is not in
/// the index (retention removed it) or names another call changes nothing.
fn set_outcome(tx: &Transaction<'_>, seq: u64, o: &CallOutcome) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE calls SET outcome_seq = ?1, status = ?2, latency_us = ?3, error = ?4
         WHERE decision_seq = ?5 AND call_id = ?6",
    )?
    .execute(params![
        seq,
        o.status,
        o.latency_us,
        o.error,
        o.decision_seq,
        o.call_id
    ])?;
    Ok(())
}
