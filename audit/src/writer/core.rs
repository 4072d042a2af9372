//! The writer's state and how it changes the log. A write stamps a list of bodies with
//! consecutive seqs, chains them and appends them with one write; a sync makes everything
//! written durable with one `fdatasync`. A commit is a write and its sync, all or nothing. The
//! records the log writes about itself (a segment's start, an outage, a checkpoint) ride along
//! in the same write, in the order the chain needs.
//!
//! The chain head advances in two steps: `seq`/`hash` when the write succeeds, `durable` when
//! its sync does. A failed sync cuts the file back to the durable length and the head back to
//! `durable`, so the log and the head never hold a record that is not durable.

use crate::Modes;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::super::chain::{BodyFields, GENESIS_HASH, encode_line, format_timestamp, now_millis};
use super::super::checkpoint::{CHECKPOINT_FILE, CheckpointSigner, SignedCheckpoint};
use super::super::config::{AuditConfig, Durability};
use super::super::segments::segment_name;
use super::bodies::{
    CheckpointLine, CheckpointRecord, LogStart, OUTAGE_KIND, Outage, SegmentStart,
};
use super::faults::Fault;
use super::faults::FaultInjector;
use super::retention;
use super::segment::{ActiveSegment, Failure, sync_dir};
use super::{Appended, Stats};

/// How long a checkpoint or retention that could not be written waits, at least, before it is
/// tried again.
const HOUSEKEEPING_RETRY: Duration = Duration::from_secs(1);

/// What the [`AuditLog`](super::AuditLog) handle and the writer thread share.
#[derive(Debug)]
pub(super) struct Shared {
    /// The last durable record: seq and hash.
    pub(super) head: Mutex<(u64, String)>,
    pub(super) faults: FaultInjector,
    pub(super) commits: AtomicU64,
    /// Appends committed (or refused) by their own appender, on its own thread.
    pub(super) led_appends: AtomicU64,
    pub(super) durable_seq: AtomicU64,
    /// How long the last sync took, in nanoseconds.
    last_sync: AtomicU64,
    /// The thread that made the last commit (tests only).
    #[cfg(test)]
    pub(super) last_committer: Mutex<Option<std::thread::ThreadId>>,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            head: Mutex::new((0, GENESIS_HASH.to_owned())),
            faults: FaultInjector::default(),
            commits: AtomicU64::new(0),
            led_appends: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            last_sync: AtomicU64::new(0),
            #[cfg(test)]
            last_committer: Mutex::new(None),
        }
    }

    /// How long the last sync took.
    pub(super) fn last_sync(&self) -> Duration {
        Duration::from_nanos(self.last_sync.load(Ordering::Acquire))
    }

    pub(super) fn stats(&self) -> Stats {
        Stats {
            commits: self.commits.load(Ordering::Acquire),
            led_appends: self.led_appends.load(Ordering::Acquire),
            durable_seq: self.durable_seq.load(Ordering::Acquire),
        }
    }
}

/// Appends refused since the log stopped being writable.
#[derive(Debug)]
struct Refusals {
    since: Timestamp,
    /// The first error, as the callers saw it.
    error: String,
    count: u64,
}

/// The writer: owner of the active segment and the chain head.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) dir: PathBuf,
    pub(super) config: AuditConfig,
    /// Holds the exclusive advisory lock on the log directory while the writer lives.
    _lock: File,
    pub(super) active: ActiveSegment,
    /// The last record written (the next one chains onto it).
    seq: u64,
    hash: String,
    /// The last durable record.
    durable: (u64, String),
    shared: Arc<Shared>,
    refusals: Option<Refusals>,
    /// Records since the last checkpoint (the head is vouched for when this is 0).
    unvouched: u64,
    last_checkpoint: Instant,
    checkpoint_file: Option<File>,
    /// A rotation happened: retention may have segments to delete (not before this time, if
    /// an attempt failed).
    rotated: bool,
    retention_retry: Option<Instant>,
    checkpoint_retry: Option<Instant>,
}

