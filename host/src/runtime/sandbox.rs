//! A session's sandbox: a fresh store with the agent instantiated in it,
//! from the agent's pre-instantiated component and the runtime's instance
//! pool.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::Agent;
use super::host::SessionState;
use super::host_calls::{HostCalls, drive};
use super::http::GuardedOutgoing;
use super::limiter::{self, SessionLimiter};
use super::{AgentComponent, RunOutcome, RunReport, pool};
use crate::limits::{CAPTURED_OUTPUT_BYTES, LimitExceeded, SessionLimits};
use crate::pipeline::SessionGuard;

/// Why a session got no sandbox. Each message is what the session's
/// `guest_fault` record says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The runtime already runs `concurrent_sessions` sessions.
    #[error(transparent)]
    Busy(LimitExceeded),
    /// The instance pool had no free slot. The pool is sized so that every
    /// session the runtime admits fits; this is a broken host invariant,
    /// reported rather than panicked on.
    #[error(
        "host limit reached: the sandbox pool has no free slot ({detail}); the session was not run; the pool holds `concurrent_sessions` sessions at their `instances`, `memories` and `tables` limits: raise them or run fewer sessions at once"
    )]
    PoolExhausted {
        /// What wasmtime's pool ran out of.
        detail: String,
    },
    /// The guest trapped or broke a limit while being instantiated.
    #[error("{message}")]
    Faulted {
        /// What stopped it, naming the limit when a limit did.
        message: String,
        /// What the guest wrote before (captured, bounded).
        output: String,
    },
}

/// A session's sandbox, ready to run the agent once.
///
/// [`AgentComponent::run`] is [`AgentComponent::sandbox`] followed by
/// [`Sandbox::run`], between the guard's session-start and session-end
/// records; the two are public so that the sandbox's own cost can be
/// measured apart from the guard's.
pub struct Sandbox {
    // Dropped before the permit: the pool's slots are free by the time the
    // session semaphore lets the next session in.
    store: Store<SessionState>,
    agent: Agent,
    calls: Arc<HostCalls>,
    limits: Arc<SessionLimits>,
    _running: OwnedSemaphorePermit,
}

impl AgentComponent {
    /// Builds a session's sandbox: takes one of the runtime's
    /// `concurrent_sessions` places (refused, not queued, when none is
    /// free), makes a fresh store holding `session` with the session's
    /// limits, and instantiates the agent in it from the pre-instantiated
    /// component.
    ///
    /// Records nothing: the caller has started `session` in the guard and
    /// records how the sandbox ended, as [`AgentComponent::run`] does.
    pub async fn sandbox(&self, session: Arc<SessionGuard>) -> Result<Sandbox, SandboxError> {
        let limits = &self.sessions.limits;
        // Refused, not queued: a flood of sessions must not pile up waiting.
        let Ok(running) = Arc::clone(&self.sessions.running).try_acquire_owned() else {
            return Err(SandboxError::Busy(LimitExceeded::ConcurrentSessions {
                limit: limits.concurrent_sessions,
            }));
        };
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        // Grants nothing but the captured output: no preopened directory
        // (the filesystem interfaces are linked but there is nothing to
        // open), no environment, and no network. TCP, UDP and name lookups
        // are off and no address passes the check, as wasmtime-wasi's
        // defaults are too; they are spelled out so that a change of those
        // defaults cannot open the network.
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let calls = Arc::new(HostCalls::default());
        let http_hooks = GuardedOutgoing {
            guard: Arc::clone(&session),
        };
        let state = SessionState {
            guard: session,
            calls: Arc::clone(&calls),
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks,
            limiter: SessionLimiter::new(Arc::clone(limits)),
            limits: Arc::clone(limits),
            call_count: 0,
            stderr: output,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let fault = |store: &Store<SessionState>, message: String| SandboxError::Faulted {
            message,
            output: store.data().captured(),
        };
        if let Some(fuel) = limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| fault(&store, format!("cannot set the fuel budget: {e}")))?;
        }
        // Each tick the guest spends running counts against its CPU time
        // and lets other sessions run; ticks spent waiting in a tool call
        // do not count, because the callback runs only in guest code.
        if let Some(budget) = limiter::cpu_ticks(limits) {
            let mut used = 0u64;
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                used += 1;
                if used > budget {
                    Ok(UpdateDeadline::Interrupt)
                } else {
                    Ok(UpdateDeadline::Yield(1))
                }
            });
        }
        match drive(&calls, self.pre.instantiate_async(&mut store)).await {
            Ok(agent) => Ok(Sandbox {
                store,
                agent,
                calls,
                limits: Arc::clone(limits),
                _running: running,
            }),
            Err(e) => match pool::exhausted(&e) {
                Some(detail) => Err(SandboxError::PoolExhausted { detail }),
                None => {
                    let message = describe(&e, limits);
                    Err(fault(&store, message))
                }
            },
        }
    }
}

impl Sandbox {
    /// Runs the agent's `run(task)` and frees the sandbox. Every tool call
    /// the agent makes goes through the session's guard.
    pub async fn run(mut self, task: &str) -> RunReport {
        let result = drive(&self.calls, self.agent.call_run(&mut self.store, task)).await;
        let outcome = match result {
            Ok(result) => RunOutcome::Finished(result),
            Err(trap) => RunOutcome::Faulted(describe(&trap, &self.limits)),
        };
        RunReport {
            outcome,
            output: self.store.data().captured(),
        }
    }
}

/// A guest's fault as its record says it: the limit behind it if a limit
/// was, else wasmtime's account.
fn describe(trap: &wasmtime::Error, limits: &SessionLimits) -> String {
    match limiter::classify(trap, limits) {
        Some(limit) => limit.to_string(),
        None => format!("{trap:#}"),
    }
}
