//! Wasmtime: one engine and one linker for the process, one pre-instantiated
//! component per agent, a fresh store per session.
//!
//! The guest is linked against the `agent` world and the WASI 0.2 interfaces
//! the standard toolchains (Rust, componentize-py, componentize-js) import
//! (the allow-list in [`ALLOWED_IMPORTS`]), with a WASI context that grants
//! nothing: no preopened directories, no environment, no network, stdin
//! empty, stdout and stderr captured in memory, outgoing HTTP refused. A
//! component that imports anything else is refused at load, as is one that
//! needs more of the instance pool than the session limits allow;
//! [`Runtime::inspect`] says why.
//!
//! Compiling is done once per component and engine settings when the runtime
//! has a compile cache ([`RuntimeBuilder::compile_cache`]).

mod bindings;
mod cache;
mod host;
mod host_calls;
mod http;
mod inspect;
mod limiter;
mod lockdown;
mod needs;
mod pool;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Cache, Config, Engine, InstanceAllocationStrategy};

use crate::limits::SessionLimits;
use crate::pipeline::{Guard, GuardError, Session};
use bindings::AgentPre;
pub use cache::{CacheError, default_dir as default_compile_cache};
pub use host::SessionState;
pub use inspect::{ExportReport, ImportReport, Inspection};
use limiter::EpochTicker;
pub use lockdown::{ALLOWED_IMPORTS, AllowedImport, GRANTS_NOTHING, GUARDED};
pub use needs::ComponentNeeds;
pub use sandbox::{Sandbox, SandboxError};

/// Why a component could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The wasm engine could not be set up.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    /// The file could not be read.
    #[error("cannot read agent `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file is not a component for the `agent` world.
    #[error("`{path}` is not an agent component: {reason}")]
    NotAnAgent {
        /// The file.
        path: PathBuf,
        /// Why, with a hint.
        reason: String,
    },
    /// The component imports interfaces the host refuses to link.
    #[error(
        "agent `{path}` imports what mandate does not provide: {}; mandate links the agent world and wasi 0.2's io, cli, clocks and random, and filesystem, sockets and outgoing http granting nothing; see `mandate inspect` for every import",
        inspect::quoted(.imports)
    )]
    ForbiddenImports {
        /// The file.
        path: PathBuf,
        /// Full names of the refused imports, e.g. `wasi:filesystem/types@0.2.6`,
        /// in the component's order.
        imports: Vec<String>,
    },
    /// The component needs more of the instance pool than a session may
    /// have.
    #[error(
        "agent `{path}` needs {needs} {what}, over the limit of {limit}; raise it with `{flag}` (`SessionLimits::{setting}` when embedding)"
    )]
    OverLimit {
        /// The file.
        path: PathBuf,
        /// What it needs too many of, e.g. `core instances`.
        what: &'static str,
        /// How many it needs.
        needs: u32,
        /// The session limit.
        limit: usize,
        /// The `SessionLimits` field that sets it, e.g. `instances`.
        setting: &'static str,
        /// The `mandate run` flag that sets it, e.g. `--max-instances`.
        flag: &'static str,
    },
    /// The compile cache cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The session could not start (bad session or audit log unavailable).
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// The engine and linker, built once per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<SessionState>,
    sessions: SessionBudget,
    cache: Option<Cache>,
}

/// How a runtime is set up: [`Runtime::builder`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeBuilder {
    limits: SessionLimits,
    compile_cache: Option<PathBuf>,
}

impl RuntimeBuilder {
    /// Holds every session to `limits` (default: [`SessionLimits::default`]).
    pub fn limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps compiled components in `dir` (created 0700 if missing; refused
    /// if another user could write to it), so that a component is compiled
    /// once and later runtimes load it from there. Default: no cache, every
    /// runtime compiles. [`default_compile_cache`] is the usual place.
    pub fn compile_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.compile_cache = Some(dir.into());
        self
    }

    /// Sets up the engine and links the host imports.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        Runtime::build(self.limits, self.compile_cache.as_deref())
    }
}

