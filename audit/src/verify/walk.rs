//! The walk along the chain: each record against the one before it, segment after segment, and
//! the records the audit layer writes about itself (segment starts, checkpoints, retention)
//! against the chain.

use std::path::{Path, PathBuf};

use super::error::{
    ChainBroken, ChainProblem, Malformed, NotALog, NotALogReason, VerifyError, json_message,
};
use crate::chain::GENESIS_HASH;
use crate::checkpoint::{CheckpointVerifier, SignedCheckpoint};
use crate::segments::segment_name;

use super::checkpoint_file::{CheckpointFile, Mismatch};
use super::error::{CheckpointProblem, RetentionProblem, Rewritten, SegmentProblem};
use super::first::check_first;
use super::line::{HexHash, Kind, Line, PrevHash, parse_line};
use super::records;

/// How the next line must start the input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The log's first record: `log_start`, seq 1.
    LogStart,
    /// The oldest segment left, the ones before it gone (or not given): a `segment_start`
    /// with the seq its file name says, whose `prev_hash` nothing here can confirm.
    Unlinked { named: u64 },
    /// A later segment: a `segment_start` that continues the chain.
    Linked { named: u64, previous: String },
    /// Not the first line of an input.
    Within,
}

/// What the walk found, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Walked {
    pub(super) records: u64,
    pub(super) first_seq: u64,
    pub(super) head_seq: u64,
    pub(super) head_hash: String,
    /// The `retention` record that accounts for the records before `first_seq`, if any.
    pub(super) retention_seq: Option<u64>,
    /// The first seq no `retention` record accounts for, when the log starts after seq 1.
    pub(super) first_unaccounted: u64,
    pub(super) checkpoints_in_log: u64,
    /// The largest seq a checkpoint in the log, with a verified signature, vouches for.
    pub(super) last_signed_seq: Option<u64>,
    /// The largest seq a checkpoint in the log, with a verified signature, covers: the seq it
    /// vouches for, or its own seq when the record is exactly what was signed.
    pub(super) signed_through: Option<u64>,
}

/// The state of a walk along the chain: the last good record and where the walk is.
#[derive(Debug)]
pub(super) struct Chain {
    /// Lines seen in the current input.
    line: u64,
    /// The last good record.
    seq: u64,
    hash: HexHash,
    records: u64,
    expect: Expect,
    /// The current segment, for messages.
    segment: Option<PathBuf>,
    /// The oldest record: its seq and its `prev_hash`.
    first: Option<(u64, HexHash)>,
    /// The last seq and hash of every segment walked, for `retention` records that were
    /// written but whose segments are not deleted yet.
    segment_ends: Vec<(u64, HexHash)>,
    key: Option<CheckpointVerifier>,
    file: Option<CheckpointFile>,
    /// `file.next_seq()`, kept here so the hot path compares one number per record.
    next_check: u64,
    retention_seq: Option<u64>,
    older_retention_through: Option<u64>,
    checkpoints_in_log: u64,
    last_signed_seq: Option<u64>,
    signed_through: Option<u64>,
    /// Every problem found so far, in the order found.
    problems: Vec<VerifyError>,
    /// Whether the line before was bad: the next line whose own hash is valid is taken as it
    /// is, without holding its seq and `prev_hash` against the chain.
    resync: bool,
    /// Bad lines since the last good record: each stands where one record should be, so the
    /// seq expected next is one more for each.
    skipped: u64,
}

impl Default for Chain {
    /// A walk over a single input that must start with the log's `log_start` record.
    fn default() -> Self {
        let mut genesis = [0u8; 64];
        genesis.copy_from_slice(GENESIS_HASH.as_bytes());
        Self {
            line: 0,
            seq: 0,
            hash: genesis,
            records: 0,
            expect: Expect::LogStart,
            segment: None,
            first: None,
            segment_ends: Vec::new(),
            key: None,
            file: None,
            next_check: u64::MAX,
            retention_seq: None,
            older_retention_through: None,
            checkpoints_in_log: 0,
            last_signed_seq: None,
            signed_through: None,
            problems: Vec::new(),
            resync: false,
            skipped: 0,
        }
    }
}

impl Chain {
    /// A walk that verifies checkpoint signatures with `key` and holds the records against
    /// the checkpoints of `file`.
    pub(super) fn with_checkpoints(
        key: Option<CheckpointVerifier>,
        file: Option<CheckpointFile>,
    ) -> Self {
        let next_check = file.as_ref().map_or(u64::MAX, CheckpointFile::next_seq);
        Self {
            key,
            file,
            next_check,
            ..Self::default()
        }
    }

