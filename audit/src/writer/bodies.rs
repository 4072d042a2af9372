//! The bodies of the records the log writes about itself (see the module docs of
//! [`audit`](crate) for their fields). Keeping them typed here keeps the writer, the
//! repair on open and the tests in agreement about their shape.

use serde::Serialize;

use super::super::chain::{FORMAT, LOG_START_KIND};
use super::super::checkpoint::{CHECKPOINT_KIND, SignedCheckpoint};
use super::super::segments::SEGMENT_START_KIND;

/// Kind of the record written after a torn tail was set aside.
pub(crate) const REPAIR_KIND: &str = "repair";
/// Kind of the record written before old segments are deleted.
pub(crate) const RETENTION_KIND: &str = "retention";
/// Kind of the record written when the log is writable again after refusing appends.
pub(crate) const OUTAGE_KIND: &str = "audit_outage";

/// Opens the first segment of a log.
#[derive(Serialize)]
pub(super) struct LogStart {
    pub(super) kind: &'static str,
    pub(super) format: &'static str,
}

impl LogStart {
    pub(super) fn new() -> Self {
        LogStart {
            kind: LOG_START_KIND,
            format: FORMAT,
        }
    }
}

/// Opens every later segment; its `prev_hash` continues the chain.
#[derive(Serialize)]
pub(super) struct SegmentStart<'a> {
    pub(super) kind: &'static str,
    pub(super) previous_segment: &'a str,
}

impl<'a> SegmentStart<'a> {
    pub(super) fn new(previous_segment: &'a str) -> Self {
        SegmentStart {
            kind: SEGMENT_START_KIND,
            previous_segment,
        }
    }
}

/// A torn tail was moved into `torn/` on open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Repair {
    pub(super) kind: &'static str,
    /// The segment's file name.
    pub(super) segment: String,
    /// Its length after the torn bytes were cut off.
    pub(super) truncated_at: u64,
    pub(super) torn_bytes: u64,
    pub(super) torn_sha256: String,
    /// Where the bytes went, relative to the log directory: `torn/<file>`.
    pub(super) set_aside: String,
}

/// Whole segments are about to be deleted; what remains starts after `removed_through_seq`.
#[derive(Serialize)]
pub(super) struct RetentionRecord<'a> {
    pub(super) kind: &'static str,
    pub(super) removed_segments: &'a [String],
    pub(super) removed_through_seq: u64,
    pub(super) removed_through_hash: &'a str,
}

/// Appends were refused from `since` until `until`.
#[derive(Serialize)]
pub(super) struct Outage<'a> {
    pub(super) kind: &'static str,
    pub(super) since: &'a str,
    pub(super) until: &'a str,
    /// The first error, as the refused callers saw it.
    pub(super) error: &'a str,
    pub(super) refused_appends: u64,
}

/// A signed checkpoint as a record: the [`SignedCheckpoint`] fields after `kind`.
#[derive(Serialize)]
pub(super) struct CheckpointRecord<'a> {
    pub(super) kind: &'static str,
    #[serde(flatten)]
    pub(super) signed: &'a SignedCheckpoint,
}

impl<'a> CheckpointRecord<'a> {
    pub(super) fn new(signed: &'a SignedCheckpoint) -> Self {
        CheckpointRecord {
            kind: CHECKPOINT_KIND,
            signed,
        }
    }
}

/// A line of `checkpoints.jsonl`: the signed checkpoint and the seq of the record holding it.
#[derive(Serialize)]
pub(super) struct CheckpointLine<'a> {
    #[serde(flatten)]
    pub(super) signed: &'a SignedCheckpoint,
    pub(super) record_seq: u64,
}
