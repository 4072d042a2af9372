//! Wasmtime: one engine and one linker for the process, one pre-instantiated
//! component per agent, a fresh store per session.
//!
//! The guest is linked against the `agent` world and only the WASI interfaces
//! the Rust standard library imports (the allow-list in [`ALLOWED_IMPORTS`]),
//! with a WASI context that grants nothing: no preopened directories, no
//! environment, stdin empty, stdout and stderr captured in memory. A
//! component that imports anything else (filesystem, sockets, http, ...) is
//! refused at load; [`Runtime::inspect`] says why.

mod bindings;
mod host;
mod host_calls;
mod inspect;
mod limiter;
mod lockdown;
mod pool;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use crate::limits::SessionLimits;
use crate::pipeline::{Guard, GuardError, Session};
use bindings::AgentPre;
pub use host::SessionState;
pub use inspect::{ExportReport, ImportReport, Inspection};
use limiter::EpochTicker;
pub use lockdown::{ALLOWED_IMPORTS, AllowedImport};
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
        "agent `{path}` imports what mandate does not provide: {}; an agent may reach the world only through mandate:guard/tools, so it gets no filesystem, network or environment: remove the code that uses them (`std::fs`, `std::net`, ...) and see `mandate inspect` for every import",
        inspect::quoted(.imports)
    )]
    ForbiddenImports {
        /// The file.
        path: PathBuf,
        /// Full names of the refused imports, e.g. `wasi:filesystem/types@0.2.6`,
        /// in the component's order.
        imports: Vec<String>,
    },
    /// The session could not start (bad session or audit log unavailable).
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// The engine and linker, built once per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<SessionState>,
    sessions: SessionBudget,
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
        })
    }

    /// Compiles the component at `path` and checks it is an agent: it must
    /// export `run` and import nothing the host does not provide. A component
    /// that imports anything outside [`ALLOWED_IMPORTS`] is refused with
    /// [`RuntimeError::ForbiddenImports`], which lists every such import.
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
        let component = self.compile(path, bytes)?;
        let pre = self.prepare(path, &component)?;
        Ok(AgentComponent {
            engine: self.engine.clone(),
            sessions: self.sessions.clone(),
            pre,
            digest: hex::encode(Sha256::digest(bytes)),
            path: path.to_path_buf(),
        })
    }
}

/// A compiled, pre-instantiated agent, reused for every session.
pub struct AgentComponent {
    engine: Engine,
    sessions: SessionBudget,
    pre: AgentPre<SessionState>,
    digest: String,
    path: PathBuf,
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
