//! Checking that the records the index holds are still the log's bytes.
//!
//! The index remembers, per segment, how far it read (whole records), the seq and hash of the
//! last record it took there, and a fingerprint of the file as it was before that read: device,
//! inode, size, and modification and change times in nanoseconds. An unchanged fingerprint
//! means an unchanged file (writing it or changing its times moves its change time, which no
//! user can set back), so a query on an unchanged log reads no record again. A segment whose
//! fingerprint moved (the active one after every append) has its indexed records read again:
//! each must be whole, hash to its own `hash` and link to the one before, and the last must
//! still be the record indexed; since every hash covers the previous one, that proves every
//! indexed record unchanged. Anything else is [`IndexError::LogChanged`]: the index refuses to
//! answer rather than answer from records that are no longer in the log.
//!
//! A file changed within the same tick of the file system's clock as the fingerprint was
//! taken would keep its change time, so a fingerprint taken less than [`SETTLE`] after the
//! file's last change is not kept: that segment is read again next time.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Transaction, params};

use super::error::IndexError;
use super::ingest::Files;
use crate::chain::{HASH_HEX_LEN, MAX_RECORD_BYTES, RECORD_START, split_framed};
use crate::segments::{Segment, line_seq, segment_name};

/// How long after a file's last change its fingerprint is trusted (generous: file system
/// clocks tick in milliseconds, and the system clock may be adjusted).
pub(super) const SETTLE: Duration = Duration::from_secs(2);

/// What the index remembers of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Indexed {
    /// Seq of the segment's first record (from its name).
    pub(super) first_seq: u64,
    /// Bytes of whole records indexed from its start.
    pub(super) indexed_end: u64,
    /// Seq and hash of the last record indexed there.
    pub(super) last_seq: u64,
    pub(super) last_hash: String,
    /// The file as it was before the records were read, if it had settled.
    pub(super) fingerprint: Option<String>,
}

/// The fingerprint of a file: changes whenever its bytes may have.
pub(super) fn fingerprint(meta: &Metadata) -> Option<String> {
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(0),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        );
    // A change time in the future (a clock set back) never settles either.
    let settled = SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age >= SETTLE);
    settled.then(|| {
        format!(
            "{}:{}:{}:{}.{:09}:{}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )
    })
}

/// Every segment the index has read from, by file name.
pub(super) fn load(tx: &Transaction<'_>) -> rusqlite::Result<HashMap<String, Indexed>> {
    let mut statement = tx.prepare_cached(
        "SELECT name, first_seq, indexed_end, last_seq, last_hash, fingerprint FROM segments",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            Indexed {
                first_seq: row.get(1)?,
                indexed_end: row.get(2)?,
                last_seq: row.get(3)?,
                last_hash: row.get(4)?,
                fingerprint: row.get(5)?,
            },
        ))
    })?;
    rows.collect()
}

/// Remembers what was indexed of segment `name`.
pub(super) fn save(tx: &Transaction<'_>, name: &str, indexed: &Indexed) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO segments (name, first_seq, indexed_end, last_seq, last_hash, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET first_seq = excluded.first_seq,
             indexed_end = excluded.indexed_end, last_seq = excluded.last_seq,
             last_hash = excluded.last_hash, fingerprint = excluded.fingerprint",
    )?
    .execute(params![
        name,
        indexed.first_seq,
        indexed.indexed_end,
        indexed.last_seq,
        indexed.last_hash,
        indexed.fingerprint
    ])?;
    Ok(())
}

fn forget(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM segments WHERE name = ?1")?
        .execute([name])?;
    Ok(())
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Call rows taken out because their segments were removed from the start of the log.
    pub(super) removed: u64,
    /// Segments whose indexed records were read again.
    pub(super) rechecked: u64,
}

