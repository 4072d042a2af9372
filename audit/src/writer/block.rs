//! Waiting on a future from a plain thread, with an optional deadline.
//!
//! The appenders' queue and reply channels are tokio channels, so that async callers await them
//! without blocking a worker. Blocking callers and the writer thread poll the same futures here,
//! parking the thread between wake-ups. Unlike tokio's `blocking_recv`, this never panics when
//! called from inside a runtime (it only blocks that worker, which a blocking call does anyway).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
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

/// Runs `future` until it completes or `deadline` passes (`None`: no deadline). The future is
/// dropped on timeout, so it must be cancel safe.
pub(super) fn block_on_until<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(block_on(future));
    };
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
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
    fn a_deadline_gives_up_and_later_values_still_arrive() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u8>(1);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(block_on_until(rx.recv(), Some(soon)), None);
        tx.try_send(3).unwrap();
        assert_eq!(block_on_until(rx.recv(), Some(soon)), Some(Some(3)));
    }
}