/// A commit's records, encoded.
struct Encoded {
    bytes: Vec<u8>,
    seq: u64,
    hash: String,
    records: u64,
    appended: Vec<Appended>,
    checkpoint: Option<(SignedCheckpoint, u64)>,
    outage: bool,
}

/// Records written and waiting for the sync that makes them durable.
#[derive(Debug)]
struct Written {
    /// The bodies' records, in order.
    appended: Vec<Appended>,
    /// The last record of the write.
    seq: u64,
    hash: String,
    records: u64,
    checkpoint: Option<(SignedCheckpoint, u64)>,
    outage: bool,
    /// A fault injected for the sync that follows.
    sync_fault: Option<Fault>,
    /// The segment this write rotated away from, to go back to if the sync fails.
    closed: Option<ActiveSegment>,
}

impl Core {
    /// A writer whose chain head is `(seq, hash)`, the last record before `active`'s end.
    pub(super) fn new(
        dir: PathBuf,
        config: AuditConfig,
        lock: File,
        active: ActiveSegment,
        (seq, hash): (u64, String),
        head_is_checkpoint: bool,
        shared: Arc<Shared>,
    ) -> Self {
        *shared.head.lock().unwrap_or_else(PoisonError::into_inner) = (seq, hash.clone());
        shared.durable_seq.store(seq, Ordering::Release);
        Core {
            dir,
            config,
            _lock: lock,
            active,
            durable: (seq, hash.clone()),
            seq,
            hash,
            shared,
            refusals: None,
            unvouched: u64::from(!head_is_checkpoint && seq > 0),
            last_checkpoint: Instant::now(),
            checkpoint_file: None,
            rotated: false,
            retention_retry: None,
            checkpoint_retry: None,
        }
    }

    /// Appends callers' records (one commit, or one per record with
    /// [`Durability::PerRecord`]), then does what housekeeping is due, and returns, per record,
    /// what was written or why not.
    pub(super) fn append(&mut self, bodies: &[BodyFields]) -> Vec<Result<Appended, Failure>> {
        let mut results = Vec::with_capacity(bodies.len());
        let chunk = match self.config.durability {
            Durability::GroupCommit => bodies.len().max(1),
            Durability::PerRecord => 1,
        };
        for group in bodies.chunks(chunk) {
            match self.commit(group, false) {
                Ok(appended) => results.extend(appended.into_iter().map(Ok)),
                Err(failure) => {
                    self.refuse(group.len() as u64, &failure);
                    results.extend(group.iter().map(|_| Err(failure.clone())));
                }
            }
        }
        self.housekeeping();
        results
    }

    /// What follows commits: retention after a rotation, and a checkpoint when one is due.
    /// Their failures are not the callers' (their records are durable); what failed is tried
    /// again later.
    pub(super) fn housekeeping(&mut self) {
        if self.rotated && self.retention_retry.is_none_or(|at| Instant::now() >= at) {
            self.retention_retry = match self.apply_retention() {
                Ok(()) => None,
                Err(_) => Some(Instant::now() + HOUSEKEEPING_RETRY),
            };
        }
        let _ = self.checkpoint_if_due(false);
    }

