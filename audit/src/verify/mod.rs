//! The verifier: walks a log, segment after segment, and names the first record where the chain
//! breaks, or the checkpoint that contradicts it.
//!
//! It needs nothing but the bytes (and, to check signatures, the public key): no policy engine,
//! no runtime, no configuration. Files are read in large chunks into one reused buffer, so a
//! large log is never held in memory at once, and each record is checked from its fixed prefix
//! without a JSON parse, so verifying costs little more than hashing the bytes.

mod checkpoint_file;
mod error;
mod first;
mod line;
mod read;
mod records;
mod walk;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[cfg(feature = "index")]
pub(crate) use self::error::json_message;
pub use self::error::{
    ChainBroken, ChainProblem, CheckpointFileError, CheckpointProblem, CutShort, Evidence,
    Malformed, NotALog, NotALogReason, ReadFailed, RetentionProblem, Rewritten, SegmentProblem,
    UnexplainedStart, UnsignedTail, VerifyError,
};
#[cfg(feature = "index")]
pub(crate) use self::line::{RETENTION_KIND, read_frame};
#[cfg(feature = "index")]
pub(crate) use self::records::retention;

use self::checkpoint_file::CheckpointFile;
use self::read::{MAX_LINE, Stop, buffer_size, for_each_line, for_each_line_skipping};
use self::walk::Chain;

/// The read size of [`verify_reader`], which mostly checks small logs when a writer opens one.
const READER_BUFFER: usize = 64 * 1024;
use super::checkpoint::{CHECKPOINT_FILE, CheckpointVerifier};
use super::segments::{SEGMENT_PREFIX, SEGMENT_SUFFIX, Segment, list_segments};

/// What a log that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records verified.
    pub records: u64,
    /// The seq of the oldest record: 1, unless retention removed older segments (see
    /// [`VerifyReport::origin`]).
    pub first_seq: u64,
    /// The last record's seq.
    pub head_seq: u64,
    /// The last record's hash. Without a checkpoint file, keep it somewhere else to detect a
    /// later truncation at a line boundary, which a chain alone cannot reveal.
    pub head_hash: String,
    /// How the verified records begin.
    pub origin: Origin,
    /// Number of segment files read.
    pub segments: u64,
    /// Number of bytes read.
    pub bytes: u64,
    /// What the checkpoints showed.
    pub checkpoints: CheckpointReport,
}

/// How the verified records of a log begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// With the log's `log_start` record, seq 1.
    LogStart,
    /// After records that retention removed, as the `retention` record with seq `record_seq`
    /// declares.
    Retention {
        /// The seq of that `retention` record.
        record_seq: u64,
        /// Whether a checkpoint whose signature was checked covers it. Always true with a key
        /// (an uncovered retention record is refused then); false without one, when anyone could
        /// have written it.
        signed: bool,
    },
    /// With the first record of a single segment file given on its own: its link to the
    /// segment before it was not checked (verify the log directory for that).
    Unlinked,
}

/// What the checkpoints of a log showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// `checkpoint` records in the log; each vouches for the record just before it.
    pub in_log: u64,
    /// The id of the key their signatures (and the checkpoint file's) were verified with;
    /// `None` when no key was given, so signatures were not checked.
    pub key_id: Option<String>,
    /// The checkpoint file held against the log, if any.
    pub file: Option<PathBuf>,
    /// Signed checkpoints in the checkpoint file; all verified with the key.
    pub file_checkpoints: u64,
    /// Checkpoints of the file that vouch for a record still in the log (and matched it).
    pub file_matched: u64,
    /// The largest seq a checkpoint with a verified signature vouches for: records after it
    /// are protected by the chain alone.
    pub last_vouched_seq: Option<u64>,
    /// With a key, the largest seq a checkpoint with a verified signature covers: the records
    /// it vouches for and, when its record is exactly what was signed, that record itself.
    pub signed_through_seq: Option<u64>,
    /// With a key, the number of records after `signed_through_seq` (all of them when it is
    /// `None`): accepted only with [`VerifyOptions::allow_unsigned_tail`].
    pub unsigned_tail: u64,
}

