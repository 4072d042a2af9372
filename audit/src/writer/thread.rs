//! The writer thread: group commit.
//!
//! Appenders serialize their bodies on their own threads and queue them, bounded, with a reply
//! channel. The thread takes whatever has queued up (at most `max_batch`, waiting a few
//! microseconds for stragglers when several are there), commits it with one write and one
//! `fdatasync`, and only then answers each appender. While one batch syncs, the next one
//! queues, so under load one sync serves many records and no appender returns before its own
//! record is durable.
//!
//! Handing the sync to a second thread, so that the next batch is stamped and written while the
//! disk works, was measured too: on a 2-core machine it gained nothing (the CPU, not the wait,
//! bounds the rate there) and cost single appenders a thread hand-off per record, so the writer
//! stays one thread.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::super::chain::BodyFields;
use super::super::error::AuditError;
use super::Appended;
use super::block::block_on_until;
use super::core::Core;

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

/// How long the writer keeps looking for the next request after a commit before it sleeps.
/// A session's next record (the outcome after a quick tool, the next call's decision) usually
/// comes within tens of microseconds; a sleeping writer must first be woken, which on a virtual
/// machine with an idle CPU costs tens of microseconds more than the record itself (measured on
/// the 2-core development VM: a whole allowed call took 146 µs at p50 with the other core idle,
/// 36 µs with it busy). Looking costs the writer's CPU only just after a commit.
const LINGER: Duration = Duration::from_micros(100);

/// Looks for a request for up to [`LINGER`], yielding the CPU meanwhile.
fn linger(queue: &mut mpsc::Receiver<Request>) -> Option<Request> {
    let until = Instant::now() + LINGER;
    loop {
        match queue.try_recv() {
            Ok(request) => return Some(request),
            // Every handle is gone: stop at once, so that the log closes
            // (and its directory lock is released) without delay.
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
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

/// Runs the writer until it is closed or every handle is gone.
pub(super) fn run(mut core: Core, mut queue: mpsc::Receiver<Request>) {
    let max_batch = core.config.max_batch.max(1);
    let mut bodies = Vec::with_capacity(max_batch.min(1024));
    let mut replies = Vec::with_capacity(max_batch.min(1024));
    let mut committed = false;
    loop {
        let lingered = if committed { linger(&mut queue) } else { None };
        let waited = match lingered {
            Some(request) => Some(Some(request)),
            None => block_on_until(queue.recv(), core.next_deadline()),
        };
        committed = false;
        let first = match waited {
            // A checkpoint fell due while no record arrived.
            None => {
                core.housekeeping();
                continue;
            }
            Some(None) => {
                let _ = core.close();
                return;
            }
            Some(Some(request)) => request,
        };
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
                    next = gather(&mut queue, gather_until);
                }
            }
        }
        if !bodies.is_empty() {
            let results = core.append(&bodies);
            for (reply, result) in replies.drain(..).zip(results) {
                // An appender that stopped waiting still had its record written (or not).
                let _ = reply.send(result.map_err(|failure| failure.to_error()));
            }
            bodies.clear();
            committed = true;
        }
        if let Some(reply) = close {
            let result = core.close().map_err(|failure| failure.to_error());
            // Refuse what is still queued; senders waiting for room are refused by `close`.
            queue.close();
            while let Ok(request) = queue.try_recv() {
                let closed = AuditError::Closed {
                    path: core.dir.clone(),
                };
                match request {
                    Request::Append { reply, .. } => {
                        let _ = reply.send(Err(closed));
                    }
                    Request::Close { reply } => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            let _ = reply.send(result);
            return;
        }
    }
}
