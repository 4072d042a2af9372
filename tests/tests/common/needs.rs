//! Checks a component's counted needs against wasmtime's own pool check.

use std::path::Path;

use mandate::runtime::ComponentNeeds;
use wasmtime::component::Component;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// Compiles `bytes` with pools whose per-component maxima are exactly the
/// counted needs (accepted), then one short of each nonzero need in turn
/// (refused by wasmtime, naming what it counted). The pool does not change
/// the compiled code, so a compile cache makes the three refusals cheap:
/// wasmtime checks the pool after it has the code, from the cache or not.
pub fn assert_matches_wasmtime(bytes: &[u8], name: &str) {
    let cache_dir = tempfile::tempdir().unwrap();
    assert_matches_wasmtime_cached(bytes, name, cache_dir.path());
}

/// Same as [`assert_matches_wasmtime`] with the compile cache in
/// `cache_dir`, kept across runs: a component that takes minutes to compile
/// then does so once.
pub fn assert_matches_wasmtime_cached(bytes: &[u8], name: &str, cache_dir: &Path) {
    let needs = ComponentNeeds::of(bytes).unwrap();
    let mut cache_config = CacheConfig::new();
    cache_config.with_directory(cache_dir);
    let cache = Cache::new(cache_config).unwrap();
    let compile = |instances: u32, memories: u32, tables: u32| {
        let mut pool = PoolingAllocationConfig::new();
        pool.max_core_instances_per_component(instances)
            .max_memories_per_component(memories)
            .max_tables_per_component(tables)
            .max_memories_per_module(memories.max(1))
            .max_tables_per_module(tables.max(1))
            .total_memories(memories.max(1))
            .total_tables(tables.max(1))
            .total_core_instances(instances.max(1));
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.cache(Some(cache.clone()));
        let engine = Engine::new(&config).unwrap();
        Component::from_binary(&engine, bytes).map(|_| ())
    };
    let (i, m, t) = (needs.core_instances, needs.memories, needs.tables);
    if let Err(e) = compile(i, m, t) {
        panic!("{name}: refused at its counted needs {needs:?}: {e:#}");
    }
    for (short, what) in [
        ((i.saturating_sub(1), m, t), "core module instances"),
        ((i, m.saturating_sub(1), t), "linear memories"),
        ((i, m, t.saturating_sub(1)), "tables"),
    ] {
        if short == (i, m, t) {
            continue;
        }
        let err = compile(short.0, short.1, short.2).expect_err(&format!(
            "{name}: accepted one short of {needs:?} in {what}"
        ));
        assert!(
            format!("{err:#}").contains(what),
            "{name}: refused for another reason: {err:#}"
        );
    }
}
