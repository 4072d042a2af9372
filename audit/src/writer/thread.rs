//! The writer thread: group commit of queued appends, and the log's clock.
//!
//! Appenders serialize their bodies on their own threads. One that finds the writer idle
//! commits its own record ([`leader`](super::leader)); the others queue theirs, bounded, with a
//! reply channel. The thread, woken by the queue, takes the lock and whatever has queued up (at
//! most `max_batch`, waiting a few microseconds for stragglers when several are there), commits
//! it with one write and one `fdatasync`, and only then answers each appender. While one batch
//! syncs, the next one queues, so under load one sync serves many records and no appender
//! returns before its own record is durable. The thread also wakes up by itself when a
//! checkpoint falls due while no record arrives, and it closes the log.
//!
//! Handing the sync to a second thread, so that the next batch is stamped and written while the
//! disk works, was measured too: on a 2-core machine it gained nothing (the CPU, not the wait,
//! bounds the rate there) and cost single appenders a thread hand-off per record, so the writer
//! stays one thread.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::super::chain::BodyFields;
use super::super::error::AuditError;
use super::Appended;
use super::block::Alarm;
use super::leader::{State, Writer};

/// What an appender asks of the writer.
pub(super) enum Request {
    /// Append this body; answer once it is durable (or refused).
    Append {
        body: BodyFields,
        reply: oneshot::Sender<Result<Appended, AuditError>>,
    },
    /// Write the final checkpoint and stop.
    Close {
        reply: oneshot::Sender<Result<(), AuditError>>,
    },
}

/// How long the writer waits for one more request before committing a batch that already
/// holds several. Appenders answered by the last commit come back within microseconds; without
/// this wait they miss the commit that is about to start and form a second wave, and each sync
/// serves half of them (measured with 8 appenders: 4.1 records per sync without it, 7.9 with
/// it, 1.6 times the rate). A lone appender (a batch of one) never waits.
const GATHER_WINDOW: Duration = Duration::from_micros(50);

/// Longest quiet spell within a gather: once the burst of appenders answered
/// by the last commit has stopped arriving, waiting longer only burns the CPU
/// they need to make their next records.
const GATHER_GAP: Duration = Duration::from_micros(10);

/// How long the writer keeps looking for the next request after a commit shared by several
/// records, before it sleeps. Concurrent sessions' next records come within tens of
/// microseconds; a writer found awake takes them without being woken, which on a virtual
/// machine with an idle CPU costs tens of microseconds. While it looks, appenders queue rather
/// than lead, so their syncs stay shared. After a commit of one record (a lone session whose
/// record happened to queue) it sleeps at once, and that session leads again.
const LINGER: Duration = Duration::from_micros(100);

/// A reply and what it says.
type Answer = (
    oneshot::Sender<Result<Appended, AuditError>>,
    Result<Appended, AuditError>,
);

/// Starts the writer thread of `writer`, its queue's waker registered before any append.
pub(super) fn spawn(writer: &Arc<Writer>) -> io::Result<JoinHandle<()>> {
    let thread = {
        let writer = Arc::clone(writer);
        std::thread::Builder::new()
            .name("mandate-audit-writer".into())
            .spawn(move || run(&writer))?
    };
    let alarm = Alarm::new(thread.thread().clone());
    // From now on a request wakes the thread; until then it only parks.
    let polled = writer
        .lock()
        .queue
        .poll_recv(&mut Context::from_waker(&alarm.waker()));
    debug_assert!(polled.is_pending(), "a request before the log was opened");
    writer.set_alarm(alarm);
    thread.thread().unpark();
    Ok(thread)
}

/// Waits for the next request while they keep arriving: up to [`GATHER_GAP`]
/// after the previous one, and never past `until`. Yields the CPU meanwhile.
fn gather(queue: &mut mpsc::Receiver<Request>, until: Instant) -> Option<Request> {
    let gap_ends = (Instant::now() + GATHER_GAP).min(until);
    while Instant::now() < gap_ends {
        std::thread::yield_now();
        if let Ok(request) = queue.try_recv() {
            return Some(request);
        }
    }
    None
}

