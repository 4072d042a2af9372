//! Enforcing [`SessionLimits`] inside the store: memory and table growth,
//! CPU time by epochs, and telling which limit stopped a guest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::{Engine, ResourceLimiter, Trap};

use crate::limits::{EPOCH_TICK, LimitExceeded, SessionLimits};

/// The store's resource limiter: refuses growth past the session's limits
/// with an error that names the limit (growth refused with `Ok(false)` would
/// surface in the guest as an anonymous allocation failure).
pub(crate) struct SessionLimiter {
    limits: Arc<SessionLimits>,
}

impl SessionLimiter {
    pub(crate) fn new(limits: Arc<SessionLimits>) -> Self {
        SessionLimiter { limits }
    }
}

impl ResourceLimiter for SessionLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            return Err(LimitExceeded::Memory {
                limit: self.limits.memory_bytes,
                requested: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.table_elements {
            return Err(LimitExceeded::TableElements {
                limit: self.limits.table_elements,
                requested: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        self.limits.tables
    }

    fn memories(&self) -> usize {
        self.limits.memories
    }
}

/// Epoch ticks of guest CPU time a session may use, if it is limited.
pub(crate) fn cpu_ticks(limits: &SessionLimits) -> Option<u64> {
    let tick = EPOCH_TICK.as_nanos().max(1);
    let cpu_time = limits.cpu_time?;
    Some(
        u64::try_from(cpu_time.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1),
    )
}

/// Names the limit behind a guest's trap, when a limit was behind it.
pub(crate) fn classify(error: &wasmtime::Error, limits: &SessionLimits) -> Option<LimitExceeded> {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return Some(limit.clone());
    }
    match error.downcast_ref::<Trap>()? {
        Trap::StackOverflow => Some(LimitExceeded::Stack {
            limit: limits.stack_bytes,
        }),
        Trap::OutOfFuel => limits.fuel.map(|limit| LimitExceeded::Fuel { limit }),
        Trap::Interrupt => limits
            .cpu_time
            .map(|limit| LimitExceeded::CpuTime { limit }),
        _ => None,
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread, until
/// dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("mandate-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The wasm stack a session gets, leaving the async fiber room for host
/// frames above it.
pub(crate) fn async_stack_bytes(limits: &SessionLimits) -> usize {
    limits.stack_bytes.saturating_add(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpu_time_is_counted_in_whole_ticks_and_none_means_unlimited() {
        let limits = |cpu_time| SessionLimits {
            cpu_time,
            ..SessionLimits::default()
        };
        assert_eq!(cpu_ticks(&limits(Some(Duration::from_secs(1)))), Some(100));
        assert_eq!(cpu_ticks(&limits(Some(Duration::from_millis(15)))), Some(2));
        assert_eq!(cpu_ticks(&limits(Some(Duration::ZERO))), Some(1));
        assert_eq!(cpu_ticks(&limits(None)), None);
    }

    #[test]
    fn traps_are_named_by_the_limit_behind_them() {
        let limits = SessionLimits {
            fuel: Some(7),
            ..SessionLimits::default()
        };
        let named = |e: wasmtime::Error| classify(&e, &limits).map(|l| l.to_string());
        assert_eq!(
            named(Trap::StackOverflow.into()).as_deref(),
            Some("session limit exceeded: wasm stack of 1048576 bytes (unbounded recursion?)")
        );
        assert_eq!(
            named(Trap::OutOfFuel.into()).as_deref(),
            Some("session limit exceeded: fuel budget of 7")
        );
        assert_eq!(
            named(Trap::Interrupt.into()).as_deref(),
            Some("session limit exceeded: cpu time of 30000 ms running guest code")
        );
        assert_eq!(named(Trap::UnreachableCodeReached.into()), None);
        let memory = LimitExceeded::Memory {
            limit: 10,
            requested: 20,
        };
        assert_eq!(
            named(memory.clone().into()).as_deref(),
            Some(memory.to_string().as_str())
        );
    }

    #[test]
    fn growth_past_a_limit_is_an_error_naming_it() {
        let mut limiter = SessionLimiter::new(Arc::new(SessionLimits {
            memory_bytes: 1000,
            table_elements: 10,
            ..SessionLimits::default()
        }));
        assert!(limiter.memory_growing(0, 1000, None).unwrap());
        let err = limiter.memory_growing(0, 1001, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "session limit exceeded: linear memory of 1000 bytes; the guest asked for 1001"
        );
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(limiter.table_growing(0, 11, None).is_err());
    }
}