    /// Writes `bodies` (and a checkpoint after them, if `checkpoint`) and syncs them: one
    /// commit.
    pub(super) fn commit(
        &mut self,
        bodies: &[BodyFields],
        checkpoint: bool,
    ) -> Result<Vec<Appended>, Failure> {
        let mut written = self.write(bodies, checkpoint)?;
        let closed = written.closed.take();
        let started = Instant::now();
        let synced = self.active.sync(written.sync_fault);
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.last_sync.store(took, Ordering::Release);
        #[cfg(test)]
        {
            *self
                .shared
                .last_committer
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current().id());
        }
        if let Err(failure) = synced {
            self.abandon_unsynced();
            if let Some(closed) = closed {
                self.undo_rotation(closed);
            }
            return Err(failure);
        }
        self.rotated |= closed.is_some();
        self.shared.commits.fetch_add(1, Ordering::AcqRel);
        let (appended, checkpoint_line) = self.durable_write(written);
        checkpoint_line.map(|()| appended)
    }

    /// Checks the active segment, stamps `bodies` (rotating first if the segment is full) and
    /// writes them, not synced yet.
    fn write(&mut self, bodies: &[BodyFields], checkpoint: bool) -> Result<Written, Failure> {
        let fault = self.shared.faults.take();
        self.active.check(fault)?;
        let signer = if checkpoint {
            self.config.checkpoint_signer.clone()
        } else {
            None
        };
        let now = now_millis();
        let mut encoded = self.encode(now, bodies, signer.as_deref())?;
        let mut closed = None;
        if self.should_rotate(encoded.bytes.len() as u64, now) {
            closed = Some(self.rotate()?);
            encoded = self.encode(now, bodies, signer.as_deref())?;
        }
        if let Err(failure) = self.active.write(&encoded.bytes, fault) {
            if let Some(closed) = closed {
                self.undo_rotation(closed);
            }
            return Err(failure);
        }
        self.seq = encoded.seq;
        self.hash.clone_from(&encoded.hash);
        Ok(Written {
            appended: encoded.appended,
            seq: encoded.seq,
            hash: encoded.hash,
            records: encoded.records,
            checkpoint: encoded.checkpoint,
            outage: encoded.outage,
            sync_fault: fault.filter(|f| matches!(f, Fault::SyncFails | Fault::SlowSync(_))),
            closed,
        })
    }

    /// Forgets what was written but not synced: the chain goes on from the durable head.
    fn abandon_unsynced(&mut self) {
        self.seq = self.durable.0;
        self.hash.clone_from(&self.durable.1);
    }

    /// Marks a write durable (after its sync succeeded) and returns its records, and whether
    /// its checkpoint, if it holds one, made it into the checkpoint file.
    fn durable_write(&mut self, written: Written) -> (Vec<Appended>, Result<(), Failure>) {
        self.durable = (written.seq, written.hash.clone());
        if written.outage {
            self.refusals = None;
        }
        self.unvouched += written.records;
        *self
            .shared
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (written.seq, written.hash);
        self.shared
            .durable_seq
            .store(written.seq, Ordering::Release);
        let mut checkpoint_line = Ok(());
        if let Some((signed, record_seq)) = written.checkpoint {
            self.unvouched = 0;
            self.last_checkpoint = Instant::now();
            checkpoint_line = self.write_checkpoint_line(&signed, record_seq);
        }
        (written.appended, checkpoint_line)
    }

    /// Stamps and chains the records of one commit: the segment's start record if it is empty,
    /// the outage record if appends were refused, the bodies, then the checkpoint.
    fn encode(
        &self,
        now: Timestamp,
        bodies: &[BodyFields],
        signer: Option<&CheckpointSigner>,
    ) -> Result<Encoded, Failure> {
        let mut out = Encoded {
            bytes: Vec::with_capacity(bodies.len() * 1024),
            seq: self.seq,
            hash: self.hash.clone(),
            records: 0,
            appended: Vec::with_capacity(bodies.len()),
            checkpoint: None,
            outage: false,
        };
        if self.active.len == 0 {
            match &self.active.previous {
                Some(previous) => self.push(&mut out, now, &SegmentStart::new(previous))?,
                None => self.push(&mut out, now, &LogStart::new())?,
            }
        }
        if let Some(refusals) = &self.refusals {
            out.outage = true;
            let since = format_timestamp(refusals.since);
            let until = format_timestamp(now);
            let outage = Outage {
                kind: OUTAGE_KIND,
                since: &since,
                until: &until,
                error: &refusals.error,
                refused_appends: refusals.count,
            };
            self.push(&mut out, now, &outage)?;
        }
        for body in bodies {
            self.push_fields(&mut out, now, body)?;
            out.appended.push(Appended {
                seq: out.seq,
                hash: out.hash.clone(),
                timestamp: now,
            });
        }
        if let Some(signer) = signer {
            let signed = signer.sign(out.seq, &out.hash, now);
            self.push(&mut out, now, &CheckpointRecord::new(&signed))?;
            out.checkpoint = Some((signed, out.seq));
        }
        Ok(out)
    }

    fn push<T: Serialize>(
        &self,
        out: &mut Encoded,
        now: Timestamp,
        body: &T,
    ) -> Result<(), Failure> {
        let fields = BodyFields::new(body).map_err(|error| {
            Failure::write(&self.active.path, &std::io::Error::other(error.to_string()))
        })?;
        self.push_fields(out, now, &fields)
    }

    fn push_fields(
        &self,
        out: &mut Encoded,
        now: Timestamp,
        body: &BodyFields,
    ) -> Result<(), Failure> {
        out.seq = out
            .seq
            .checked_add(1)
            .ok_or_else(|| Failure::SeqExhausted {
                dir: self.dir.clone(),
            })?;
        let line = encode_line(out.seq, &out.hash, now, body);
        out.bytes.extend_from_slice(&line.bytes);
        out.hash = line.hash;
        out.records += 1;
        Ok(())
    }

    /// Whether `bytes` more would take the active segment past its size or it is past its age.
    /// An empty segment is never rotated, so a record larger than the limit still gets written.
    fn should_rotate(&self, bytes: u64, now: Timestamp) -> bool {
        if self.active.len == 0 {
            return false;
        }
        if self.active.len.saturating_add(bytes) > self.config.segment_max_bytes {
            return true;
        }
        match self.config.segment_max_age {
            Some(max_age) => match SignedDuration::try_from(max_age) {
                Ok(max_age) => now.duration_since(self.active.started) >= max_age,
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Starts the next segment and returns the one it replaces. Its `segment_start` record is
    /// written by the commit that follows.
    fn rotate(&mut self) -> Result<ActiveSegment, Failure> {
        let first_seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| Failure::SeqExhausted {
                dir: self.dir.clone(),
            })?;
        let next = ActiveSegment::create(
            &self.dir,
            first_seq,
            Some(self.active.name.clone()),
            Modes::new(self.config.group_readable),
        )
        .map_err(|error| Failure::write(&self.dir.join(segment_name(first_seq)), &error))?;
        Ok(std::mem::replace(&mut self.active, next))
    }

    /// Goes back to the segment before a rotation whose first write or sync failed, so that no
    /// empty segment stays behind while the log cannot be written. If the empty file cannot be
    /// removed it stays the active segment; its start record goes in with the next commit.
    fn undo_rotation(&mut self, closed: ActiveSegment) {
        if self.active.len == 0 && std::fs::remove_file(&self.active.path).is_ok() {
            let _ = sync_dir(&self.dir);
            self.active = closed;
        }
    }

    /// Counts refused appends; the first refusal starts an outage.
    pub(super) fn refuse(&mut self, count: u64, failure: &Failure) {
        match &mut self.refusals {
            Some(refusals) => refusals.count += count,
            None => {
                self.refusals = Some(Refusals {
                    since: now_millis(),
                    error: failure.to_error().to_string(),
                    count,
                })
            }
        }
    }

    /// Deletes the segments retention no longer keeps, after a durable `retention` record. If
    /// that record itself starts a new segment, retention looks again; if anything fails, the
    /// rotation stays pending and [`housekeeping`](Self::housekeeping) (or closing) tries again.
    pub(super) fn apply_retention(&mut self) -> Result<(), Failure> {
        for _ in 0..3 {
            self.rotated = false;
            if let Err(failure) = self.retain_once() {
                self.rotated = true;
                return Err(failure);
            }
            if !self.rotated {
                break;
            }
        }
        Ok(())
    }

    fn retain_once(&mut self) -> Result<(), Failure> {
        let plan = retention::plan(&self.dir, &self.active, &self.config.retention)
            .map_err(|error| Failure::write(&self.dir, &error))?;
        let Some(plan) = plan else { return Ok(()) };
        let body = BodyFields::new(&plan.record()).map_err(|error| {
            Failure::write(&self.dir, &std::io::Error::other(error.to_string()))
        })?;
        // With a signer, a checkpoint covering the retention record is durable (in the log and
        // in `checkpoints.jsonl`) before any segment goes: an unsigned retention record whose
        // segments are gone is then a forgery, which opening and `verify --key` refuse.
        let sign = self.config.checkpoint_signer.is_some();
        self.commit(&[body], sign)?;
        if sign {
            self.checkpoint_retry = None;
        }
        plan.delete(&self.dir)
            .map_err(|error| Failure::write(&self.dir, &error))
    }

    /// When the writer must wake up without a request: when a checkpoint falls due by time.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.config.checkpoint_signer.as_ref()?;
        if self.unvouched == 0 {
            return None;
        }
        let due = self
            .last_checkpoint
            .checked_add(self.config.checkpoint_every)?;
        Some(self.checkpoint_retry.map_or(due, |retry| retry.max(due)))
    }

    /// Writes a checkpoint if records are unvouched for and one is due (or `force`).
    pub(super) fn checkpoint_if_due(&mut self, force: bool) -> Result<(), Failure> {
        let needed = self.config.checkpoint_signer.is_some() && self.unvouched > 0;
        if !(needed && (force || self.checkpoint_due(Instant::now()))) {
            return Ok(());
        }
        match self.commit(&[], true) {
            Ok(_) => {
                self.checkpoint_retry = None;
                Ok(())
            }
            Err(failure) => {
                // Not again right away: a writer that cannot write would spin on it.
                self.checkpoint_retry = Some(Instant::now() + HOUSEKEEPING_RETRY);
                Err(failure)
            }
        }
    }

    /// Whether a checkpoint is due at `now`: enough records or enough time since the last one.
    fn checkpoint_due(&self, now: Instant) -> bool {
        if self.config.checkpoint_signer.is_none() || self.unvouched == 0 {
            return false;
        }
        if self.checkpoint_retry.is_some_and(|at| now < at) {
            return false;
        }
        let every = self.config.checkpoint_every_records;
        (every > 0 && self.unvouched >= every)
            || now.saturating_duration_since(self.last_checkpoint) >= self.config.checkpoint_every
    }

    /// Appends the checkpoint to `checkpoints.jsonl`, durably.
    fn write_checkpoint_line(
        &mut self,
        signed: &SignedCheckpoint,
        record_seq: u64,
    ) -> Result<(), Failure> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let failed = |error: std::io::Error| Failure::write(&path, &error);
        let mut line = serde_json::to_vec(&CheckpointLine { signed, record_seq })
            .map_err(|error| failed(std::io::Error::other(error)))?;
        line.push(b'\n');
        if self.checkpoint_file.is_none() {
            let existed = path.exists();
            let modes = Modes::new(self.config.group_readable);
            let file = modes
                .options()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(failed)?;
            if !existed {
                modes.set_file(&file).map_err(failed)?;
                sync_dir(&self.dir).map_err(failed)?;
            }
            self.checkpoint_file = Some(file);
        }
        let Some(file) = self.checkpoint_file.as_mut() else {
            return Ok(());
        };
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(failed)
    }

    /// The final checkpoint, before the writer stops.
    pub(super) fn close(&mut self) -> Result<(), Failure> {
        if self.rotated {
            let _ = self.apply_retention();
        }
        self.checkpoint_if_due(true)
    }
}