    /// Takes the checkpoint file back once the walk is done.
    pub(super) fn take_checkpoint_file(&mut self) -> Option<CheckpointFile> {
        self.next_check = u64::MAX;
        self.file.take()
    }

    /// The error for a problem with the line after the last one pushed.
    pub(super) fn broken_next(&self, problem: ChainProblem) -> VerifyError {
        let mut error = self.broken(self.expected(), problem);
        if let VerifyError::Broken(broken) = &mut error {
            broken.line = self.line.saturating_add(1);
        }
        error
    }

    /// Starts the next segment, `path`, whose file name says it starts at seq `named`.
    pub(super) fn begin_segment(&mut self, path: &Path, named: u64) {
        self.expect = match (&self.segment, self.records) {
            (_, 0) if named == 1 => Expect::LogStart,
            (_, 0) => Expect::Unlinked { named },
            (Some(previous), _) => Expect::Linked {
                named,
                previous: file_name(previous),
            },
            (None, _) => Expect::Linked {
                named,
                previous: String::new(),
            },
        };
        self.segment = Some(path.to_path_buf());
        self.line = 0;
    }

    /// Ends the current segment: it must have held a record.
    pub(super) fn end_segment(&mut self) -> Result<(), VerifyError> {
        if self.line == 0 {
            if self.expect == Expect::LogStart {
                return Err(VerifyError::NotALog(NotALog {
                    path: self.segment.clone(),
                    reason: NotALogReason::Empty,
                }));
            }
            self.line = 1;
            let seq = match self.expect {
                Expect::Unlinked { named } => named,
                _ => self.expected(),
            };
            let problem = self.broken(seq, ChainProblem::Segment(SegmentProblem::Empty));
            self.problems.push(problem);
            // The segment after it cannot link to anything here.
            self.resync = true;
            return Ok(());
        }
        self.segment_ends.push((self.seq, self.hash));
        Ok(())
    }

    /// Checks the next line (without its newline) against the chain so far and advances.
    /// `terminated` says whether the line ended with a newline.
    ///
    /// A problem with the line is kept (see [`Chain::take_problems`]) and the walk goes on:
    /// a line whose own hash is valid becomes the head as it is; after any other bad line the
    /// next line with a valid hash does, its seq and `prev_hash` taken on trust. Only an input
    /// that is not an audit log at all ends the walk with an error.
    pub(super) fn push(&mut self, line: &[u8], terminated: bool) -> Result<(), VerifyError> {
        match self.push_checked(line, terminated) {
            Ok(()) => Ok(()),
            Err(error @ (VerifyError::NotALog(_) | VerifyError::Io(_))) => Err(error),
            Err(problem) => {
                self.problems.push(problem);
                self.resync_after(line, terminated);
                Ok(())
            }
        }
    }

    /// Keeps a problem found outside a line (an oversized line, an empty segment).
    pub(super) fn report(&mut self, problem: VerifyError) {
        self.problems.push(problem);
        self.resync = true;
        self.skipped = self.skipped.saturating_add(1);
    }

    /// Every problem found, in the order found.
    pub(super) fn take_problems(&mut self) -> Vec<VerifyError> {
        std::mem::take(&mut self.problems)
    }

    /// The seq the next line should hold.
    fn expected(&self) -> u64 {
        self.seq.saturating_add(1).saturating_add(self.skipped)
    }

    /// After a problem with `line`: if its own hash is valid it becomes the head, else the
    /// walk waits for the next line that has one.
    fn resync_after(&mut self, line: &[u8], terminated: bool) {
        let record = if terminated {
            parse_line(line).ok()
        } else {
            None
        };
        match record {
            Some(record) if record.seq > self.seq || self.records == 0 => {
                if self.first.is_none() {
                    let mut prev = [0u8; 64];
                    let written = record.prev_hash.as_bytes();
                    if written.len() == prev.len() {
                        prev.copy_from_slice(written);
                    }
                    self.first = Some((record.seq, prev));
                }
                self.seq = record.seq;
                self.hash = record.hash;
                self.records += 1;
                self.skipped = 0;
                self.resync = false;
            }
            _ => {
                self.resync = true;
                self.skipped = self.skipped.saturating_add(1);
            }
        }
    }

