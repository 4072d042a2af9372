//! Every error the verifier reports, in one module: [`VerifyError`] and its parts, from a broken
//! hash link or a malformed line to segment layout, retention, and the checkpoints in the log and
//! in a checkpoint file shipped elsewhere.
//!
//! Messages are lowercase, have no final period, put file names in backticks and name the file,
//! line and seq at fault. Underlying errors are part of the message and kept in a public field
//! rather than exposed as [`std::error::Error::source`], so that a report chain does not print
//! them twice.
//!
//! This module sits below everything else in the crate that it serves (the chain's line checks,
//! the segment layout, the verifier): it imports nothing of the crate but the checkpoint's error, so
//! it cannot take part in an import cycle (see the test at the end).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;

/// What is wrong with how a segment starts (a [`ChainProblem::Segment`](ChainProblem::Segment)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentProblem {
    /// The segment file holds no record at all.
    #[error("the segment file is empty: every segment starts with a record")]
    Empty,
    /// A segment other than the log's first does not open with a `segment_start` record.
    #[error("a segment other than the log's first must start with a `segment_start` record, found {}", match found {
        Some(kind) => format!("a `{kind}` record"),
        None => "a record without a `kind`".to_owned(),
    })]
    NotSegmentStart {
        /// The `kind` the first record has, if any.
        found: Option<String>,
    },
    /// The segment's file name gives another seq than its first record holds.
    #[error(
        "the segment's file name says it starts at seq {named}: segment files were renamed or replaced"
    )]
    Named {
        /// The seq in the file name.
        named: u64,
    },
    /// The `segment_start` record names another segment than the one before it.
    #[error(
        "`previous_segment` is `{found}` but the segment before it is `{expected}`: a segment was removed, renamed or replaced"
    )]
    PreviousSegment {
        /// The file name of the segment before it.
        expected: String,
        /// The name the record holds.
        found: String,
    },
}

/// What is wrong with a `checkpoint` record in the log (a
/// [`ChainProblem::Checkpoint`](super::super::ChainProblem::Checkpoint)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// The record does not hold a signed checkpoint.
    #[error("the checkpoint record is malformed: {message}")]
    Malformed {
        /// What the JSON parser said.
        message: String,
    },
    /// The checkpoint does not vouch for the record just before it.
    #[error(
        "the checkpoint vouches for seq {vouched_seq} with hash `{vouched_hash}`, but the record before it is seq {head_seq} with hash `{head_hash}`"
    )]
    WrongHead {
        /// The seq the checkpoint names.
        vouched_seq: u64,
        /// The hash the checkpoint names.
        vouched_hash: String,
        /// The seq of the record before the checkpoint record.
        head_seq: u64,
        /// That record's hash.
        head_hash: String,
    },
    /// The signature does not verify with the public key given: the checkpoint was forged,
    /// altered, or signed by another key.
    #[error("{0}: it was forged or altered, or signed with another key")]
    Signature(CheckpointError),
}

/// What is wrong with a `retention` record (a
/// [`ChainProblem::Retention`](super::super::ChainProblem::Retention)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionProblem {
    /// The record does not say what it removed.
    #[error("the retention record is malformed: {message}")]
    Malformed {
        /// What the JSON parser said.
        message: String,
    },
    /// It claims to have removed records that come after it.
    #[error(
        "the retention record claims to remove records through seq {through}, which is not before it"
    )]
    NotBefore {
        /// The `removed_through_seq` it holds.
        through: u64,
    },
    /// It claims to remove records up to the middle of a segment.
    #[error(
        "the retention record claims to remove records through seq {through}, which does not end a segment: retention removes whole segments only"
    )]
    NotSegmentEnd {
        /// The `removed_through_seq` it holds.
        through: u64,
    },
    /// Its `removed_segments` are not the segment files before the oldest one kept, named as
    /// the log names them, oldest first.
    #[error(
        "the retention record's `removed_segments` {problem}: it must name the segment files that held seqs {from} to {through}, oldest first"
    )]
    RemovedSegments {
        /// The first seq it removes.
        from: u64,
        /// The `removed_through_seq` it holds.
        through: u64,
        /// What is wrong with the list.
        problem: String,
    },
    /// The hash it gives for the last removed record is not the one the chain holds.
    #[error(
        "the retention record says seq {through} has hash `{claimed}`, but the chain says `{actual}`"
    )]
    HashMismatch {
        /// The `removed_through_seq` it holds.
        through: u64,
        /// The `removed_through_hash` it holds.
        claimed: String,
        /// The hash the chain holds for that seq.
        actual: String,
    },
}

