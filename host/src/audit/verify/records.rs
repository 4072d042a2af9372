//! The bodies of the records the verifier acts on, parsed only for those few records.

use serde::Deserialize;

use crate::audit::checkpoint::{Checkpoint, SignedCheckpoint};

/// A `checkpoint` record: a [`SignedCheckpoint`] flattened after its `kind`.
#[derive(Deserialize)]
struct CheckpointRecord {
    checkpoint: Checkpoint,
    signature: String,
}

/// Reads the signed checkpoint a `checkpoint` record holds.
pub(super) fn checkpoint(line: &[u8]) -> Result<SignedCheckpoint, serde_json::Error> {
    let record: CheckpointRecord = serde_json::from_slice(line)?;
    Ok(SignedCheckpoint {
        checkpoint: record.checkpoint,
        signature: record.signature,
    })
}

/// What a `retention` record says was removed.
#[derive(Deserialize)]
pub(super) struct Retention {
    /// The last seq removed.
    pub(super) removed_through_seq: u64,
    /// Its hash: the `prev_hash` of the oldest record kept.
    pub(super) removed_through_hash: String,
}

/// Reads a `retention` record.
pub(super) fn retention(line: &[u8]) -> Result<Retention, serde_json::Error> {
    serde_json::from_slice(line)
}

/// The part of a `segment_start` record that links it to the segment before.
#[derive(Deserialize)]
struct SegmentStart {
    previous_segment: Option<String>,
}

/// Reads the name of the previous segment from a `segment_start` record, if it gives one.
pub(super) fn previous_segment(line: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let record: SegmentStart = serde_json::from_slice(line)?;
    Ok(record.previous_segment)
}

#[derive(Deserialize)]
struct KindOnly {
    kind: Option<String>,
}

/// The `kind` of a record, for messages about a record of the wrong kind.
pub(super) fn kind(line: &[u8]) -> Option<String> {
    serde_json::from_slice::<KindOnly>(line).ok()?.kind
}

/// One line of a checkpoint file: a [`SignedCheckpoint`] and the seq of the `checkpoint`
/// record it was written as.
#[derive(Deserialize)]
pub(super) struct FileEntry {
    pub(super) checkpoint: Checkpoint,
    pub(super) signature: String,
    pub(super) record_seq: Option<u64>,
}

/// Reads a line of a checkpoint file.
pub(super) fn file_entry(line: &[u8]) -> Result<FileEntry, serde_json::Error> {
    serde_json::from_slice(line)
}