    fn push_checked(&mut self, line: &[u8], terminated: bool) -> Result<(), VerifyError> {
        self.line += 1;
        if self.expect != Expect::Within {
            return self.push_first(line, terminated);
        }
        let Some(expected) = self.seq.checked_add(1) else {
            return Err(self.broken(u64::MAX, ChainProblem::SeqExhausted));
        };
        let expected = expected.saturating_add(self.skipped);
        if !terminated {
            return Err(self.broken(expected, ChainProblem::TornTail));
        }
        let record = parse_line(line).map_err(|problem| self.broken(expected, problem))?;
        if std::mem::take(&mut self.resync) {
            // The first good line after a bad one: what it links to is gone.
            self.skipped = 0;
        } else {
            if record.seq != expected {
                let problem = ChainProblem::SeqOutOfOrder {
                    expected,
                    found: record.seq,
                };
                return Err(self.broken(expected, problem));
            }
            self.check_link(&record)?;
        }
        let checkpoint = match record.kind {
            // Held against the checkpoint file's record only when the record is exactly what
            // was signed: otherwise its other bytes could have been rewritten.
            Kind::Checkpoint => self.checkpoint(line, record.seq, &record.hash)?,
            Kind::Retention => {
                self.retention(line, record.seq)?;
                None
            }
            Kind::LogStart | Kind::SegmentStart | Kind::Other => None,
        };
        self.advance(record.seq, record.hash, checkpoint.as_ref())
    }

    /// Ends the walk: a log holds at least one record.
    pub(super) fn finish(self) -> Result<Walked, VerifyError> {
        let Some((first_seq, _)) = self.first else {
            return Err(VerifyError::NotALog(NotALog {
                path: self.segment,
                reason: NotALogReason::Empty,
            }));
        };
        Ok(Walked {
            records: self.records,
            first_seq,
            head_seq: self.seq,
            head_hash: String::from_utf8_lossy(&self.hash).into_owned(),
            retention_seq: self.retention_seq,
            first_unaccounted: self
                .older_retention_through
                .map_or(1, |through| through.saturating_add(1)),
            checkpoints_in_log: self.checkpoints_in_log,
            last_signed_seq: self.last_signed_seq,
            signed_through: self.signed_through,
        })
    }

    /// The first line of an input: `log_start`, or a `segment_start`.
    fn push_first(&mut self, line: &[u8], terminated: bool) -> Result<(), VerifyError> {
        let expect = std::mem::replace(&mut self.expect, Expect::Within);
        let (named, previous) = match expect {
            Expect::LogStart | Expect::Within => {
                let first = check_first(line, terminated).map_err(|error| match &self.segment {
                    Some(path) => error.with_path(path),
                    None => error,
                })?;
                let record = Line {
                    seq: first.seq,
                    prev_hash: PrevHash::Parsed(first.prev_hash),
                    hash: first.hash,
                    kind: Kind::LogStart,
                };
                self.check_link(&record)?;
                return self.open(record.seq, record.hash);
            }
            Expect::Unlinked { named } => (named, None),
            Expect::Linked { named, previous } => (named, Some(previous)),
        };
        let expected = match previous {
            Some(_) => self.expected(),
            None => named,
        };
        if !terminated {
            return Err(self.broken(expected, ChainProblem::TornTail));
        }
        let record = parse_line(line).map_err(|problem| self.broken(expected, problem))?;
        // After a bad line, what this one links to is gone: it is taken as it is.
        let resync = std::mem::take(&mut self.resync);
        self.skipped = 0;
        if previous.is_some() && !resync {
            if record.seq != expected {
                let problem = ChainProblem::SeqOutOfOrder {
                    expected,
                    found: record.seq,
                };
                return Err(self.broken(expected, problem));
            }
            self.check_link(&record)?;
        }
        // Once per segment, so the kind may as well come from a JSON parse wherever it is.
        let found = records::kind(line);
        if found.as_deref().map(str::as_bytes).map(Kind::of) != Some(Kind::SegmentStart) {
            let problem = SegmentProblem::NotSegmentStart { found };
            return Err(self.broken(record.seq, ChainProblem::Segment(problem)));
        }
        if record.seq != named {
            let problem = SegmentProblem::Named { named };
            return Err(self.broken(record.seq, ChainProblem::Segment(problem)));
        }
        let named_previous = records::previous_segment(line).map_err(|error| {
            let problem = ChainProblem::Malformed(Malformed::from_json(&error));
            self.broken(record.seq, problem)
        })?;
        match (previous, named_previous) {
            (Some(expected), Some(found)) if !expected.is_empty() && expected != found => {
                let problem = SegmentProblem::PreviousSegment { expected, found };
                Err(self.broken(record.seq, ChainProblem::Segment(problem)))
            }
            (Some(_), _) => self.advance(record.seq, record.hash, None),
            (None, _) => {
                let mut prev = [0u8; 64];
                let written = record.prev_hash.as_bytes();
                if written.len() == prev.len() {
                    prev.copy_from_slice(written);
                } else {
                    // Not a hash at all: nothing can ever link to it.
                    let problem = ChainProblem::PrevHashMismatch {
                        expected: "a 64-digit hash".to_owned(),
                        found: record.prev_hash.to_text(),
                    };
                    return Err(self.broken(record.seq, problem));
                }
                self.hash = prev;
                self.open(record.seq, record.hash)
            }
        }
    }

