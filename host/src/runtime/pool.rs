//! The pooling instance allocator, sized from [`SessionLimits`].
//!
//! Why pooling: wasmtime's default allocator maps, protects and unmaps a
//! linear memory, its tables and a fiber stack for every instantiation, and
//! each of those system calls (and the page faults after them) is paid again
//! by every session. The pool reserves the slots once, when the runtime is
//! built, and a new session only takes free slots and maps the component's
//! copy-on-write memory image into them, so starting a session costs
//! microseconds instead of hundreds of them.
//!
//! Sizing: the pool holds exactly `concurrent_sessions` sessions, each at its
//! `instances`, `memories` and `tables` limits, so a session the runtime
//! admits (the session semaphore refuses the rest first) always finds its
//! slots. Each memory slot reserves address space, not memory: about 4 GiB
//! plus a guard region (wasmtime's default reservation, which lets compiled
//! code skip bounds checks), so the default limits reserve about 2.6 TiB of
//! the 128 TiB of a 64-bit address space per runtime, less than wasmtime's
//! own default pool of 1,000 memories. The pages are committed only while a
//! guest uses them.

use wasmtime::{Enabled, PoolConcurrencyLimitError, PoolingAllocationConfig};

use crate::limits::SessionLimits;

/// Bytes of a memory's dirty pages reset in place (copied back from the
/// image or zeroed) when its session ends, instead of handed back to the
/// kernel with `madvise`: the next session in the slot then finds its hot
/// pages (the top of the guest's stack, its data, the start of its heap,
/// scattered over the first megabytes) resident, without a page fault each.
/// With Linux's `PAGEMAP_SCAN` (6.7 and later) only the pages the guest
/// touched are reset; without it wasmtime resets the lowest addresses, which
/// a Rust guest's stack region mostly leaves untouched. Measured on the
/// scripted agent: a new session's sandbox plus its first call took 38 µs
/// with `madvise` and 22 µs with this. At most this much stays resident per
/// memory slot in use.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 1024 * 1024;

/// The same for a table's elements: a guest's function table is a few
/// kilobytes.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 * 1024;

/// The pool for a runtime whose sessions are held to `limits`.
pub(super) fn config(limits: &SessionLimits) -> PoolingAllocationConfig {
    let sessions = count(limits.concurrent_sessions.max(1));
    let instances = count(limits.instances);
    let memories = count(limits.memories);
    let tables = count(limits.tables);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(sessions)
        .total_core_instances(sessions.saturating_mul(instances))
        .total_memories(sessions.saturating_mul(memories))
        .total_tables(sessions.saturating_mul(tables))
        // One fiber stack per running session: instantiation and `run`
        // take turns on it.
        .total_stacks(sessions)
        .max_core_instances_per_component(instances)
        .max_memories_per_component(memories)
        .max_tables_per_component(tables)
        .max_memories_per_module(memories)
        .max_tables_per_module(tables)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements)
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Saturates a configured count to the pool's `u32` counts.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What the pool said when it had no free slot for a new session, if that is
/// why `error` happened.
pub(super) fn exhausted(error: &wasmtime::Error) -> Option<String> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<PoolConcurrencyLimitError>())
        .map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};

    use super::*;

    /// The smallest component: the header alone. It takes one component
    /// instance slot and nothing else.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_full_pool_is_named_and_not_confused_with_other_errors() {
        let limits = SessionLimits {
            concurrent_sessions: 1,
            ..SessionLimits::default()
        };
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(super::config(&limits)));
        let engine = Engine::new(&config).unwrap();
        let component = Component::from_binary(&engine, EMPTY_COMPONENT).unwrap();
        let linker = Linker::<()>::new(&engine);
        let mut first = Store::new(&engine, ());
        linker.instantiate(&mut first, &component).unwrap();
        let mut second = Store::new(&engine, ());
        let err = linker.instantiate(&mut second, &component).unwrap_err();
        assert_eq!(
            exhausted(&err).as_deref(),
            Some("maximum concurrent limit of 1 for component instances reached")
        );
        drop(first);
        let mut third = Store::new(&engine, ());
        linker.instantiate(&mut third, &component).unwrap();
        assert_eq!(exhausted(&wasmtime::Error::msg("other")), None);
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        assert_eq!(count(usize::MAX), u32::MAX);
        assert_eq!(count(64), 64);
    }
}
