//! Wasmtime: one engine and one linker for the process, one pre-instantiated
//! component per agent, a fresh store per session.
//!
//! The guest is linked against the `agent` world and the WASI interfaces the
//! Rust standard library imports, with a WASI context that grants nothing: no
//! preopened directories, no environment, no network, stdin empty, stdout and
//! stderr captured in memory.

mod bindings;
mod host;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::guard::{Guard, GuardError, Session};
use bindings::{Agent, AgentPre};
pub use host::SessionState;

/// Largest linear memory a guest may grow to.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 * 1024 * 1024;
/// Bytes of guest stdout/stderr kept per session.
const CAPTURED_OUTPUT: usize = 64 * 1024;

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
    /// The session could not start (bad session or audit log unavailable).
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// The engine and linker, built once per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<SessionState>,
}

impl Runtime {
    /// Sets up the engine and links the host imports.
    pub fn new() -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Agent::add_to_linker::<_, HasSelf<SessionState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Ok(Runtime { engine, linker })
    }

    /// Compiles the component at `path` and checks it is an agent: it must
    /// export `run` and import nothing the host does not provide.
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
        let not_agent = |reason: String| RuntimeError::NotAnAgent {
            path: path.to_path_buf(),
            reason,
        };
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                return Err(not_agent(
                    "it is a core wasm module, not a component; build the agent for the wasm32-wasip2 target".into(),
                ));
            }
            _ => {
                return Err(not_agent(
                    "it is not a webassembly file (no `\\0asm` header)".into(),
                ));
            }
        }
        let component = Component::from_binary(&self.engine, bytes)
            .map_err(|e| not_agent(format!("it does not compile: {e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| not_agent(format!("{e:#}; an agent imports only mandate:guard/tools, mandate:guard/session and wasi cli/io/clocks/random")))?;
        let pre = AgentPre::new(pre).map_err(|e| {
            not_agent(format!(
                "{e:#}; an agent exports `run: func(task: string) -> result<string, string>`"
            ))
        })?;
        Ok(AgentComponent {
            engine: self.engine.clone(),
            pre,
            digest: hex::encode(Sha256::digest(bytes)),
            path: path.to_path_buf(),
        })
    }
}

/// A compiled, pre-instantiated agent, reused for every session.
pub struct AgentComponent {
    engine: Engine,
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

    /// Runs one session: starts it in the guard (session-start record), runs
    /// the agent's `run(task)` in a fresh store, and records how it ended.
    pub async fn run(
        &self,
        guard: &Guard,
        session: Session,
        task: &str,
    ) -> Result<RunReport, RuntimeError> {
        let session_guard = guard
            .start_session(session, Some(self.digest.clone()))
            .await?;
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        let state = SessionState {
            guard: Arc::new(session_guard),
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(DEFAULT_MEMORY_LIMIT)
                .build(),
            stderr: output.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let result = match self.pre.instantiate_async(&mut store).await {
            Ok(agent) => agent.call_run(&mut store, task).await,
            Err(e) => Err(e),
        };
        let captured = String::from_utf8_lossy(&store.data().stderr.contents()).into_owned();
        let session = &store.data().guard;
        let outcome = match result {
            Ok(result) => {
                session.end(&result).await?;
                RunOutcome::Finished(result)
            }
            Err(trap) => {
                let message = format!("{trap:#}");
                session.fault(&message).await?;
                RunOutcome::Faulted(message)
            }
        };
        Ok(RunReport {
            outcome,
            output: captured,
        })
    }
}