    /// Records the oldest record of the walk and advances past it.
    fn open(&mut self, seq: u64, hash: HexHash) -> Result<(), VerifyError> {
        self.first = Some((seq, self.hash));
        if let Some(file) = self.file.as_mut() {
            let prev = self.hash;
            let result = file.start_at(seq, &prev);
            self.next_check = file.next_seq();
            result.map_err(|mismatch| self.rewritten(mismatch))?;
        }
        self.advance(seq, hash, None)
    }

    /// The record's `prev_hash` must be the previous record's hash.
    fn check_link(&self, record: &Line<'_>) -> Result<(), VerifyError> {
        if record.prev_hash.as_bytes() != self.hash {
            let problem = ChainProblem::PrevHashMismatch {
                expected: String::from_utf8_lossy(&self.hash).into_owned(),
                found: record.prev_hash.to_text(),
            };
            return Err(self.broken(record.seq, problem));
        }
        Ok(())
    }

    /// Moves the head to a record that checked out.
    fn advance(
        &mut self,
        seq: u64,
        hash: HexHash,
        checkpoint: Option<&SignedCheckpoint>,
    ) -> Result<(), VerifyError> {
        if seq >= self.next_check
            && let Some(file) = self.file.as_mut()
        {
            let result = file.check(seq, &hash, checkpoint);
            self.next_check = file.next_seq();
            result.map_err(|mismatch| self.rewritten(mismatch))?;
        }
        self.seq = seq;
        self.hash = hash;
        self.records += 1;
        Ok(())
    }

    /// A `checkpoint` record must vouch for the record before it, with a valid signature
    /// when there is a key.
    /// Returns the signed checkpoint when the record is exactly the one the writer makes of it.
    fn checkpoint(
        &mut self,
        line: &[u8],
        seq: u64,
        hash: &HexHash,
    ) -> Result<Option<SignedCheckpoint>, VerifyError> {
        let problem = ChainProblem::Checkpoint;
        let signed = records::checkpoint(line).map_err(|error| {
            let message = json_message(&error);
            self.broken(seq, problem(CheckpointProblem::Malformed { message }))
        })?;
        let vouched = &signed.checkpoint;
        if vouched.seq != self.seq || vouched.head_hash.as_bytes() != self.hash {
            let wrong = CheckpointProblem::WrongHead {
                vouched_seq: vouched.seq,
                vouched_hash: vouched.head_hash.clone(),
                head_seq: self.seq,
                head_hash: String::from_utf8_lossy(&self.hash).into_owned(),
            };
            return Err(self.broken(seq, problem(wrong)));
        }
        if let Some(key) = &self.key {
            key.verify(&signed)
                .map_err(|error| self.broken(seq, problem(CheckpointProblem::Signature(error))))?;
        }
        let canonical = records::is_canonical_checkpoint(seq, hash, &signed);
        if self.key.is_some() {
            self.last_signed_seq = Some(vouched.seq);
            self.signed_through = Some(if canonical { seq } else { vouched.seq });
        }
        self.checkpoints_in_log += 1;
        Ok(canonical.then_some(signed))
    }