/// The oldest remaining record is not seq 1 and no `retention` record accounts for the records
/// before it; or, with a key, the one that would is not covered by a signed checkpoint.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log `{}` starts at seq {first_seq} (`{}`) but {}: records were removed from the start of the log",
    log.display(), segment.display(),
    match uncovered_retention {
        Some(seq) => format!(
            "the retention record at seq {seq} that accounts for seqs {first_missing} to {} is not covered by a signed checkpoint, so anyone could have written it",
            first_seq.saturating_sub(1)
        ),
        None => format!(
            "no retention record accounts for seqs {first_missing} to {}",
            first_seq.saturating_sub(1)
        ),
    }
)]
pub struct UnexplainedStart {
    /// The log directory.
    pub log: PathBuf,
    /// The oldest remaining segment.
    pub segment: PathBuf,
    /// The seq of the oldest remaining record.
    pub first_seq: u64,
    /// The first seq nothing accounts for: one after the last seq an older retention record
    /// removed, else 1.
    pub first_missing: u64,
    /// The seq of the `retention` record that would account for the missing records but that no
    /// checkpoint verified with the key covers.
    pub uncovered_retention: Option<u64>,
}

/// How a checkpoint file shows that the log was rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evidence {
    /// The record's hash is not the one the checkpoint signed.
    Hash {
        /// The hash the log holds.
        found: String,
        /// The hash the checkpoint signed.
        signed: String,
    },
    /// The checkpoint file says its checkpoint was written as this record, and it was not.
    NotTheCheckpoint,
}

/// A checkpoint from the checkpoint file contradicts the log: the log was rewritten, with the
/// hashes recomputed, from the checkpoint's seq or earlier.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log `{}` line {line}: the record at seq {seq} {}: the log was rewritten from seq {seq} or earlier{}",
    segment.display(),
    match evidence {
        Evidence::Hash { found, signed } => format!(
            "has hash `{found}` but checkpoint file `{}` line {file_line} signed `{signed}`",
            file.display()
        ),
        Evidence::NotTheCheckpoint => format!(
            "is not the checkpoint record that checkpoint file `{}` line {file_line} says was written there",
            file.display()
        ),
    },
    match confirmed_through {
        Some(confirmed) => format!(", after seq {confirmed}, which an earlier checkpoint confirms"),
        None => String::new(),
    }
)]
pub struct Rewritten {
    /// The segment holding the record.
    pub segment: PathBuf,
    /// The 1-based line of the record in its segment.
    pub line: u64,
    /// The seq of the record the checkpoint contradicts.
    pub seq: u64,
    /// The checkpoint file.
    pub file: PathBuf,
    /// The 1-based line of the checkpoint in the checkpoint file.
    pub file_line: u64,
    /// What does not match.
    pub evidence: Evidence,
    /// The last seq a checkpoint from the file confirmed before this one, if any.
    pub confirmed_through: Option<u64>,
}

/// The checkpoint file vouches for a seq the log no longer reaches: records were removed from
/// the end of the log.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log `{}` ends at seq {head_seq} but checkpoint file `{}` line {file_line} vouches for seq {vouched_seq}: records were removed from the end",
    log.display(), file.display()
)]
pub struct CutShort {
    /// The log.
    pub log: PathBuf,
    /// The last seq the log holds.
    pub head_seq: u64,
    /// The largest seq the checkpoint file vouches for.
    pub vouched_seq: u64,
    /// The checkpoint file.
    pub file: PathBuf,
    /// The line of that checkpoint in the checkpoint file.
    pub file_line: u64,
}

