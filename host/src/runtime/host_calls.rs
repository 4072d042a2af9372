//! Tool calls run on the session task's own stack, not on the guest's fiber.
//!
//! Why: a wasm guest runs on a wasmtime fiber, a separate stack, and every
//! host import is polled on it. Cedar's evaluator guards its recursion with
//! `stacker::remaining_stack()`, which compares the stack pointer with the
//! limit of the *thread's* stack; on a fiber that comparison is meaningless
//! and the evaluation fails with "recursion limit reached". So the `call`
//! import does not run the call path itself: it hands the call's future to
//! the [`HostCalls`] slot and waits, and [`drive`], which polls the guest
//! from the session's task, polls that future between two turns of the
//! guest, on the thread's own stack where Cedar's check is right.
//!
//! This replaces a tokio task per call: no thread hop, no wake-up of another
//! worker, only the two fiber switches of any async import. While a call is
//! in flight the guest is suspended inside it (calls of one session are
//! sequential), so there is never more than one call in the slot.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use crate::pipeline::ToolCallError;

/// A call on its way through the guard's call path.
pub(crate) type CallFuture = Pin<Box<dyn Future<Output = CallResult> + Send>>;
type CallResult = Result<String, ToolCallError>;

/// The one call a session has in flight, shared by the guest's `call`
/// import (which submits it and takes its result) and [`drive`] (which runs
/// it).
#[derive(Default)]
pub(crate) struct HostCalls {
    slot: Mutex<Slot>,
}

#[derive(Default)]
enum Slot {
    #[default]
    Idle,
    Submitted(CallFuture),
    Done(CallResult),
}

impl HostCalls {
    /// Hands `call` to the driver; the returned future resolves to its
    /// result once the driver has run it.
    pub(crate) fn run(&self, call: CallFuture) -> impl Future<Output = CallResult> + '_ {
        *self.lock() = Slot::Submitted(call);
        // No waker is kept: the guest is polled again (and this future with
        // it) only by `drive`, right after the call is done.
        poll_fn(|_| {
            let slot = std::mem::take(&mut *self.lock());
            match slot {
                Slot::Done(result) => Poll::Ready(result),
                other => {
                    *self.lock() = other;
                    Poll::Pending
                }
            }
        })
    }

    /// Polls the submitted call, if any, on the caller's stack. `Ready` when
    /// no call is left in flight.
    fn poll_call(&self, cx: &mut Context<'_>) -> Poll<()> {
        let slot = std::mem::take(&mut *self.lock());
        let mut call = match slot {
            Slot::Submitted(call) => call,
            other => {
                *self.lock() = other;
                return Poll::Ready(());
            }
        };
        // The slot is not locked while the call runs: a reviewer may take
        // minutes. A panic in the call path ends the call, not the host, as
        // a task's panic did.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx)));
        let (slot, poll) = match polled {
            Ok(Poll::Pending) => (Slot::Submitted(call), Poll::Pending),
            Ok(Poll::Ready(result)) => (Slot::Done(result), Poll::Ready(())),
            Err(_) => (
                Slot::Done(Err(ToolCallError::ToolFailed(
                    "the call path failed: it panicked".into(),
                ))),
                Poll::Ready(()),
            ),
        };
        *self.lock() = slot;
        poll
    }

    fn has_submitted(&self) -> bool {
        matches!(&*self.lock(), Slot::Submitted(_))
    }

    /// The slot; a panic elsewhere cannot leave it half-written (every
    /// write is one assignment), so a poisoned lock is still good.
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Polls `guest` (an instantiation or a call into the guest) to completion,
/// running every tool call it makes through `calls` between its turns, on
/// this task's stack.
pub(crate) async fn drive<F: Future>(calls: &HostCalls, guest: F) -> F::Output {
    let mut guest = pin!(guest);
    poll_fn(|cx| {
        loop {
            // The guest waits inside its call until the call is done:
            // resuming it earlier would only switch fibers twice.
            if calls.poll_call(cx).is_pending() {
                return Poll::Pending;
            }
            match guest.as_mut().poll(cx) {
                Poll::Ready(output) => return Poll::Ready(output),
                // Suspended in a new call: run it now. Otherwise the guest
                // waits for something else (an epoch yield) that wakes us.
                Poll::Pending if calls.has_submitted() => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the guest: submits calls and waits for their results,
    /// the way the `call` import does on the fiber.
    async fn guest(calls: &HostCalls, n: usize) -> Vec<CallResult> {
        let mut results = Vec::new();
        for i in 0..n {
            let call: CallFuture = Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(format!("result {i}"))
            });
            results.push(calls.run(call).await);
        }
        results
    }

    #[tokio::test]
    async fn every_call_is_run_by_the_driver_and_its_result_reaches_the_guest() {
        let calls = HostCalls::default();
        let results = drive(&calls, guest(&calls, 3)).await;
        assert_eq!(
            results,
            vec![
                Ok("result 0".to_string()),
                Ok("result 1".to_string()),
                Ok("result 2".to_string())
            ]
        );
        assert!(matches!(&*calls.lock(), Slot::Idle));
    }

    #[tokio::test]
    async fn a_call_that_panics_fails_alone() {
        let calls = HostCalls::default();
        let guest = async {
            let call: CallFuture = Box::pin(async { panic!("boom") });
            calls.run(call).await
        };
        let result = drive(&calls, guest).await;
        assert_eq!(
            result,
            Err(ToolCallError::ToolFailed(
                "the call path failed: it panicked".into()
            ))
        );
    }
}
