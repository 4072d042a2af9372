//! Failures injected on purpose, for the tests of what the log does when the disk refuses.
//!
//! Some faults can be provoked for real (a full tmpfs, a segment renamed away), others cannot:
//! tests run as root, which permission bits do not stop, and real I/O errors need a failing
//! device. The writer asks [`FaultInjector::take`] once per commit; with nothing injected that is
//! one uncontended lock.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A failure to inject into the writer's next commits.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Writing fails with "permission denied" before any byte is written.
    PermissionDenied,
    /// Writing fails with "no space left on device" after half of the bytes were written.
    DiskFull,
    /// Writing fails with an I/O error after half of the bytes were written.
    Io,
    /// The bytes are written but syncing them fails.
    SyncFails,
    /// Writing fails after half of the bytes, and removing them fails too.
    RollbackFails,
    /// Each sync takes this much longer, so that appenders pile up behind it.
    SlowSync(Duration),
}

impl Fault {
    /// The error an injected write or sync fails with.
    pub(super) fn error(self) -> io::Error {
        match self {
            Fault::PermissionDenied => io::Error::new(
                io::ErrorKind::PermissionDenied,
                "permission denied (injected)",
            ),
            Fault::DiskFull => io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ),
            Fault::Io | Fault::RollbackFails | Fault::SlowSync(_) => {
                io::Error::other("input/output error (injected)")
            }
            Fault::SyncFails => io::Error::other("sync failed: input/output error (injected)"),
        }
    }
}

/// When to inject a [`Fault`]: after letting `skip` commits through, during the next `count`
/// commits (`None`: until the plan is replaced).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// What fails.
    pub fault: Fault,
    /// Commits that succeed first.
    pub skip: u64,
    /// Commits that fail then; `None` for all of them.
    pub count: Option<u64>,
}

impl FaultPlan {
    /// `fault` in every commit from now on.
    pub fn always(fault: Fault) -> Self {
        FaultPlan {
            fault,
            skip: 0,
            count: None,
        }
    }
}

/// A handle that injects faults into one log's writer; clones share the plan.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct FaultInjector(Arc<Mutex<Option<FaultPlan>>>);

impl FaultInjector {
    /// Replaces the plan; `None` clears it.
    pub fn set(&self, plan: Option<FaultPlan>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = plan;
    }

    /// The plan still to come (`None` once it ran out or was cleared).
    pub fn plan(&self) -> Option<FaultPlan> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault for the commit about to happen, if any, counting it against the plan.
    pub(super) fn take(&self) -> Option<Fault> {
        let mut plan = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let current = (*plan)?;
        if current.skip > 0 {
            *plan = Some(FaultPlan {
                skip: current.skip - 1,
                ..current
            });
            return None;
        }
        match current.count {
            None => {}
            Some(0) | Some(1) => *plan = None,
            Some(n) => {
                *plan = Some(FaultPlan {
                    count: Some(n - 1),
                    ..current
                })
            }
        }
        if current.count == Some(0) {
            return None;
        }
        Some(current.fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_skips_then_fails_then_clears_itself() {
        let faults = FaultInjector::default();
        faults.set(Some(FaultPlan {
            fault: Fault::Io,
            skip: 2,
            count: Some(2),
        }));
        let taken: Vec<_> = (0..6).map(|_| faults.take()).collect();
        assert_eq!(
            taken,
            [None, None, Some(Fault::Io), Some(Fault::Io), None, None]
        );
        faults.set(Some(FaultPlan::always(Fault::DiskFull)));
        assert_eq!(faults.take(), Some(Fault::DiskFull));
        assert_eq!(faults.take(), Some(Fault::DiskFull));
        faults.set(None);
        assert_eq!(faults.take(), None);
    }
}
