//! How an audit log is written: durability, segments, retention, checkpoints.

use std::sync::Arc;
use std::time::Duration;

use super::checkpoint::CheckpointSigner;

/// When an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Records of concurrent callers share one `fsync`; each caller still
    /// returns only once its own record is durable.
    #[default]
    GroupCommit,
    /// One `fsync` per record (the baseline group commit is measured against).
    PerRecord,
}

/// Which old segments may be deleted. Whole segments only, never the active
/// one, and only after a `retention` record naming the last removed seq and
/// hash has been written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many segments (the active one included).
    pub keep_segments: Option<usize>,
    /// Delete segments whose newest record is older than this.
    pub max_age: Option<Duration>,
}

/// Settings of an [`AuditLog`](super::AuditLog).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Group commit (default) or one fsync per record.
    pub durability: Durability,
    /// Most records written by one fsync (at least 1).
    pub max_batch: usize,
    /// Most appends waiting for the writer (at least 1); further appends wait for room.
    pub queue_capacity: usize,
    /// Start a new segment when the next commit would take the active one past this size. A
    /// segment holding only its first record takes the commit whatever its size.
    pub segment_max_bytes: u64,
    /// Start a new segment once the active one's first record is this old (checked when
    /// records are appended).
    pub segment_max_age: Option<Duration>,
    /// What to delete, if anything. Default: keep everything.
    pub retention: Retention,
    /// Signs checkpoints; without one no checkpoints are written.
    pub checkpoint_signer: Option<Arc<CheckpointSigner>>,
    /// Write a checkpoint after this many records since the last one (0: never by count).
    pub checkpoint_every_records: u64,
    /// Write a checkpoint this long after the last one if records came since, even if no
    /// more arrive.
    pub checkpoint_every: Duration,
    /// Let the owner's group read the log: directories 0750 and files 0640 instead of 0700 and
    /// 0600. Whatever the umask, the writer sets these modes on what it creates.
    pub group_readable: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            durability: Durability::GroupCommit,
            max_batch: 512,
            queue_capacity: 4096,
            segment_max_bytes: 64 * 1024 * 1024,
            segment_max_age: Some(Duration::from_secs(24 * 60 * 60)),
            retention: Retention::default(),
            checkpoint_signer: None,
            checkpoint_every_records: 10_000,
            checkpoint_every: Duration::from_secs(60),
            group_readable: false,
        }
    }
}