    /// A `retention` record must agree with the chain about the last record it removes, and
    /// may account for the records missing before the oldest one.
    fn retention(&mut self, line: &[u8], seq: u64) -> Result<(), VerifyError> {
        let problem = ChainProblem::Retention;
        let record = records::retention(line).map_err(|error| {
            let message = json_message(&error);
            self.broken(seq, problem(RetentionProblem::Malformed { message }))
        })?;
        let through = record.removed_through_seq;
        let claimed = record.removed_through_hash;
        if through >= seq {
            return Err(self.broken(seq, problem(RetentionProblem::NotBefore { through })));
        }
        let Some((first_seq, first_prev)) = self.first else {
            return Ok(());
        };
        // What the chain says the hash of `through` is, if it still knows.
        let actual = if through.checked_add(1) == Some(first_seq) {
            // The retention record that explains the start: it must name what it deleted, and
            // what it names must be gone (a file named like a segment that is not a regular
            // file is not listed as one, so existence is asked of the directory itself).
            let from = self
                .older_retention_through
                .map_or(1, |t| t.saturating_add(1));
            let dir = self.segment.as_deref().and_then(Path::parent);
            if let Err(wrong) =
                check_removed_segments(record.removed_segments.as_deref(), from, through, dir)
            {
                let wrong = RetentionProblem::RemovedSegments {
                    from,
                    through,
                    problem: wrong,
                };
                return Err(self.broken(seq, problem(wrong)));
            }
            Some(first_prev)
        } else if through >= first_seq {
            let end = self
                .segment_ends
                .binary_search_by_key(&through, |(end, _)| *end)
                .ok()
                .and_then(|i| self.segment_ends.get(i));
            match end {
                Some((_, hash)) => Some(*hash),
                None => {
                    let not_end = RetentionProblem::NotSegmentEnd { through };
                    return Err(self.broken(seq, problem(not_end)));
                }
            }
        } else {
            // An earlier round of retention; those records are gone.
            self.older_retention_through = Some(
                self.older_retention_through
                    .map_or(through, |t| t.max(through)),
            );
            None
        };
        if let Some(actual) = actual {
            if claimed.as_bytes() != actual {
                let mismatch = RetentionProblem::HashMismatch {
                    through,
                    claimed,
                    actual: String::from_utf8_lossy(&actual).into_owned(),
                };
                return Err(self.broken(seq, problem(mismatch)));
            }
            // It removes everything before the oldest record kept (or, if its deletions are
            // not finished, more than that).
            self.retention_seq.get_or_insert(seq);
        }
        Ok(())
    }

    fn broken(&self, seq: u64, problem: ChainProblem) -> VerifyError {
        VerifyError::Broken(ChainBroken {
            path: self.segment.clone(),
            line: self.line,
            seq,
            problem,
        })
    }

    fn rewritten(&self, mismatch: Mismatch) -> VerifyError {
        let file = self
            .file
            .as_ref()
            .map(|file| file.path().to_path_buf())
            .unwrap_or_default();
        VerifyError::Rewritten(Box::new(Rewritten {
            segment: self.segment.clone().unwrap_or_default(),
            line: self.line,
            seq: mismatch.seq,
            file,
            file_line: mismatch.file_line,
            evidence: mismatch.evidence,
            confirmed_through: mismatch.confirmed_through,
        }))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `removed_segments` must name segment files in the log's naming scheme, oldest first, the first
/// starting at `from`, none past `through`, none still in `dir` (the log directory).
///
/// The files between the first and `through` are gone, so where each began cannot be checked:
/// only that the names are well formed, in order and within the removed range.
fn check_removed_segments(
    names: Option<&[String]>,
    from: u64,
    through: u64,
    dir: Option<&Path>,
) -> Result<(), String> {
    let names = names.ok_or_else(|| "is missing".to_owned())?;
    let mut previous: Option<u64> = None;
    for name in names {
        let shown: String = name.chars().take(80).flat_map(char::escape_debug).collect();
        let seq = super::named_seq(Path::new(name))
            .filter(|seq| segment_name(*seq) == *name)
            .ok_or_else(|| format!("holds `{shown}`, which is not a segment file name"))?;
        let expected_first = previous.is_none() && seq != from;
        if expected_first || previous.is_some_and(|p| seq <= p) || seq > through {
            return Err(format!("holds `{shown}` out of place"));
        }
        if dir.is_some_and(|dir| std::fs::symlink_metadata(dir.join(name)).is_ok()) {
            return Err(format!("holds `{shown}`, which still exists"));
        }
        previous = Some(seq);
    }
    if previous.is_none() {
        return Err("is empty".to_owned());
    }
    Ok(())
}
