//! Who commits a record: the appender itself when the writer is idle, else the writer thread.
//!
//! The writer's [`Core`] and the appenders' queue sit behind one lock. An appender that takes
//! the lock at once and finds nothing queued is the leader: it commits its own record on its own
//! thread, with one write and one sync, and returns, so a lone session pays no thread hand-off
//! and no wake-up. An appender that finds the lock held (someone is committing) or records
//! queued ahead of its own queues as before, and the writer thread commits what has queued up in
//! one batch ([`thread`](super::thread)): concurrent sessions still share syncs. The writer
//! thread takes requests out of the queue only while it holds the lock, so "nothing queued"
//! seen under the lock means no record is waiting to be committed ahead of the leader's, and
//! seqs follow the order in which records were queued or led.
//!
//! The writer thread also keeps the log's time: it wakes up for a checkpoint that falls due
//! while no record arrives. A leader whose commit brings that deadline forward wakes it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use tokio::runtime::RuntimeFlavor;
use tokio::sync::mpsc;

use super::super::chain::BodyFields;
use super::super::error::AuditError;
use super::Appended;
use super::block::Alarm;
use super::core::{Core, Shared};
use super::thread::Request;

/// The longest sync after which an async appender still commits its own record. Leading blocks
/// the appender's thread, an async runtime's worker, for one write and one sync; on a disk that
/// syncs in a fraction of a millisecond that is less than a thread hand-off costs, but behind a
/// slow sync the worker's other tasks would wait. While syncs take longer than this, async
/// appenders queue and no worker waits for the disk; the writer thread's syncs keep measuring
/// it. Blocking appenders lead whatever the disk: their thread waits either way.
const INLINE_SYNC_LIMIT: Duration = Duration::from_millis(1);

/// Whether an async appender may block the thread polling it for a quick sync: not on a
/// current-thread runtime, whose every task would wait. On a multi-thread runtime the other
/// workers go on meanwhile.
fn async_may_block() -> bool {
    tokio::runtime::Handle::try_current()
        .ok()
        .is_none_or(|runtime| runtime.runtime_flavor() != RuntimeFlavor::CurrentThread)
}

/// A deadline no writer has: the writer thread sleeps until a request comes.
const NO_DEADLINE: u64 = u64::MAX;

/// What appenders and the writer thread share.
#[derive(Debug)]
pub(super) struct Writer {
    state: Mutex<State>,
    /// When the writer thread must wake up by itself, in nanoseconds after `epoch`
    /// ([`NO_DEADLINE`]: never). Written only with `state` locked.
    deadline: AtomicU64,
    epoch: Instant,
    /// Wakes the writer thread, once it runs.
    alarm: OnceLock<Arc<Alarm>>,
    /// The writer thread is committing queued records or looking for more after a shared commit:
    /// queueing costs no wake-up then, and keeps syncs shared, so appenders do not lead.
    pub(super) awake: AtomicBool,
}

/// What only the lock holder touches.
#[derive(Debug)]
pub(super) struct State {
    /// `None` once the log is closed.
    pub(super) core: Option<Core>,
    /// Appends waiting for the writer thread, and the request to close.
    pub(super) queue: mpsc::Receiver<Request>,
}

/// Whether an appender may block its thread for a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// A blocking caller ([`AuditLog::append`](super::AuditLog::append)).
    Blocking,
    /// An async caller, on a runtime's worker.
    Async,
}

impl Writer {
    pub(super) fn new(core: Core, queue: mpsc::Receiver<Request>) -> Self {
        let writer = Writer {
            deadline: AtomicU64::new(NO_DEADLINE),
            epoch: Instant::now(),
            alarm: OnceLock::new(),
            awake: AtomicBool::new(false),
            state: Mutex::new(State { core: None, queue }),
        };
        writer.publish_deadline(&core, false);
        writer.lock().core = Some(core);
        writer
    }

    /// Sets the writer thread's alarm, which leaders ring when they bring its deadline forward.
    pub(super) fn set_alarm(&self, alarm: Arc<Alarm>) {
        let _ = self.alarm.set(alarm);
    }

    /// The writer thread's alarm, once set.
    pub(super) fn alarm(&self) -> Option<&Arc<Alarm>> {
        self.alarm.get()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `body` on this thread if the writer is idle: the writer thread asleep, nobody
    /// holding the lock, nothing queued, and (for an async caller) syncs quick. Gives `body` back otherwise, to
    /// be queued; also when the log is closed, which queueing reports.
    pub(super) fn lead(
        &self,
        body: BodyFields,
        caller: Caller,
        shared: &Shared,
    ) -> Result<Result<Appended, AuditError>, BodyFields> {
        if self.awake.load(Ordering::Acquire) {
            return Err(body);
        }
        if caller == Caller::Async && (shared.last_sync() > INLINE_SYNC_LIMIT || !async_may_block())
        {
            return Err(body);
        }
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(state)) => state.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(body),
        };
        if !state.queue.is_empty() {
            return Err(body);
        }
        let Some(core) = state.core.as_mut() else {
            return Err(body);
        };
        shared.led_appends.fetch_add(1, Ordering::AcqRel);
        let result = match core.append(std::slice::from_ref(&body)).pop() {
            Some(result) => result.map_err(|failure| failure.to_error()),
            // `append` answers every body it is given.
            None => Err(AuditError::WriterStopped {
                path: core.dir.clone(),
            }),
        };
        self.publish_deadline(core, true);
        drop(state);
        Ok(result)
    }

    /// Records when the writer thread must next wake up by itself, as `core` now says (the
    /// caller holds the lock). A leader wakes the thread if that is sooner than it planned.
    pub(super) fn publish_deadline(&self, core: &Core, wake: bool) {
        let next = core.next_deadline().map_or(NO_DEADLINE, |at| {
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
                .unwrap_or(NO_DEADLINE - 1)
                .min(NO_DEADLINE - 1)
        });
        let before = self.deadline.swap(next, Ordering::AcqRel);
        if wake
            && next < before
            && let Some(alarm) = self.alarm.get()
        {
            alarm.ring();
        }
    }

    /// When the writer thread must next wake up by itself, if ever.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            NO_DEADLINE => None,
            nanos => self.epoch.checked_add(Duration::from_nanos(nanos)),
        }
    }
}
