//! What the writer checks before it extends a log: the history it would sign over.
//!
//! A checkpoint signs the head, and through the chain everything before it; so the writer must
//! not append to (and later sign over) records that were altered while the log was closed. The
//! records a checkpoint signed with the writer's own key already vouches for need no reading:
//! the newest such checkpoint in `checkpoints.jsonl` is the anchor, and only its segment and
//! the ones after it are read, each record checked for its hash, seq and link, the anchor's
//! record for the hash the checkpoint signed. Without a signer (or a verifiable checkpoint)
//! nothing vouches for any record and the whole log is read.
//!
//! A `retention` record that no signed checkpoint covers is refused when the segments it names
//! are gone: the writer makes a checkpoint covering each retention record durable before it
//! deletes anything, so only a forger leaves that state behind.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::super::chain::{GENESIS_HASH, MAX_RECORD_BYTES};
use super::super::checkpoint::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, CheckpointError, CheckpointVerifier, SignedCheckpoint,
};
use super::super::error::{AuditError, Damage};
use super::super::segments::Segment;
use super::bodies::RETENTION_KIND;
use super::lines::{last_line, parse_line, whole_lines_end};
use super::open::check_start;

/// The newest checkpoint signed with the writer's key: record `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    seq: u64,
    hash: String,
}

#[derive(Deserialize)]
struct CheckpointLine {
    #[serde(flatten)]
    signed: SignedCheckpoint,
}

#[derive(Deserialize)]
struct RetentionFields {
    #[serde(default)]
    removed_segments: Vec<String>,
    removed_through_seq: u64,
    removed_through_hash: String,
}

/// A `retention` record met on the walk, and where.
struct Retention {
    seq: u64,
    path: PathBuf,
    line: u64,
    fields: RetentionFields,
}

/// Checks the records of `segments` (the whole log, oldest first, the active one last) that no
/// checkpoint signed by `verifier` vouches for; refuses a log that fails.
pub(super) fn check_history(
    dir: &Path,
    segments: &[Segment],
    verifier: Option<&CheckpointVerifier>,
) -> Result<(), AuditError> {
    let Some(first) = segments.first() else {
        return Ok(());
    };
    let anchor = match verifier {
        Some(verifier) => newest_checkpoint(dir, verifier)?,
        None => None,
    };
    let start = match &anchor {
        Some(anchor) => {
            let missing = || AuditError::CheckpointedRecordMissing {
                path: dir.to_path_buf(),
                seq: anchor.seq,
            };
            segments
                .iter()
                .rposition(|s| s.first_seq <= anchor.seq)
                .ok_or_else(missing)?
        }
        None => 0,
    };
    let mut walk = Walk {
        verifier,
        anchor: anchor.clone(),
        covered_through: anchor.as_ref().map_or(0, |a| a.seq),
        retentions: Vec::new(),
        prev_hash: None,
        head: 0,
        first_prev_hash: None,
    };
    if let Some(before) = start.checked_sub(1).and_then(|i| segments.get(i)) {
        walk.prev_hash = Some(closed_segment_head(before)?);
    }
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate().skip(start) {
        walk.segment(segment, index == last)?;
    }
    if let Some(anchor) = &anchor
        && walk.head < anchor.seq
    {
        return Err(AuditError::CheckpointedRecordMissing {
            path: dir.to_path_buf(),
            seq: anchor.seq,
        });
    }
    let present: HashSet<String> = segments
        .iter()
        .filter_map(|s| Some(s.path.file_name()?.to_str()?.to_owned()))
        .collect();
    if verifier.is_some() {
        for retention in walk
            .retentions
            .iter()
            .filter(|r| r.seq > walk.covered_through)
        {
            let gone = first.first_seq > retention.fields.removed_through_seq
                || retention
                    .fields
                    .removed_segments
                    .iter()
                    .any(|name| !present.contains(name));
            if gone {
                return Err(AuditError::Damaged {
                    path: retention.path.clone(),
                    line: retention.line,
                    seq: retention.seq,
                    problem: Damage::UnsignedRetention,
                });
            }
        }
    }
    if start == 0 && first.first_seq != 1 {
        let explained = walk.retentions.iter().any(|r| {
            r.fields.removed_through_seq == first.first_seq - 1
                && walk.first_prev_hash.as_deref() == Some(&*r.fields.removed_through_hash)
                && (verifier.is_none() || r.seq <= walk.covered_through)
        });
        if !explained {
            return Err(AuditError::Damaged {
                path: first.path.clone(),
                line: 1,
                seq: first.first_seq,
                problem: Damage::UnexplainedStart {
                    signed: verifier.is_some(),
                },
            });
        }
    }
    Ok(())
}

/// The newest checkpoint in `checkpoints.jsonl` that `verifier` accepts. Lines it does not
/// accept are skipped: the file is not trusted, only signatures are.
fn newest_checkpoint(
    dir: &Path,
    verifier: &CheckpointVerifier,
) -> Result<Option<Anchor>, AuditError> {
    let path = dir.join(CHECKPOINT_FILE);
    let read = |error| AuditError::Read {
        path: path.clone(),
        error,
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(read(error)),
    };
    let mut newest: Option<Anchor> = None;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_RECORD_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .map_err(read)?;
        if n == 0 {
            break;
        }
        let Ok(line) = serde_json::from_slice::<CheckpointLine>(&buf) else {
            continue;
        };
        let checkpoint = &line.signed.checkpoint;
        if verifier.verify(&line.signed).is_ok()
            && newest.as_ref().is_none_or(|n| n.seq < checkpoint.seq)
        {
            newest = Some(Anchor {
                seq: checkpoint.seq,
                hash: checkpoint.head_hash.clone(),
            });
        }
    }
    Ok(newest)
}