/// Sends each answer. An appender that stopped waiting still had its record written (or not).
fn send(answers: &mut Vec<Answer>) {
    for (reply, result) in answers.drain(..) {
        let _ = reply.send(result);
    }
}

/// Runs the writer until it is closed or every handle is gone.
fn run(writer: &Writer) {
    // However the thread ends, the log ends with it.
    let _stop = Stop(writer);
    let alarm = loop {
        match writer.alarm() {
            Some(alarm) => break Arc::clone(alarm),
            None => std::thread::park(),
        }
    };
    let waker = alarm.waker();
    let mut cx = Context::from_waker(&waker);
    let mut bodies = Vec::new();
    let mut replies = Vec::new();
    let mut answers = Vec::new();
    let mut linger_until = None;
    loop {
        if linger_until.is_some() {
            std::thread::yield_now();
        } else {
            // A request queued while the writer was awake rang the alarm.
            alarm.wait(|| writer.deadline());
            writer.awake.store(true, Ordering::Release);
        }
        let mut state = writer.lock();
        let State { core: slot, queue } = &mut *state;
        let Some(core) = slot.as_mut() else { return };
        let max_batch = core.config.max_batch.max(1);
        // Takes requests only while holding the lock, so that a leader who sees the queue
        // empty has nothing waiting ahead of it. Polling also registers the waker again.
        while let Poll::Ready(first) = queue.poll_recv(&mut cx) {
            let Some(first) = first else {
                // Every handle is gone.
                let _ = core.close();
                return;
            };
            // The previous batch's appenders, before this one's commit.
            send(&mut answers);
            let mut close = None;
            let gather_until = Instant::now() + GATHER_WINDOW;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append { body, reply } => {
                        bodies.push(body);
                        replies.push(reply);
                    }
                    Request::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                }
                if bodies.len() < max_batch {
                    next = queue.try_recv().ok();
                    if next.is_none() && bodies.len() > 1 {
                        next = gather(queue, gather_until);
                    }
                }
            }
            if !bodies.is_empty() {
                let results = core.append(&bodies);
                if bodies.len() > 1 {
                    linger_until = Some(Instant::now() + LINGER);
                }
                bodies.clear();
                answers.extend(
                    replies
                        .drain(..)
                        .zip(results.into_iter().map(|r| r.map_err(|f| f.to_error()))),
                );
            }
            if let Some(reply) = close {
                let result = core.close().map_err(|failure| failure.to_error());
                let dir = core.dir.clone();
                // Releases the directory lock before the closer hears back.
                *slot = None;
                refuse_queued(queue, &dir);
                drop(state);
                send(&mut answers);
                let _ = reply.send(result);
                return;
            }
        }
        if writer.deadline().is_some_and(|at| Instant::now() >= at) {
            // A checkpoint fell due while no record arrived.
            core.housekeeping();
        }
        writer.publish_deadline(core, false);
        linger_until = linger_until.filter(|&until| Instant::now() < until);
        if linger_until.is_none() {
            // Before the answers: an appender coming straight back finds the writer asleep.
            writer.awake.store(false, Ordering::Release);
        }
        // Answered after the lock is free, so that an appender coming straight back can lead.
        drop(state);
        send(&mut answers);
    }
}

/// Closes the queue and refuses what is still in it; senders waiting for room are refused by
/// the close.
fn refuse_queued(queue: &mut mpsc::Receiver<Request>, dir: &std::path::Path) {
    queue.close();
    while let Ok(request) = queue.try_recv() {
        match request {
            Request::Append { reply, .. } => {
                let _ = reply.send(Err(AuditError::Closed {
                    path: dir.to_path_buf(),
                }));
            }
            Request::Close { reply } => {
                let _ = reply.send(Ok(()));
            }
        }
    }
}

/// Ends the log when the writer thread ends, also if it panicked: no leader commits after it,
/// and appenders still queued hear that the writer stopped (their reply channels are dropped).
struct Stop<'a>(&'a Writer);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.core = None;
        state.queue.close();
        while state.queue.try_recv().is_ok() {}
    }
}