/// How to verify a log: see [`verify_log`].
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// The public key that signed the log's checkpoints. With it, every `checkpoint` record's
    /// signature is checked, and so is every line of the checkpoint file.
    pub key: Option<CheckpointVerifier>,
    /// A checkpoint file shipped elsewhere. Needs `key`. Default, when `key` is given and the
    /// log is a directory: `<log>/checkpoints.jsonl` if it exists.
    pub checkpoints: Option<PathBuf>,
    /// Called after every read with the bytes read so far and the total.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
    /// With `key`, accept records after the last one a signed checkpoint covers instead of
    /// failing (the report still counts them).
    pub allow_unsigned_tail: bool,
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("key", &self.key)
            .field("checkpoints", &self.checkpoints)
            .field("progress", &self.progress.is_some())
            .field("allow_unsigned_tail", &self.allow_unsigned_tail)
            .finish()
    }
}

/// Verifies the audit log at `path` (a log directory or a single segment file) without a key.
///
/// Errors name the file; see [`verify_log`] for what is checked.
pub fn verify_file(path: &Path) -> Result<VerifyReport, VerifyError> {
    verify_log(path, &VerifyOptions::default())
}

/// Verifies the audit log at `path`: a log directory, or a single segment file.
///
/// The segments are read in seq order and the chain runs on from each into the next: every
/// line must end with a newline, carry the SHA-256 of its own bytes in `hash`, hold the
/// previous seq plus one and the previous record's hash in `prev_hash`. The first segment
/// starts with the `log_start` record; every later one with a `segment_start` record named by
/// its file. If the oldest segment left starts after seq 1, a `retention` record later in the
/// chain must account for the records before it. Every `checkpoint` record must vouch for the
/// record just before it; with [`VerifyOptions::key`] its signature must verify too.
///
/// With a checkpoint file (see [`VerifyOptions::checkpoints`]), every checkpoint in it must be
/// signed by the key and match the log's record at its seq while that record is still there;
/// a checkpoint for a seq past the log's end means the log was cut short. This is what
/// catches a log rewritten, hashes and all, from some point on, and a log cut short after its
/// last checkpoint, neither of which a chain alone can reveal.
///
/// The first problem found is returned; [`VerifyError::first_bad_seq`] names its seq.
///
/// ```
/// use mandate_audit::{VerifyOptions, verify_log};
/// use mandate_audit::synthetic::{SyntheticSpec, write_synthetic_log};
///
/// let dir = tempfile::tempdir()?;
/// let spec = SyntheticSpec { records: 50, segment_records: 20, ..SyntheticSpec::default() };
/// let (head_seq, head_hash) = write_synthetic_log(dir.path(), &spec)?;
///
/// let report = verify_log(dir.path(), &VerifyOptions::default())?;
/// assert_eq!((report.segments, report.head_seq, report.head_hash), (3, head_seq, head_hash));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_log(path: &Path, options: &VerifyOptions<'_>) -> Result<VerifyReport, VerifyError> {
    let verification = verify_log_all(path, options)?;
    match verification.problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(verification.report),
    }
}

/// What [`verify_log_all`] found in a log it could read.
#[derive(Debug)]
pub struct Verification {
    /// What the log holds, as far as the walk got: meaningful as a whole only when `problems`
    /// is empty.
    pub report: VerifyReport,
    /// Every problem found, in the order found: a line of the checkpoint file that does not
    /// verify (read first), then the walk along the chain, then what only the end of the walk
    /// shows (a missing start, a cut end, an unsigned tail). Empty when the log verified.
    pub problems: Vec<VerifyError>,
}

impl Verification {
    /// The seq of the first problem, if any has one.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problems.first().and_then(VerifyError::first_bad_seq)
    }
}

