//! What the verifier reports beyond a broken hash link: segment layout, retention, and the
//! checkpoints in the log and in a checkpoint file shipped elsewhere.
//!
//! Like the errors in [`super::super::error`], messages are lowercase, have no final period, put
//! file names in backticks and name the seq at fault.

use std::io;
use std::path::PathBuf;

use crate::checkpoint::CheckpointError;

/// What is wrong with how a segment starts (a [`ChainProblem::Segment`](super::super::ChainProblem::Segment)).
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
