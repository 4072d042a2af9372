//! Retention: which whole old segments to delete, and the record that says so.
//!
//! Only a prefix of the segments is ever deleted (oldest first, never the active one), so what
//! remains is one unbroken chain that starts right after the last removed record. The
//! `retention` record naming that record's seq and hash is made durable before any file is
//! deleted: a crash in between leaves segments the record says are gone, never a gap no record
//! explains.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::super::config::Retention;
use super::super::segments::{Segment, list_segments};
use super::bodies::{RETENTION_KIND, RetentionRecord};
use super::lines::{last_line, parse_line};
use super::segment::{ActiveSegment, sync_dir};

/// Segments to delete and the last record they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    names: Vec<String>,
    paths: Vec<PathBuf>,
    through_seq: u64,
    through_hash: String,
}

impl Plan {
    /// The record to write before deleting.
    pub(super) fn record(&self) -> RetentionRecord<'_> {
        RetentionRecord {
            kind: RETENTION_KIND,
            removed_segments: &self.names,
            removed_through_seq: self.through_seq,
            removed_through_hash: &self.through_hash,
        }
    }

    /// Deletes the segments, oldest first, and syncs the directory.
    pub(super) fn delete(&self, dir: &Path) -> io::Result<()> {
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        sync_dir(dir)
    }
}

/// What `retention` says must go, given the active segment; `None` when nothing must.
pub(super) fn plan(
    dir: &Path,
    active: &ActiveSegment,
    retention: &Retention,
) -> io::Result<Option<Plan>> {
    if retention.keep_segments.is_none() && retention.max_age.is_none() {
        return Ok(None);
    }
    let segments = list_segments(dir)?;
    let closed: Vec<&Segment> = segments
        .iter()
        .filter(|s| s.first_seq < active.first_seq)
        .collect();
    let mut remove = match retention.keep_segments {
        // The active segment always stays, so keeping fewer than one means keeping one.
        Some(keep) => segments.len().saturating_sub(keep.max(1)).min(closed.len()),
        None => 0,
    };
    if let Some(max_age) = retention
        .max_age
        .and_then(|a| SignedDuration::try_from(a).ok())
    {
        let now = Timestamp::now();
        while let Some(segment) = closed.get(remove) {
            let newest = last_record(&segment.path)?.and_then(|(_, _, time)| time);
            match newest {
                Some(time) if now.duration_since(time) > max_age => remove += 1,
                _ => break,
            }
        }
    }
    let Some(removed) = closed.get(..remove).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let Some(newest) = removed.last() else {
        return Ok(None);
    };
    // A segment whose last record cannot be read is kept: without its hash no record could say
    // where the remaining chain starts.
    let Some((through_seq, through_hash, _)) = last_record(&newest.path)? else {
        return Ok(None);
    };
    Ok(Some(Plan {
        names: removed
            .iter()
            .filter_map(|s| s.path.file_name()?.to_str().map(str::to_owned))
            .collect(),
        paths: removed.iter().map(|s| s.path.clone()).collect(),
        through_seq,
        through_hash,
    }))
}

/// The seq, hash and time of a closed segment's last record, if it has a sound one.
fn last_record(path: &Path) -> io::Result<Option<(u64, String, Option<Timestamp>)>> {
    let file = File::open(path)?;
    Ok(match last_line(&file)? {
        Ok(Some(line)) => parse_line(&line)
            .ok()
            .map(|line| (line.seq, line.hash, line.timestamp)),
        Ok(None) | Err(_) => None,
    })
}