/// The hash of the last record of a closed segment, checked on its own.
fn closed_segment_head(segment: &Segment) -> Result<String, AuditError> {
    let read = |error| AuditError::Read {
        path: segment.path.clone(),
        error,
    };
    let file = File::open(&segment.path).map_err(read)?;
    let damaged = |problem| AuditError::Damaged {
        path: segment.path.clone(),
        line: 0,
        seq: segment.first_seq,
        problem,
    };
    match last_line(&file).map_err(read)? {
        Ok(Some(line)) => Ok(parse_line(&line).map_err(damaged)?.hash),
        Ok(None) => Err(damaged(Damage::Missing)),
        Err(problem) => Err(damaged(problem)),
    }
}

/// The state of a walk along the chain.
struct Walk<'a> {
    verifier: Option<&'a CheckpointVerifier>,
    anchor: Option<Anchor>,
    /// The newest seq a checkpoint signed with the writer's key vouches for.
    covered_through: u64,
    retentions: Vec<Retention>,
    /// The hash the next record must link to, when known.
    prev_hash: Option<String>,
    /// The seq of the last record read.
    head: u64,
    /// The `prev_hash` of the first record read.
    first_prev_hash: Option<String>,
}

impl Walk<'_> {
    /// Checks every whole record of `segment` (up to a torn tail for the active one, which
    /// opening repairs; a closed segment must end with a newline).
    fn segment(&mut self, segment: &Segment, active: bool) -> Result<(), AuditError> {
        let path = &segment.path;
        let read = |error| AuditError::Read {
            path: path.clone(),
            error,
        };
        let file = File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        let end = whole_lines_end(&file, len).map_err(read)?;
        if end != len && !active {
            let lines = count_lines(&file, end).map_err(read)?;
            return Err(AuditError::Damaged {
                path: path.clone(),
                line: lines + 1,
                seq: segment.first_seq.saturating_add(lines),
                problem: Damage::Torn,
            });
        }
        let file = File::open(path).map_err(read)?;
        let mut reader = BufReader::new(file.take(end));
        let mut buf = Vec::new();
        let mut number = 0u64;
        if segment.first_seq == 1 {
            self.prev_hash = Some(GENESIS_HASH.to_owned());
        }
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_RECORD_BYTES as u64)
                .read_until(b'\n', &mut buf)
                .map_err(read)?;
            if n == 0 {
                break;
            }
            number += 1;
            let seq = segment.first_seq.saturating_add(number - 1);
            let damaged = |problem| AuditError::Damaged {
                path: path.clone(),
                line: number,
                seq,
                problem,
            };
            let Some(line) = buf.strip_suffix(b"\n") else {
                return Err(damaged(Damage::TooLong));
            };
            let record = parse_line(line).map_err(damaged)?;
            if record.seq != seq {
                return Err(damaged(Damage::SeqOutOfOrder { found: record.seq }));
            }
            if number == 1 {
                check_start(&record, segment.first_seq).map_err(damaged)?;
            }
            if self.first_prev_hash.is_none() {
                self.first_prev_hash = Some(record.prev_hash.clone());
            }
            if let Some(expected) = self.prev_hash.take()
                && record.prev_hash != expected
            {
                return Err(damaged(Damage::PrevHashMismatch {
                    expected,
                    found: record.prev_hash,
                }));
            }
            if let Some(anchor) = &self.anchor
                && anchor.seq == seq
                && anchor.hash != record.hash
            {
                return Err(damaged(Damage::CheckpointMismatch));
            }
            match record.kind.as_deref() {
                Some(CHECKPOINT_KIND) => {
                    self.checkpoint(line, seq, &record.prev_hash)
                        .map_err(damaged)?;
                }
                Some(RETENTION_KIND) => {
                    // A retention record that does not parse is the verifier's to report.
                    if let Ok(fields) = serde_json::from_slice::<RetentionFields>(line) {
                        self.retentions.push(Retention {
                            seq,
                            path: path.clone(),
                            line: number,
                            fields,
                        });
                    }
                }
                _ => {}
            }
            self.prev_hash = Some(record.hash);
            self.head = seq;
        }
        Ok(())
    }

    /// A checkpoint record at `seq`: one signed with the writer's key vouches for the record
    /// before it (whose hash is `prev_hash`, already linked), and so for every record up to it.
    /// Checkpoints of another key (an earlier one) vouch for nothing here.
    fn checkpoint(&mut self, line: &[u8], seq: u64, prev_hash: &str) -> Result<(), Damage> {
        let Some(verifier) = self.verifier else {
            return Ok(());
        };
        let Ok(signed) = serde_json::from_slice::<SignedCheckpoint>(line) else {
            return Ok(());
        };
        match verifier.verify(&signed) {
            Ok(()) => {}
            Err(CheckpointError::WrongKey { .. }) => return Ok(()),
            Err(error) => return Err(Damage::BadCheckpoint(error)),
        }
        let vouched = seq.saturating_sub(1);
        if signed.checkpoint.seq != vouched || signed.checkpoint.head_hash != prev_hash {
            return Err(Damage::CheckpointMismatch);
        }
        self.covered_through = self.covered_through.max(vouched);
        Ok(())
    }
}

/// Lines in the first `end` bytes of `file`.
fn count_lines(file: &File, end: u64) -> std::io::Result<u64> {
    let mut reader = BufReader::new(file.take(end));
    let mut count = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}