/// The checkpoint file cannot be read or holds something other than checkpoints signed by the
/// key given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointFileError {
    /// Reading it failed.
    #[error("cannot read checkpoint file `{}`: {error}", path.display())]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// A line is not a signed checkpoint.
    #[error("checkpoint file `{}` line {line} is not a signed checkpoint: {message}", path.display())]
    Malformed {
        /// The checkpoint file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A checkpoint's signature does not verify with the key given.
    #[error("checkpoint file `{}` line {line}: {error}", path.display())]
    Signature {
        /// The checkpoint file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// Why the signature does not verify.
        error: CheckpointError,
    },
}

/// With a key, records after the last one a signed checkpoint covers (or every record, when
/// none does): anyone could have written them, hashes and all.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log `{}` has {} records after {} that no signed checkpoint covers: they could have been rewritten or appended by anyone (pass --allow-unsigned-tail to accept them)",
    log.display(),
    head_seq.saturating_sub(signed_through.unwrap_or(first_seq.saturating_sub(1))),
    match signed_through {
        Some(seq) => format!("seq {seq}"),
        None => "the start of the log".to_owned(),
    }
)]
pub struct UnsignedTail {
    /// The log.
    pub log: PathBuf,
    /// The seq of the oldest record.
    pub first_seq: u64,
    /// The last seq a signed checkpoint covers, if any.
    pub signed_through: Option<u64>,
    /// The last seq of the log.
    pub head_seq: u64,
}

impl UnsignedTail {
    /// The first seq no signed checkpoint covers.
    pub fn first_unsigned(&self) -> u64 {
        self.signed_through
            .map_or(self.first_seq, |seq| seq.saturating_add(1))
            .max(self.first_seq)
    }
}

/// Why a log failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input does not start with a Mandate `log_start` record.
    #[error(transparent)]
    NotALog(NotALog),
    /// Reading the input failed.
    #[error(transparent)]
    Io(ReadFailed),
    /// The input is a Mandate audit log whose chain is broken.
    #[error(transparent)]
    Broken(ChainBroken),
    /// The log starts after seq 1 and no `retention` record accounts for the missing records.
    #[error(transparent)]
    UnexplainedStart(UnexplainedStart),
    /// A signed checkpoint from the checkpoint file contradicts the log.
    #[error(transparent)]
    Rewritten(Box<Rewritten>),
    /// A signed checkpoint from the checkpoint file vouches for a seq past the log's end.
    #[error(transparent)]
    CutShort(CutShort),
    /// The checkpoint file cannot be read or does not verify with the key.
    #[error(transparent)]
    CheckpointFile(CheckpointFileError),
    /// With a key, records that no signed checkpoint covers, and no `--allow-unsigned-tail`.
    #[error(transparent)]
    UnsignedTail(UnsignedTail),
    /// A checkpoint file was given without the public key to check its signatures.
    #[error(
        "checkpoint file `{}` can only be checked with the public key that signed it: give the key too",
        .0.display()
    )]
    CheckpointsNeedKey(PathBuf),
}

