//! Waiting on a future from a plain thread.
//!
//! The appenders' queue and reply channels are tokio channels, so that async callers await them
//! without blocking a worker. Blocking callers poll the same futures here, and the writer thread
//! polls the queue, parking the thread between wake-ups. Unlike tokio's `blocking_recv`, this
//! never panics when called from inside a runtime (it only blocks that worker, which a blocking
//! call does anyway).
//!
//! The writer thread sleeps on an [`Alarm`], which tells a real wake-up (a request queued, a
//! deadline brought forward) from a spurious one.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// Wakes one thread, which sleeps in [`Alarm::wait`] until it is rung.
#[derive(Debug)]
pub(super) struct Alarm {
    thread: Thread,
    rung: AtomicBool,
}

impl Alarm {
    /// An alarm for `thread`.
    pub(super) fn new(thread: Thread) -> Arc<Self> {
        Arc::new(Alarm {
            thread,
            rung: AtomicBool::new(false),
        })
    }

    pub(super) fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Sleeps until the alarm rings or `deadline()` passes (it is asked again at every
    /// wake-up). Only the alarm's thread may wait on it.
    pub(super) fn wait(&self, deadline: impl Fn() -> Option<Instant>) {
        loop {
            if self.rung.swap(false, Ordering::AcqRel) {
                return;
            }
            match deadline() {
                None => thread::park(),
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => thread::park_timeout(left),
                    _ => return,
                },
            }
        }
    }

    /// A waker that rings the alarm.
    pub(super) fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::clone(self))
    }
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.ring();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_value_sent_from_another_thread_wakes_the_waiter() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 7);
        sender.join().unwrap();
    }

    #[test]
    fn an_alarm_sleeps_through_a_stray_unpark_until_it_rings_or_its_deadline_passes() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = thread::spawn(move || {
            let alarm = Alarm::new(thread::current());
            tx.send(Arc::clone(&alarm)).unwrap();
            alarm.wait(|| None);
            let started = Instant::now();
            alarm.wait(|| Some(started + Duration::from_millis(30)));
            started.elapsed()
        });
        let alarm = rx.recv().unwrap();
        // A stray unpark, then the ring.
        alarm.thread.unpark();
        thread::sleep(Duration::from_millis(20));
        assert!(!sleeper.is_finished(), "woke up without the alarm");
        alarm.ring();
        assert!(sleeper.join().unwrap() >= Duration::from_millis(30));
    }
}