/// Verifies the audit log at `path` as [`verify_log`] does, but goes on after a problem and
/// returns every problem it finds.
///
/// After a bad line the walk resynchronises on the next line whose own hash is valid (its seq
/// and `prev_hash` are then not held against the chain), so that one damaged record, an
/// oversized line included, cannot hide tampering after it. The checks at the end (a missing
/// start, a cut end, an unsigned tail) run too.
///
/// Returns an error only when the log cannot be read at all: it is missing or unreadable, is
/// not an audit log, or the checkpoint file cannot be read ([`VerifyError::is_unreadable`]).
pub fn verify_log_all(
    path: &Path,
    options: &VerifyOptions<'_>,
) -> Result<Verification, VerifyError> {
    let mut problems = Vec::new();
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| {
            VerifyError::Io(ReadFailed {
                path: Some(path),
                error,
            })
        }
    };
    let metadata = std::fs::metadata(path).map_err(io_error(path))?;
    let (segments, default_checkpoints) = if metadata.is_dir() {
        let segments = list_segments(path).map_err(io_error(path))?;
        if segments.is_empty() {
            return Err(VerifyError::NotALog(NotALog {
                path: Some(path.to_path_buf()),
                reason: NotALogReason::NoSegments,
            }));
        }
        let default = path.join(CHECKPOINT_FILE);
        (segments, default.is_file().then_some(default))
    } else {
        let segment = Segment {
            path: path.to_path_buf(),
            first_seq: named_seq(path).unwrap_or(1),
        };
        (vec![segment], None)
    };

    let checkpoints = options.checkpoints.clone().or_else(|| {
        options
            .key
            .as_ref()
            .and_then(|_| default_checkpoints.clone())
    });
    let file = match (&checkpoints, &options.key) {
        (Some(file), Some(key)) => match CheckpointFile::load(file, key) {
            Ok(file) => Some(file),
            Err(error) => {
                let error = VerifyError::CheckpointFile(error);
                if error.is_unreadable() {
                    return Err(error);
                }
                // A forged or damaged line: the log is still walked, without the file.
                problems.push(error);
                None
            }
        },
        (Some(file), None) => return Err(VerifyError::CheckpointsNeedKey(file.clone())),
        (None, _) => None,
    };

    let (mut total, mut largest) = (0u64, 0u64);
    for segment in &segments {
        let len = std::fs::metadata(&segment.path)
            .map_err(io_error(&segment.path))?
            .len();
        total = total.saturating_add(len);
        largest = largest.max(len);
    }
    let mut chain = Chain::with_checkpoints(options.key.clone(), file);
    let mut buf = vec![0; buffer_size(largest)];
    let mut done = 0u64;
    for segment in &segments {
        let input = File::open(&segment.path).map_err(io_error(&segment.path))?;
        chain.begin_segment(&segment.path, segment.first_seq);
        let on_read = |read: u64| {
            done = done.saturating_add(read);
            if let Some(progress) = options.progress {
                progress(done, total.max(done));
            }
        };
        let chain = std::cell::RefCell::new(&mut chain);
        for_each_line_skipping(
            input,
            &mut buf,
            on_read,
            |line, terminated| chain.borrow_mut().push(line, terminated),
            || {
                let mut chain = chain.borrow_mut();
                let problem = chain.too_long();
                chain.report(problem);
                Ok(())
            },
        )
        .map_err(|stop| chain.borrow().stopped(stop, &segment.path))?;
        chain.into_inner().end_segment()?;
    }

    let file = chain.take_checkpoint_file();
    problems.extend(chain.take_problems());
    let walked = match chain.finish() {
        Ok(walked) => walked,
        // No line had a valid hash: the first bad line says more than "empty".
        Err(error) => {
            return Err(problems
                .into_iter()
                .find(|problem| matches!(problem, VerifyError::Broken(_)))
                .unwrap_or(error));
        }
    };

    // The largest seq a checkpoint whose signature was checked vouches for, in the log or in
    // the checkpoint file.
    let signed_through = walked
        .signed_through
        .max(file.as_ref().and_then(|file| file.confirmed_through))
        .filter(|_| options.key.is_some());
    let unexplained = |uncovered_retention| {
        VerifyError::UnexplainedStart(UnexplainedStart {
            log: path.to_path_buf(),
            segment: segments.first().map(|s| s.path.clone()).unwrap_or_default(),
            first_seq: walked.first_seq,
            first_missing: walked.first_unaccounted,
            uncovered_retention,
        })
    };
    let origin = match walked.retention_seq {
        _ if walked.first_seq <= 1 => Origin::LogStart,
        Some(record_seq) => {
            // Anyone can append a `retention` record and recompute the hashes: it excuses the
            // missing start only once a signed checkpoint at or after it vouches for it. With
            // a key that is required; without one nothing can be checked, which the report says.
            let signed = signed_through.is_some_and(|through| through >= record_seq);
            if options.key.is_some() && !signed {
                problems.push(unexplained(Some(record_seq)));
            }
            Origin::Retention { record_seq, signed }
        }
        None if metadata.is_dir() => {
            problems.push(unexplained(None));
            Origin::LogStart
        }
        None => Origin::Unlinked,
    };
    let mut checkpoints = CheckpointReport::default();
    if let Some(file) = file {
        if let Err(beyond) = file.finish(walked.head_seq) {
            problems.push(VerifyError::CutShort(CutShort {
                log: path.to_path_buf(),
                head_seq: walked.head_seq,
                vouched_seq: beyond.vouched_seq,
                file: file.path().to_path_buf(),
                file_line: beyond.file_line,
            }));
        }
        checkpoints = CheckpointReport {
            file: Some(file.path().to_path_buf()),
            file_checkpoints: file.entries,
            file_matched: file.matched,
            last_vouched_seq: file.confirmed_through,
            ..CheckpointReport::default()
        };
    }
    if options.key.is_some() {
        let covered_through = signed_through.unwrap_or(walked.first_seq.saturating_sub(1));
        let unsigned = walked
            .head_seq
            .saturating_sub(covered_through)
            .min(walked.records);
        if unsigned > 0 && !options.allow_unsigned_tail {
            problems.push(VerifyError::UnsignedTail(UnsignedTail {
                log: path.to_path_buf(),
                first_seq: walked.first_seq,
                signed_through,
                head_seq: walked.head_seq,
            }));
        }
        checkpoints.signed_through_seq = signed_through;
        checkpoints.unsigned_tail = unsigned;
    }
    checkpoints.in_log = walked.checkpoints_in_log;
    checkpoints.key_id = options.key.as_ref().map(|key| key.key_id().to_owned());
    checkpoints.last_vouched_seq = checkpoints.last_vouched_seq.max(walked.last_signed_seq);

    Ok(Verification {
        report: VerifyReport {
            records: walked.records,
            first_seq: walked.first_seq,
            head_seq: walked.head_seq,
            head_hash: walked.head_hash,
            origin,
            segments: segments.len() as u64,
            bytes: done,
            checkpoints,
        },
        problems,
    })
}

