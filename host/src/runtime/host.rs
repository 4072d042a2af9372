//! The host side of the WIT imports: `tools` goes through the guard's call
//! path, `session` answers from the session the store was started with.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::mandate::guard::{session, tools};
use super::bindings::{Denial, ToolError, ToolInfo};
use super::host_calls::{CallFuture, HostCalls};
use super::http::GuardedOutgoing;
use super::limiter::SessionLimiter;
use crate::limits::{LimitExceeded, SessionLimits};
use crate::pipeline::{SessionGuard, ToolCallError};

/// Per-session store data.
pub struct SessionState {
    pub(crate) guard: Arc<SessionGuard>,
    /// Where the `call` import hands its calls to the session's task.
    pub(crate) calls: Arc<HostCalls>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// `wasi:http`: every outgoing request goes through the guard (see
    /// the `http` module).
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: GuardedOutgoing,
    pub(crate) limiter: SessionLimiter,
    pub(crate) limits: Arc<SessionLimits>,
    /// Tool calls made so far.
    pub(crate) call_count: u64,
    pub(crate) stderr: MemoryOutputPipe,
}

impl SessionState {
    /// What the guest wrote to stdout and stderr so far.
    pub(crate) fn captured(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl WasiView for SessionState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SessionState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl From<ToolCallError> for ToolError {
    fn from(e: ToolCallError) -> Self {
        match e {
            ToolCallError::Denied { policies, reasons } => {
                ToolError::Denied(Denial { policies, reasons })
            }
            ToolCallError::ApprovalDenied(r) => ToolError::ApprovalDenied(r),
            ToolCallError::ApprovalTimedOut => ToolError::ApprovalTimedOut,
            ToolCallError::SessionExpired => ToolError::SessionExpired,
            ToolCallError::UnknownTool(t) => ToolError::UnknownTool(t),
            // The WIT variant carries the text only; changing it would
            // break agents already built. The field stays with the host.
            ToolCallError::InvalidArguments { problem, .. } => ToolError::InvalidArguments(problem),
            ToolCallError::ToolFailed(m) => ToolError::ToolFailed(m),
            ToolCallError::AuditUnavailable(m) => ToolError::AuditUnavailable(m),
        }
    }
}

impl tools::Host for SessionState {
    /// The call path does not run here, on the guest's fiber stack, but on
    /// the session task's own stack (see the `host_calls` module): Cedar
    /// measures the remaining stack of the thread it runs on and misreads
    /// it on a wasmtime fiber ("recursion limit reached").
    ///
    /// A call over the session's call count or argument size stops the guest
    /// before the call path sees it; a result over the result size stops it
    /// before the guest sees the result.
    async fn call(
        &mut self,
        name: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, ToolError>> {
        self.call_count += 1;
        if self.call_count > self.limits.tool_calls {
            return Err(LimitExceeded::ToolCalls {
                limit: self.limits.tool_calls,
            }
            .into());
        }
        if arguments.len() > self.limits.argument_bytes {
            // The fault message is recorded: the agent's tool name only in
            // its bounded form.
            return Err(LimitExceeded::ArgumentBytes {
                limit: self.limits.argument_bytes,
                actual: arguments.len(),
                tool: crate::pipeline::bounded_tool_name(&name),
            }
            .into());
        }
        let guard = Arc::clone(&self.guard);
        let tool = crate::pipeline::bounded_tool_name(&name);
        let call: CallFuture = Box::pin(async move { guard.call(&name, &arguments).await });
        let result = self.calls.run(call).await;
        let result = result.map_err(ToolError::from);
        if let Ok(text) = &result
            && text.len() > self.limits.result_bytes
        {
            return Err(LimitExceeded::ResultBytes {
                limit: self.limits.result_bytes,
                actual: text.len(),
                tool,
            }
            .into());
        }
        Ok(result)
    }

    async fn list_tools(&mut self) -> Vec<ToolInfo> {
        self.guard
            .tools()
            .callable()
            .map(|t| ToolInfo {
                name: t.spec().name.clone(),
                description: t.spec().description.clone(),
                argument_schema: t.argument_schema().to_string(),
                scope: t.spec().scope.clone(),
            })
            .collect()
    }
}

impl session::Host for SessionState {
    async fn session_id(&mut self) -> String {
        self.guard.session().session_id.clone()
    }

    async fn user_id(&mut self) -> String {
        self.guard.session().user.id.clone()
    }

    async fn agent_id(&mut self) -> String {
        self.guard.session().agent.id.clone()
    }

    async fn scopes(&mut self) -> Vec<String> {
        self.guard.session().scopes.clone()
    }

    async fn expires_at(&mut self) -> String {
        self.guard.session().expires_at.to_string()
    }
}