/// How a component came to be compiled, from [`AgentComponent::compiled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Loaded from the runtime's compile cache.
    FromCache,
    /// Compiled now, taking this long (and stored in the cache, if the
    /// runtime has one).
    Now(Duration),
}

/// What every session of a runtime shares: its limits, the epoch ticker
/// that enforces CPU time, and the count of sessions running.
#[derive(Clone)]
struct SessionBudget {
    limits: Arc<SessionLimits>,
    running: Arc<Semaphore>,
    _ticker: Option<Arc<EpochTicker>>,
}

impl Runtime {
    /// Sets up the engine with the default [`SessionLimits`] and links the
    /// host imports.
    pub fn new() -> Result<Runtime, RuntimeError> {
        Self::with_limits(SessionLimits::default())
    }

    /// Sets up the engine so that every session is held to `limits`, and
    /// links the host imports.
    pub fn with_limits(limits: SessionLimits) -> Result<Runtime, RuntimeError> {
        Self::build(limits, None)
    }

    /// A runtime with settings beyond the limits, such as a compile cache.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The compile cache's directory, if the runtime has one.
    pub fn compile_cache(&self) -> Option<&Path> {
        self.cache.as_ref().map(|c| c.directory().as_path())
    }

    fn build(limits: SessionLimits, cache_dir: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(limits.cpu_time.is_some());
        config.consume_fuel(limits.fuel.is_some());
        config.max_wasm_stack(limits.stack_bytes);
        config.async_stack_size(limiter::async_stack_bytes(&limits));
        // Slots reserved once per runtime instead of mappings made per
        // session (see `pool`); memories are still initialized copy-on-write
        // from the component's image, as by default.
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool::config(&limits)));
        config.memory_init_cow(true);
        let cache = cache_dir.map(cache::open).transpose()?;
        config.cache(cache.clone());
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let ticker = match limits.cpu_time {
            Some(_) => Some(Arc::new(EpochTicker::start(&engine).map_err(|e| {
                RuntimeError::Engine(format!("cannot start the epoch ticker: {e}"))
            })?)),
            None => None,
        };
        let sessions = SessionBudget {
            running: Arc::new(Semaphore::new(limits.concurrent_sessions.max(1))),
            limits: Arc::new(limits),
            _ticker: ticker,
        };
        let mut linker = Linker::new(&engine);
        lockdown::add_to_linker(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("cannot link the host imports: {e:#}")))?;
        Ok(Runtime {
            engine,
            linker,
            sessions,
            cache,
        })
    }

    /// Compiles the component at `path` and checks it is an agent: it must
    /// export `run`, import nothing the host does not provide and need no
    /// more core instances, memories and tables than a session may have. A
    /// component that imports anything outside [`ALLOWED_IMPORTS`] is refused
    /// with [`RuntimeError::ForbiddenImports`], which lists every such
    /// import; one over a limit with [`RuntimeError::OverLimit`].
    pub fn load_agent(&self, path: &Path) -> Result<AgentComponent, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|error| RuntimeError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        self.load_agent_bytes(path, &bytes)
    }

    /// Same as [`Runtime::load_agent`] for bytes already in memory; `path`
    /// names them in errors.
    pub fn load_agent_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<AgentComponent, RuntimeError> {
        let needs = self.check_needs(path, bytes)?;
        let hits = self.cache.as_ref().map(Cache::cache_hits);
        let started = Instant::now();
        let component = self.compile(path, bytes)?;
        let compiled = match (hits, &self.cache) {
            (Some(before), Some(cache)) if cache.cache_hits() > before => Compiled::FromCache,
            _ => Compiled::Now(started.elapsed()),
        };
        let pre = self.prepare(path, &component)?;
        Ok(AgentComponent {
            engine: self.engine.clone(),
            sessions: self.sessions.clone(),
            pre,
            digest: hex::encode(Sha256::digest(bytes)),
            path: path.to_path_buf(),
            needs,
            compiled,
        })
    }

    /// Counts what the component needs from the instance pool and refuses
    /// it, naming the limit, when that is more than a session may have.
    fn check_needs(&self, path: &Path, bytes: &[u8]) -> Result<ComponentNeeds, RuntimeError> {
        inspect::check_header(path, bytes)?;
        let needs = ComponentNeeds::of(bytes).map_err(|reason| RuntimeError::NotAnAgent {
            path: path.to_path_buf(),
            reason: format!("it is not a well-formed component: {reason}"),
        })?;
        match over_limit(&needs, &self.sessions.limits) {
            Some(over) => Err(over.at(path)),
            None => Ok(needs),
        }
    }
}

