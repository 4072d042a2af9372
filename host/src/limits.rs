//! Every bound the host puts on a session and on itself, in one place.
//!
//! The agent is untrusted code: it may be buggy, or steered by a prompt
//! injection into trying everything it can. Whatever it does, the host's
//! memory, threads, queues and waits stay bounded, and breaking a session
//! limit stops that one guest with an error naming the limit and its value,
//! leaving the host and every other session running.
//!
//! Per session ([`SessionLimits`], configurable; the defaults are safe):
//!
//! | limit | default | exceeded |
//! |---|---|---|
//! | linear memory | 256 MiB | guest stopped |
//! | table elements | 20,000 | guest stopped |
//! | core instances, memories, tables | 32 / 10 / 10 | component refused at load |
//! | wasm stack | 1 MiB | guest stopped |
//! | CPU time running guest code | 30 s (epoch deadline) | guest stopped |
//! | fuel (optional, deterministic) | off | guest stopped |
//! | tool calls | 1,000 | guest stopped |
//! | arguments of one call | 1 MiB | guest stopped |
//! | result of one call | 16 MiB | guest stopped |
//!
//! Per outgoing HTTP request and session ([`HttpLimits`], set per host in
//! the manifest's `[egress]` table):
//!
//! | limit | default | exceeded |
//! |---|---|---|
//! | request body | 1 MiB | refused (413), recorded |
//! | response body | 16 MiB | failed (502), recorded |
//! | time to the response's first byte | 30 s | failed (504), recorded |
//! | whole exchange | 120 s | failed (504), recorded |
//! | requests in flight per session | 8 | refused (429), recorded |
//! | requests per session | 10,000 | refused (429), recorded |
//! | path of a request | [`HTTP_PATH_BYTES`] | refused (414), recorded |
//! | header or query names of a request | [`HTTP_NAMES`] each | refused (431), recorded |
//!
//! Per host:
//!
//! | bound | value | where |
//! |---|---|---|
//! | concurrent sessions | 64 ([`SessionLimits::concurrent_sessions`]) | a session over it is refused and recorded as a fault |
//! | epoch tick | [`EPOCH_TICK`] | one ticker thread per runtime |
//! | guest stdout + stderr kept | [`CAPTURED_OUTPUT_BYTES`] | the rest is dropped |
//! | reviewer command output read | [`REVIEWER_OUTPUT_BYTES`] | the rest is ignored |
//! | tool name an agent asks for | [`TOOL_NAME_BYTES`] of `[A-Za-z0-9_.-]` | recorded cut and escaped, with its size and SHA-256 |
//! | agent text in a record (error, fault, message) | [`RECORDED_TEXT_BYTES`] | recorded cut, with its size and SHA-256 |
//! | arguments as a record writes them | [`RECORDED_ARGUMENTS_BYTES`] | the call is refused, recorded with their size and SHA-256 |
//! | reviewer wait | the approval timeout (default 300 s) | then the call is denied |
//! | audit writer queue | `AuditConfig::queue_capacity` (4,096 records) | appenders wait for room |
//! | audit batch | `AuditConfig::max_batch` (512 records) | one write and one sync each |
//! | audit writer gather wait | 50 µs per batch | then the batch commits |
//! | reviewer tasks | one per call in flight | calls per session are sequential; the call path itself runs on the session's task |
//! | instance pool | `concurrent_sessions` sessions at their `instances`, `memories`, `tables` limits | reserved once per runtime |
//! | compile cache | wasmtime's cache in a private directory (`mandate run --compile-cache`) | entries past its size and count limits are removed, oldest first |
//!
//! The guest's arguments are copied out of its memory before they can be
//! measured, so that copy is bounded by the guest's memory limit, and then
//! refused over the argument limit before anything parses them.

use std::time::Duration;

/// How often the runtime advances the engine's epoch: the granularity of the
/// CPU limit and of the yields that let other sessions run.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of a guest's stdout and stderr kept per session.
pub const CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// Bytes of an external reviewer command's stdout (and stderr) read.
pub const REVIEWER_OUTPUT_BYTES: u64 = 64 * 1024;

/// Longest tool name, in bytes; a registered name is 1 to this many ASCII
/// letters, digits, `_`, `-` or `.`. Any other name an agent asks for is
/// unknown and recorded cut and escaped, with its size and SHA-256.
pub const TOOL_NAME_BYTES: usize = 128;

/// Most bytes of one agent-controlled text (the agent's error, a tool's
/// error, a guest fault, a refusal message) kept in a record or returned;
/// a longer text is cut and its whole size and SHA-256 are recorded.
pub const RECORDED_TEXT_BYTES: usize = 4 * 1024;

/// Most bytes a call's arguments may take as the decision record writes
/// them (escaped, with sensitive values as commitments). Far below the
/// log's record limit (`audit::MAX_RECORD_BYTES`, 16 MiB), so that a
/// decision record always fits; a call over it is refused and recorded
/// with the arguments' size and SHA-256 instead.
pub const RECORDED_ARGUMENTS_BYTES: usize = 8 * 1024 * 1024;

/// Longest path (without the query) of an outgoing HTTP request, in bytes.
pub const HTTP_PATH_BYTES: usize = 8 * 1024;

/// Most header names, and most query parameter names, of one request.
pub const HTTP_NAMES: usize = 128;

