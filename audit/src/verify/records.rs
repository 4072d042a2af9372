//! The bodies of the records the verifier acts on, parsed only for those few records.

use serde::{Deserialize, Serialize};

use crate::chain::{BodyFields, encode_line};
use crate::checkpoint::{CHECKPOINT_KIND, Checkpoint, SignedCheckpoint};

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

/// A `checkpoint` record as the writer writes it, for [`is_canonical_checkpoint`].
#[derive(Serialize)]
struct CanonicalCheckpoint<'a> {
    kind: &'static str,
    #[serde(flatten)]
    signed: &'a SignedCheckpoint,
}

/// Whether the `checkpoint` record at `seq` with hash `hash` is byte for byte the record the
/// writer makes of `signed`: its seq one after the signed one, its `prev_hash` the signed
/// head hash, its timestamp the signed time, no other fields. Only then does the signature
/// vouch for the record itself, not just for the records before it.
pub(super) fn is_canonical_checkpoint(seq: u64, hash: &[u8], signed: &SignedCheckpoint) -> bool {
    let checkpoint = &signed.checkpoint;
    if checkpoint.seq.checked_add(1) != Some(seq) {
        return false;
    }
    let body = CanonicalCheckpoint {
        kind: CHECKPOINT_KIND,
        signed,
    };
    let Ok(fields) = BodyFields::new(&body) else {
        return false;
    };
    encode_line(seq, &checkpoint.head_hash, checkpoint.time, &fields)
        .hash
        .as_bytes()
        == hash
}

/// What a `retention` record says was removed, as the verifier and the index read it.
#[derive(Deserialize)]
pub(crate) struct Retention {
    /// The last seq removed.
    pub(crate) removed_through_seq: u64,
    /// Its hash: the `prev_hash` of the oldest record kept.
    pub(crate) removed_through_hash: String,
    /// The segment files it removes, oldest first.
    #[serde(default)]
    pub(crate) removed_segments: Option<Vec<String>>,
}

/// Reads a `retention` record.
pub(crate) fn retention(line: &[u8]) -> Result<Retention, serde_json::Error> {
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