impl VerifyError {
    /// The seq of the first bad record: the seq the chain expected at the line where it broke.
    /// `None` when the input is not an audit log at all or could not be read.
    ///
    /// For a log rewritten after a checkpoint this is the seq the checkpoint contradicts (the
    /// rewrite began there or earlier); for a log cut short, the first seq that is gone; for
    /// records missing from the start, the first missing seq. `None` when the input is not an
    /// audit log at all, could not be read, or the checkpoint file itself is at fault.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.seq),
            Self::UnexplainedStart(start) => Some(start.first_missing),
            Self::Rewritten(rewritten) => Some(rewritten.seq),
            Self::CutShort(short) => Some(short.head_seq.saturating_add(1)),
            Self::UnsignedTail(tail) => Some(tail.first_unsigned()),
            Self::NotALog(_)
            | Self::Io(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_) => None,
        }
    }

    /// Whether the input could not be read at all (missing, unreadable, not an audit log, or
    /// asked for wrongly), as opposed to a log that was read and failed a check: `mandate audit
    /// verify` exits 2 for the first and 1 for the second.
    pub fn is_unreadable(&self) -> bool {
        match self {
            Self::NotALog(_) | Self::Io(_) | Self::CheckpointsNeedKey(_) => true,
            Self::CheckpointFile(error) => {
                matches!(error, CheckpointFileError::Read { .. })
            }
            Self::Broken(_)
            | Self::UnexplainedStart(_)
            | Self::Rewritten(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_) => false,
        }
    }

    /// The 1-based line number at fault, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.line),
            Self::Rewritten(rewritten) => Some(rewritten.line),
            Self::NotALog(not) => {
                (!matches!(not.reason, NotALogReason::Empty | NotALogReason::NoSegments))
                    .then_some(1)
            }
            Self::Io(_)
            | Self::UnexplainedStart(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_) => None,
        }
    }

    /// Attaches the file name so that the message says which log is at fault. Errors that
    /// already name their files are returned as they are.
    pub(crate) fn with_path(self, path: &Path) -> Self {
        let path = Some(path.to_path_buf());
        match self {
            Self::NotALog(e) => Self::NotALog(NotALog { path, ..e }),
            Self::Io(e) => Self::Io(ReadFailed { path, ..e }),
            Self::Broken(e) => Self::Broken(ChainBroken { path, ..e }),
            other @ (Self::UnexplainedStart(_)
            | Self::Rewritten(_)
            | Self::CutShort(_)
            | Self::UnsignedTail(_)
            | Self::CheckpointFile(_)
            | Self::CheckpointsNeedKey(_)) => other,
        }
    }
}

/// Renders "audit log `path`" or just "audit log" when the input has no name.
struct LogName<'a>(&'a Option<PathBuf>);

impl fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "audit log `{}`", path.display()),
            None => f.write_str("audit log"),
        }
    }
}

/// The input is not a Mandate audit log: its first line is not a `log_start` record.
#[derive(Debug, thiserror::Error)]
#[error("{}not a mandate audit log: {reason}", match path {
    Some(path) => format!("`{}` is ", path.display()),
    None => String::new(),
})]
pub struct NotALog {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What is wrong with line 1.
    pub reason: NotALogReason,
}

/// Why line 1 is not the start of a Mandate audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotALogReason {
    /// The input is empty.
    #[error("it is empty")]
    Empty,
    /// The directory holds no segment files.
    #[error("the directory holds no segment files (`segment-<seq>.jsonl`)")]
    NoSegments,
    /// Line 1 does not end with a `hash` field.
    #[error("line 1 is not a hash-chained record")]
    NotFramed,
    /// Line 1 is not a JSON object with `seq` and `prev_hash`.
    #[error("line 1 is not a record: {message}")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
    },
    /// Line 1 is a record but not a `log_start` record.
    #[error("line 1 is {}, not `log_start`", match found {
        Some(kind) => format!("a `{kind}` record"),
        None => "a record without a `kind`".to_owned(),
    })]
    NotLogStart {
        /// The `kind` line 1 has, if any.
        found: Option<String>,
    },
    /// Line 1 is a `log_start` record of another format.
    #[error("line 1 declares format {}, expected `mandate-audit/1`", match found {
        Some(format) => format!("`{format}`"),
        None => "nothing".to_owned(),
    })]
    UnknownFormat {
        /// The `format` line 1 declares, if any.
        found: Option<String>,
    },
}

/// Reading the input failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {error}", LogName(path))]
pub struct ReadFailed {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What the operating system said.
    pub error: io::Error,
}

/// The chain breaks at a line: everything before it verified, this line does not.
#[derive(Debug, thiserror::Error)]
#[error("{} is broken at line {line} (seq {seq}): {problem}", LogName(path))]
pub struct ChainBroken {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// The 1-based line number.
    pub line: u64,
    /// The first bad seq: the seq the chain expected on this line.
    pub seq: u64,
    /// What is wrong with the line.
    pub problem: ChainProblem,
}