/// Checks that every indexed record is still in the log as it was indexed.
///
/// A segment gone from the start of the log (retention, or an operator archiving it) takes its
/// call rows with it: the index then holds what a build from the remaining log would. A segment
/// gone from between others, or whose indexed records changed, is [`IndexError::LogChanged`].
pub(super) fn check(
    tx: &Transaction<'_>,
    files: &Files<'_>,
    segments: &[Segment],
) -> Result<Checked, IndexError> {
    let sql = |e| files.sql(e);
    let oldest = segments.first().map_or(u64::MAX, |s| s.first_seq);
    let mut checked = Checked::default();
    for (name, indexed) in load(tx).map_err(sql)? {
        let Some(segment) = segments.iter().find(|s| segment_name(s.first_seq) == name) else {
            if indexed.last_seq < oldest {
                checked.removed += tx
                    .prepare_cached("DELETE FROM calls WHERE decision_seq <= ?1")
                    .and_then(|mut s| s.execute([indexed.last_seq]))
                    .map_err(sql)? as u64;
                forget(tx, &name).map_err(sql)?;
                continue;
            }
            return Err(IndexError::LogChanged {
                segment: files.log.join(&name),
                seq: indexed.first_seq,
                problem: "the segment is gone, though later segments are there".to_owned(),
            });
        };
        let unreadable = |error| IndexError::SegmentUnreadable {
            path: segment.path.clone(),
            error,
        };
        let file = File::open(&segment.path).map_err(unreadable)?;
        let now = fingerprint(&file.metadata().map_err(unreadable)?);
        if now.is_some() && now == indexed.fingerprint {
            continue;
        }
        recheck(file, &segment.path, &indexed)?;
        checked.rechecked += 1;
        save(
            tx,
            &name,
            &Indexed {
                fingerprint: now,
                ..indexed
            },
        )
        .map_err(sql)?;
    }
    Ok(checked)
}

/// Reads the indexed records of the segment at `path` again; an error names the first one that
/// is not as it was.
fn recheck(file: File, path: &Path, indexed: &Indexed) -> Result<(), IndexError> {
    let changed = |seq: u64, problem: &str| IndexError::LogChanged {
        segment: path.to_path_buf(),
        seq,
        problem: problem.to_owned(),
    };
    let unreadable = |error| IndexError::SegmentUnreadable {
        path: path.to_path_buf(),
        error,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(indexed.indexed_end));
    let mut line = Vec::new();
    let mut seq = indexed.first_seq;
    let mut prev_hash: Option<String> = None;
    let mut read_bytes = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_RECORD_BYTES as u64)
            .read_until(b'\n', &mut line)
            .map_err(unreadable)?;
        if read == 0 {
            break;
        }
        read_bytes += read as u64;
        let Some(record) = line.strip_suffix(b"\n") else {
            return Err(changed(
                seq,
                "is cut short: the segment is shorter than when indexed",
            ));
        };
        if line_seq(record) != Some(seq) {
            return Err(changed(seq, "is no longer where it was indexed"));
        }
        let Some(framed) = split_framed(record).filter(|f| f.hash_matches()) else {
            return Err(changed(seq, "no longer matches its hash"));
        };
        if let Some(prev) = &prev_hash
            && recorded_prev_hash(record, seq) != Some(prev.as_bytes())
        {
            return Err(changed(seq, "no longer links to the record before it"));
        }
        prev_hash = Some(framed.hash.to_owned());
        seq = seq.saturating_add(1);
    }
    let last = seq.saturating_sub(1);
    if read_bytes < indexed.indexed_end {
        return Err(changed(
            last.saturating_add(1),
            "is gone: the segment is shorter than when indexed",
        ));
    }
    if last != indexed.last_seq || prev_hash.as_deref() != Some(indexed.last_hash.as_str()) {
        return Err(changed(
            indexed.last_seq,
            "is not the record indexed: the records before it were rewritten",
        ));
    }
    Ok(())
}

/// The fingerprint of the segment at `path` now, before its records are read; `None` when it
/// cannot be taken or has not settled (the segment is then read again next time).
pub(super) fn before_reading(path: &Path) -> Option<String> {
    std::fs::metadata(path).ok().as_ref().and_then(fingerprint)
}

/// The `prev_hash` of a record line whose seq is `seq`: it follows the seq at a fixed place.
fn recorded_prev_hash(record: &[u8], seq: u64) -> Option<&[u8]> {
    const KEY: &[u8] = b",\"prev_hash\":\"";
    let at = RECORD_START.len() + seq.to_string().len();
    let rest = record.get(at..)?.strip_prefix(KEY)?;
    rest.get(..HASH_HEX_LEN)
}