/// The first limit `needs` is over, if any.
pub(crate) fn over_limit(needs: &ComponentNeeds, limits: &SessionLimits) -> Option<OverLimit> {
    [
        (
            "core instances",
            needs.core_instances,
            limits.instances,
            "instances",
            "--max-instances",
        ),
        (
            "linear memories",
            needs.memories,
            limits.memories,
            "memories",
            "--max-memories",
        ),
        (
            "tables",
            needs.tables,
            limits.tables,
            "tables",
            "--max-tables",
        ),
    ]
    .into_iter()
    .find(|&(_, needs, limit, _, _)| usize::try_from(needs).map_or(true, |n| n > limit))
    .map(|(what, needs, limit, setting, flag)| OverLimit {
        what,
        needs,
        limit,
        setting,
        flag,
    })
}

/// A limit a component is over, before it is tied to a file.
pub(crate) struct OverLimit {
    what: &'static str,
    needs: u32,
    limit: usize,
    setting: &'static str,
    flag: &'static str,
}

impl OverLimit {
    fn at(self, path: &Path) -> RuntimeError {
        RuntimeError::OverLimit {
            path: path.to_path_buf(),
            what: self.what,
            needs: self.needs,
            limit: self.limit,
            setting: self.setting,
            flag: self.flag,
        }
    }
}

/// A compiled, pre-instantiated agent, reused for every session.
pub struct AgentComponent {
    engine: Engine,
    sessions: SessionBudget,
    pre: AgentPre<SessionState>,
    digest: String,
    path: PathBuf,
    needs: ComponentNeeds,
    compiled: Compiled,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The agent returned from `run`: its report, or the error it gave up with.
    Finished(Result<String, String>),
    /// The guest trapped or broke a limit; the host stopped it.
    Faulted(String),
}

/// The result of one session.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// What the guest wrote to stdout and stderr (captured, bounded).
    pub output: String,
}

impl AgentComponent {
    /// SHA-256 of the component, written in every record of its sessions.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Where the component was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What each of its sessions takes from the instance pool.
    pub fn needs(&self) -> ComponentNeeds {
        self.needs
    }

    /// Whether it was compiled when loaded or came from the compile cache.
    pub fn compiled(&self) -> Compiled {
        self.compiled
    }

    /// Runs one session: starts it in the guard (session-start record),
    /// runs the agent's `run(task)` in a fresh [`Sandbox`], and records how
    /// it ended.
    pub async fn run(
        &self,
        guard: &Guard,
        session: Session,
        task: &str,
    ) -> Result<RunReport, RuntimeError> {
        let session_guard = Arc::new(
            guard
                .start_session(session, Some(self.digest.clone()))
                .await?,
        );
        let report = match self.sandbox(Arc::clone(&session_guard)).await {
            Ok(sandbox) => sandbox.run(task).await,
            Err(SandboxError::Faulted { message, output }) => RunReport {
                outcome: RunOutcome::Faulted(message),
                output,
            },
            Err(refused) => RunReport {
                outcome: RunOutcome::Faulted(refused.to_string()),
                output: String::new(),
            },
        };
        match &report.outcome {
            RunOutcome::Finished(result) => session_guard.end(result).await?,
            RunOutcome::Faulted(message) => session_guard.fault(message).await?,
        }
        Ok(report)
    }
}