/// Verifies a single-file audit log read from `reader`: it must start with the `log_start`
/// record (see [`verify_log`] for the rest).
///
/// ```
/// use mandate_audit::{NotALogReason, VerifyError, verify_reader};
///
/// let error = verify_reader(&b"hello\n"[..]).unwrap_err();
/// assert!(matches!(error, VerifyError::NotALog(ref e) if e.reason == NotALogReason::NotFramed));
/// assert_eq!(error.first_bad_seq(), None);
/// ```
pub fn verify_reader<R: BufRead>(reader: R) -> Result<VerifyReport, VerifyError> {
    let mut chain = Chain::default();
    let mut buf = vec![0; READER_BUFFER];
    let mut bytes = 0u64;
    for_each_line(
        reader,
        &mut buf,
        |read| bytes = bytes.saturating_add(read),
        |line, terminated| chain.push(line, terminated),
    )
    .map_err(|stop| match stop {
        Stop::Io(error) => VerifyError::Io(ReadFailed { path: None, error }),
        Stop::TooLong => chain.too_long(),
        Stop::Line(error) => error,
    })?;
    if let Some(first) = chain.take_problems().into_iter().next() {
        return Err(first);
    }
    let walked = chain.finish()?;
    Ok(VerifyReport {
        records: walked.records,
        first_seq: walked.first_seq,
        head_seq: walked.head_seq,
        head_hash: walked.head_hash,
        origin: Origin::LogStart,
        segments: 1,
        bytes,
        checkpoints: CheckpointReport {
            in_log: walked.checkpoints_in_log,
            ..CheckpointReport::default()
        },
    })
}

/// The seq a segment file's name gives, if it is named like a segment.
fn named_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Chain {
    /// The error for a read that stopped early in `path`.
    fn stopped(&self, stop: Stop, path: &Path) -> VerifyError {
        match stop {
            Stop::Io(error) => VerifyError::Io(ReadFailed {
                path: Some(path.to_path_buf()),
                error,
            }),
            Stop::TooLong => self.too_long(),
            Stop::Line(error) => error,
        }
    }

    /// The error for a line longer than any record.
    fn too_long(&self) -> VerifyError {
        self.broken_next(ChainProblem::Malformed(Malformed::TooLong {
            limit: MAX_LINE,
        }))
    }
}