/// Bounds on the agent's outgoing HTTP requests. A request over one is
/// refused or failed with an HTTP status the agent can read, and recorded;
/// the guest keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, in bytes.
    pub request_bytes: usize,
    /// Largest response body, in bytes.
    pub response_bytes: usize,
    /// Longest wait for the response to start, connecting included.
    pub first_byte: Duration,
    /// Longest whole exchange, from sending to the response's last byte.
    pub total: Duration,
    /// Most requests in flight at once in one session.
    pub concurrent: usize,
    /// Most requests in one session.
    pub requests: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_bytes: 1024 * 1024,
            response_bytes: 16 * 1024 * 1024,
            first_byte: Duration::from_secs(30),
            total: Duration::from_secs(120),
            concurrent: 8,
            requests: 10_000,
        }
    }
}

/// What one session may use. Exceeding any of these stops the guest with an
/// error naming the limit and its value; the session's records end with a
/// `guest_fault` and a `session_end` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Most elements in one table.
    pub table_elements: usize,
    /// Most core module instances of one session's component. A component
    /// that needs more is refused at load, naming this limit. CPython built
    /// by componentize-py takes 14.
    pub instances: usize,
    /// Most linear memories the component defines.
    pub memories: usize,
    /// Most tables the component defines.
    pub tables: usize,
    /// Largest wasm stack, in bytes (deep recursion traps past it).
    pub stack_bytes: usize,
    /// Time spent running guest code, counted in epoch ticks while the guest
    /// runs; time waiting in a tool call (say, for a reviewer) does not count.
    /// `None` turns epoch interruption off: no CPU limit, and a guest that
    /// never calls the host is never preempted (rely on `fuel` then).
    pub cpu_time: Option<Duration>,
    /// A deterministic budget of wasm fuel, instead of or besides the CPU
    /// time: the same guest and input always stop at the same instruction.
    /// `None` (the default) turns fuel metering off, which is faster.
    pub fuel: Option<u64>,
    /// Most tool calls in one session.
    pub tool_calls: u64,
    /// Largest arguments of one call, in bytes of JSON text.
    pub argument_bytes: usize,
    /// Largest result of one call, in bytes of JSON text.
    pub result_bytes: usize,
    /// Most sessions running at once in one runtime.
    pub concurrent_sessions: usize,
}

impl SessionLimits {
    /// These limits with the pool's per-session `instances`, `memories` and
    /// `tables` lowered to what `needs` takes (never raised), so that a
    /// runtime for one agent reserves no slots it will not use.
    pub fn fitted_to(&self, needs: crate::runtime::ComponentNeeds) -> SessionLimits {
        let fit =
            |limit: usize, need: u32| limit.min(usize::try_from(need).unwrap_or(limit)).max(1);
        SessionLimits {
            instances: fit(self.instances, needs.core_instances),
            memories: fit(self.memories, needs.memories),
            tables: fit(self.tables, needs.tables),
            ..self.clone()
        }
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            memory_bytes: 256 * 1024 * 1024,
            table_elements: 20_000,
            instances: 32,
            memories: 10,
            tables: 10,
            stack_bytes: 1024 * 1024,
            cpu_time: Some(Duration::from_secs(30)),
            fuel: None,
            tool_calls: 1_000,
            argument_bytes: 1024 * 1024,
            result_bytes: 16 * 1024 * 1024,
            concurrent_sessions: 64,
        }
    }
}

/// A session limit that was broken, as the guest fault records it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// Memory growth past the limit.
    #[error(
        "session limit exceeded: linear memory of {limit} bytes; the guest asked for {requested}"
    )]
    Memory {
        /// The limit.
        limit: usize,
        /// What the guest asked to grow to.
        requested: usize,
    },
    /// Table growth past the limit.
    #[error("session limit exceeded: table of {limit} elements; the guest asked for {requested}")]
    TableElements {
        /// The limit.
        limit: usize,
        /// What the guest asked to grow to.
        requested: usize,
    },
    /// Recursion past the stack.
    #[error("session limit exceeded: wasm stack of {limit} bytes (unbounded recursion?)")]
    Stack {
        /// The limit.
        limit: usize,
    },
    /// Too long running guest code.
    #[error("session limit exceeded: cpu time of {} ms running guest code", .limit.as_millis())]
    CpuTime {
        /// The limit.
        limit: Duration,
    },
    /// Fuel ran out.
    #[error("session limit exceeded: fuel budget of {limit}")]
    Fuel {
        /// The limit.
        limit: u64,
    },
    /// Too many tool calls.
    #[error("session limit exceeded: {limit} tool calls per session")]
    ToolCalls {
        /// The limit.
        limit: u64,
    },
    /// Arguments too large.
    #[error(
        "session limit exceeded: arguments of {limit} bytes per call; the guest passed {actual} bytes to `{tool}`"
    )]
    ArgumentBytes {
        /// The limit.
        limit: usize,
        /// Their size.
        actual: usize,
        /// The tool called.
        tool: String,
    },
    /// Result too large.
    #[error(
        "session limit exceeded: results of {limit} bytes per call; `{tool}` returned {actual} bytes"
    )]
    ResultBytes {
        /// The limit.
        limit: usize,
        /// Its size.
        actual: usize,
        /// The tool called.
        tool: String,
    },
    /// Too many sessions at once.
    #[error("host limit reached: {limit} concurrent sessions; the session was not run")]
    ConcurrentSessions {
        /// The limit.
        limit: usize,
    },
}