/// What is wrong with the line where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    /// The recorded hash is not the hash of the line's bytes.
    #[error("the hash does not match the record's bytes: the record was altered")]
    HashMismatch,
    /// The line holds another seq than the one after the previous record.
    #[error("expected seq {expected}, found {found}: a record was deleted, inserted or reordered")]
    SeqOutOfOrder {
        /// The previous record's seq plus one.
        expected: u64,
        /// The seq the line holds.
        found: u64,
    },
    /// The line's `prev_hash` is not the previous record's hash.
    #[error(
        "`prev_hash` is `{found}` but the previous record's hash is `{expected}`: a record was replaced or forged"
    )]
    PrevHashMismatch {
        /// The previous record's hash.
        expected: String,
        /// The `prev_hash` the line holds.
        found: String,
    },
    /// The line is not a record.
    #[error("malformed record: {0}")]
    Malformed(Malformed),
    /// The file does not end with a newline: its last record was cut short.
    #[error("the last line has no newline: the file was truncated mid-record")]
    TornTail,
    /// A line follows the record with the largest possible seq.
    #[error("a record follows seq {}, the largest possible seq", u64::MAX)]
    SeqExhausted,
    /// The segment does not start the way the layout requires.
    #[error(transparent)]
    Segment(SegmentProblem),
    /// A `checkpoint` record does not vouch for the record before it, or its signature does
    /// not verify.
    #[error(transparent)]
    Checkpoint(CheckpointProblem),
    /// A `retention` record contradicts the chain.
    #[error(transparent)]
    Retention(RetentionProblem),
}

/// How a line fails to be a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The line does not end with `,"hash":"<64 lowercase hex>"}`.
    #[error("the line does not end with a `hash` field")]
    NotFramed,
    /// The line is not UTF-8, so it is not JSON.
    #[error("invalid UTF-8 at column {column}")]
    InvalidUtf8 {
        /// The 1-based column (byte) of the first invalid byte.
        column: usize,
    },
    /// The line is not JSON, or lacks `seq` or `prev_hash`.
    #[error("{message} (column {column})")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
        /// The 1-based column (byte) in the line.
        column: usize,
    },
    /// The line holds a carriage return, which no record does.
    #[error("a carriage return at column {column}: records end with a bare newline")]
    CarriageReturn {
        /// The 1-based column (byte) of the carriage return.
        column: usize,
    },
    /// The line does not start with `{"seq":N,`, N a seq of at least 1 without leading zeros.
    #[error(
        "the line does not start with `{{\"seq\":N,` where N is a seq of 1 or more without leading zeros"
    )]
    NoSeqPrefix,
    /// The line is longer than any record the verifier accepts.
    #[error("the line is longer than {limit} bytes with its newline")]
    TooLong {
        /// The longest line accepted, in bytes.
        limit: usize,
    },
}

impl Malformed {
    /// Describes a UTF-8 error in a single line.
    pub(crate) fn from_utf8(error: std::str::Utf8Error) -> Self {
        Self::InvalidUtf8 {
            column: error.valid_up_to() + 1,
        }
    }

    /// Describes a JSON error about a single line.
    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        Self::InvalidJson {
            message: json_message(error),
            column: error.column(),
        }
    }
}

/// A JSON error's message without serde_json's "at line 1 column N" suffix, which would be
/// confused with the file's line number.
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    /// The verifier's errors are used by the chain, the segment layout, the verifier and the
    /// index alike; a path from here into any of them would make a cycle again (as `error.rs`
    /// and this module once imported each other). The checkpoint module imports nothing of the
    /// crate.
    #[test]
    fn the_verifiers_errors_use_nothing_of_the_crate_but_the_checkpoint_error() {
        let leaves = [
            ("verify/error.rs", include_str!("error.rs")),
            ("checkpoint.rs", include_str!("../checkpoint.rs")),
        ];
        for (name, source) in leaves {
            let product = source
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or(source);
            let paths: Vec<&str> = product
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .filter(|line| line.contains("crate::") || line.contains("super::"))
                .collect();
            let allowed: &[&str] = match name {
                "verify/error.rs" => &["use crate::checkpoint::CheckpointError;"],
                _ => &[],
            };
            assert_eq!(paths, allowed, "{name} reaches into the crate");
        }
        let writing = include_str!("../error.rs");
        assert!(
            !writing.contains("verify::"),
            "error.rs (the writer's errors) imports the verifier's again"
        );
    }
}
