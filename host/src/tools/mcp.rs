//! An MCP server over stdio or Streamable HTTP, through the official Rust
//! SDK (rmcp): started (or connected to) once per host, its tools listed at start and pinned by digest, each call
//! a `tools/call` whose result becomes the JSON the agent gets.
//!
//! A server that exits is started again on the next call, after a backoff
//! that doubles from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]; the call that
//! finds it down fails (`tool-failed`) saying so. A restarted server that
//! describes its tools differently from the pinned descriptions is not used:
//! its tools fail until the operator accepts the change.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use super::manifest::{ServerEntry, ServerTransport, minimal_environment};
use crate::pipeline::bounded;
use crate::pipeline::{BoxFuture, DynamicTool, ToolContext, ToolFailure};

/// First wait before a crashed server is started again.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a server has to start and answer `initialize` and `tools/list`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a server's stderr kept to explain why it failed.
const STDERR_LINES: usize = 8;
/// Characters kept of each such line.
const STDERR_LINE_CHARS: usize = 200;

/// Why a server cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MCP server `{server}`: {message}")]
pub struct McpError {
    /// The server's name in the manifest.
    pub server: String,
    /// What went wrong, with the end of its stderr when it wrote any.
    pub message: String,
}

/// A tool as the server describes it: what is pinned.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedTool {
    /// The server's name for it.
    pub name: String,
    /// Its description.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// Its annotations (`readOnlyHint`, `destructiveHint`, ...), as sent.
    pub annotations: Value,
}

impl ServedTool {
    fn of(tool: &rmcp::model::Tool) -> ServedTool {
        ServedTool {
            name: tool.name.to_string(),
            description: tool.description.as_deref().unwrap_or_default().to_string(),
            input_schema: Value::Object((*tool.input_schema).clone()),
            annotations: tool
                .annotations
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok())
                .unwrap_or(Value::Null),
        }
    }

    /// SHA-256 over the canonical JSON of name, description, argument
    /// schema and annotations: what the lock pins.
    pub fn digest(&self) -> String {
        let value = json!({
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "annotations": self.annotations,
        });
        let canonical = serde_json_canonicalizer::to_string(&value).unwrap_or_default();
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
    }

    /// The action groups its annotations put it in. Absent hints take the
    /// MCP defaults, which assume the worst: a tool that does not say it
    /// only reads may destroy, and one that does not say otherwise reaches
    /// the open world.
    pub fn groups(&self) -> Vec<String> {
        let hint = |name: &str| self.annotations.get(name).and_then(Value::as_bool);
        let read_only = hint("readOnlyHint") == Some(true);
        let mut groups = Vec::new();
        if read_only {
            groups.push("mcp:read_only".to_string());
        } else if hint("destructiveHint") != Some(false) {
            groups.push("mcp:destructive".to_string());
        }
        if hint("idempotentHint") == Some(true) {
            groups.push("mcp:idempotent".to_string());
        }
        if hint("openWorldHint") != Some(false) {
            groups.push("mcp:open_world".to_string());
        }
        groups
    }
}

/// The last lines a server wrote to stderr, bounded and escaped.
#[derive(Default)]
struct StderrTail(Mutex<VecDeque<String>>);

impl StderrTail {
    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let escaped: String = line
            .chars()
            .take(STDERR_LINE_CHARS)
            .flat_map(char::escape_default)
            .collect();
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(escaped);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

/// A started server: its session, and the tail of its stderr.
struct Running {
    service: RunningService<RoleClient, ()>,
    stderr: Arc<StderrTail>,
}

enum State {
    Up(Arc<Running>),
    /// Down since `since`; started again once `backoff` has passed.
    Down {
        since: Instant,
        backoff: Duration,
        why: String,
    },
    /// Restarted, but describing its tools differently from the pins.
    Drifted(String),
    /// Stopped by the host.
    Stopped,
}

/// An MCP server the host keeps running.
pub struct McpServer {
    name: String,
    entry: ServerEntry,
    /// The tools as first listed, by the server's name: the pins.
    pinned: BTreeMap<String, ServedTool>,
    state: Mutex<State>,
    /// Held while a restart is under way, so that one call restarts.
    restarting: tokio::sync::Mutex<()>,
}

impl McpServer {
    /// Starts the server and lists its tools. A server that cannot start,
    /// or does not answer within [`START_TIMEOUT`], is an error: the host
    /// does not start without it.
    pub async fn start(
        name: &str,
        entry: &ServerEntry,
    ) -> Result<(Arc<McpServer>, Vec<ServedTool>), McpError> {
        let (running, tools) = launch(name, entry).await?;
        let pinned = tools.iter().map(|t| (t.name.clone(), t.clone())).collect();
        let server = Arc::new(McpServer {
            name: name.to_string(),
            entry: entry.clone(),
            pinned,
            state: Mutex::new(State::Up(Arc::new(running))),
            restarting: tokio::sync::Mutex::new(()),
        });
        Ok((server, tools))
    }

    /// The server's name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The server's session, restarting it when it is down and its backoff
    /// has passed.
    async fn peer(&self) -> Result<(Peer<RoleClient>, Arc<StderrTail>), String> {
        if let Some(up) = self.up()? {
            return Ok(up);
        }
        let _restarting = self.restarting.lock().await;
        // Another call may have restarted it while this one waited.
        if let Some(up) = self.up()? {
            return Ok(up);
        }
        let backoff = match &*self.lock() {
            State::Down { backoff, .. } => *backoff,
            _ => FIRST_BACKOFF,
        };
        match launch(&self.name, &self.entry).await {
            Ok((running, tools)) => {
                let changed: Vec<&str> = tools
                    .iter()
                    .filter(|t| self.pinned.get(&t.name).is_some_and(|p| p != *t))
                    .map(|t| t.name.as_str())
                    .collect();
                if !changed.is_empty() {
                    let why = format!(
                        "restarted, it describes {} differently from the pinned descriptions; its tools are refused until the operator accepts the change (`mandate tools lock --update`)",
                        changed.join(", ")
                    );
                    *self.lock() = State::Drifted(why.clone());
                    return Err(why);
                }
                let running = Arc::new(running);
                let up = (running.service.peer().clone(), Arc::clone(&running.stderr));
                *self.lock() = State::Up(running);
                Ok(up)
            }
            Err(e) => {
                let why = e.message;
                *self.lock() = State::Down {
                    since: Instant::now(),
                    backoff: (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF),
                    why: why.clone(),
                };
                Err(format!("it could not be started again: {why}"))
            }
        }
    }

    /// `Some` while up; `None` when a restart is due; an error while the
    /// backoff runs or after a drift.
    #[allow(clippy::type_complexity)]
    fn up(&self) -> Result<Option<(Peer<RoleClient>, Arc<StderrTail>)>, String> {
        let mut state = self.lock();
        match &*state {
            State::Up(running) if !running.service.is_closed() => Ok(Some((
                running.service.peer().clone(),
                Arc::clone(&running.stderr),
            ))),
            State::Up(running) => {
                let why = self.lost(&running.stderr);
                *state = State::Down {
                    since: Instant::now(),
                    backoff: FIRST_BACKOFF,
                    why,
                };
                Ok(None)
            }
            State::Down {
                since,
                backoff,
                why,
            } => {
                if since.elapsed() >= *backoff {
                    Ok(None)
                } else {
                    Err(format!(
                        "it is down ({why}); it is started again in {} ms",
                        (*backoff - since.elapsed()).as_millis()
                    ))
                }
            }
            State::Drifted(why) => Err(why.clone()),
            State::Stopped => Err("the host has stopped it".to_string()),
        }
    }

    /// Stops the server: its session is closed and its process ended. Later
    /// calls fail. Call it from within the async runtime the server runs on.
    pub async fn shutdown(&self) {
        let state = std::mem::replace(&mut *self.lock(), State::Stopped);
        if let State::Up(running) = state
            && let Ok(running) = Arc::try_unwrap(running)
        {
            let _ = running.service.cancel().await;
        }
    }

    /// Calls the server's tool `tool` with `arguments`.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Value,
        max_result_bytes: usize,
    ) -> Result<Value, ToolFailure> {
        let failed = |why: String| ToolFailure(format!("MCP server `{}`: {why}", self.name));
        let (peer, stderr) = self.peer().await.map_err(failed)?;
        let arguments = match arguments {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        // Dropped unfinished when the call's timeout passes: a stdio server
        // that did not answer may never answer anything again, so it is
        // stopped and the next call starts it afresh.
        let mut in_flight = InFlight {
            server: self,
            done: false,
        };
        let answer = peer.call_tool(params).await;
        in_flight.done = true;
        match answer {
            Ok(result) => result_json(result, max_result_bytes).map_err(failed),
            Err(rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)) => {
                let why = self.lost(&stderr);
                *self.lock() = State::Down {
                    since: Instant::now(),
                    backoff: FIRST_BACKOFF,
                    why: why.clone(),
                };
                Err(failed(format!("{why} during the call")))
            }
            Err(e) => Err(failed(format!(
                "the call failed: {}",
                bounded::cut(&e.to_string())
            ))),
        }
    }
}

/// A call under way; see [`McpServer::call`].
struct InFlight<'a> {
    server: &'a McpServer,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.server.lock();
        if matches!(&*state, State::Up(_)) {
            // Dropping the session ends the process.
            *state = State::Down {
                since: Instant::now(),
                backoff: Duration::ZERO,
                why: "it was stopped after a call timed out".to_string(),
            };
        }
    }
}

impl McpServer {
    /// Why the session with the server ended: a stdio server exited (with
    /// what it last wrote), an HTTP server's connection was lost.
    fn lost(&self, stderr: &StderrTail) -> String {
        if matches!(self.entry.transport, ServerTransport::Http { .. }) {
            return "the connection to the server was lost".to_string();
        }
        let tail = stderr.text();
        if tail.is_empty() {
            "the server exited".to_string()
        } else {
            format!("the server exited (stderr: {tail})")
        }
    }
}

/// Connects to the server (starting its process for stdio), initializes the
/// session and lists its tools.
async fn launch(name: &str, entry: &ServerEntry) -> Result<(Running, Vec<ServedTool>), McpError> {
    let error = |message: String| McpError {
        server: name.to_string(),
        message,
    };
    let stderr = Arc::new(StderrTail::default());
    let started = match &entry.transport {
        ServerTransport::Stdio {
            command: program,
            args,
            env,
            dir,
        } => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).current_dir(dir);
            minimal_environment(&mut command, env);
            let (transport, stderr_pipe) = TokioChildProcess::builder(command)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| error(format!("cannot start `{}`: {e}", program.display())))?;
            if let Some(pipe) = stderr_pipe {
                let tail = Arc::clone(&stderr);
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(pipe).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tail.push(&line);
                    }
                });
            }
            initialize(transport).await
        }
        ServerTransport::Http { url, credential } => {
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            if let Some(credential) = credential {
                config = config.auth_header(credential.read().map_err(error)?);
            }
            initialize(StreamableHttpClientTransport::from_config(config)).await
        }
    };
    let (service, tools) = match started {
        Ok(Ok(started)) => started,
        Ok(Err(why)) => {
            // Give the stderr reader a moment to catch the server's last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let tail = stderr.text();
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(" (stderr: {tail})")
            };
            return Err(error(format!("did not start: {why}{tail}")));
        }
        Err(_) => {
            return Err(error(format!(
                "did not answer `initialize` and `tools/list` within {} s",
                START_TIMEOUT.as_secs()
            )));
        }
    };
    let tools = tools.iter().map(ServedTool::of).collect();
    Ok((Running { service, stderr }, tools))
}

/// The MCP handshake and the tool list over `transport`, within
/// [`START_TIMEOUT`].
async fn initialize<T, E, A>(
    transport: T,
) -> Result<
    Result<(RunningService<RoleClient, ()>, Vec<rmcp::model::Tool>), String>,
    tokio::time::error::Elapsed,
>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::time::timeout(START_TIMEOUT, async {
        // rmcp's errors can quote the server; they are bounded here.
        let service = ().serve(transport).await.map_err(|e| bounded::cut(&e.to_string()))?;
        let tools = service
            .list_all_tools()
            .await
            .map_err(|e| bounded::cut(&e.to_string()))?;
        Ok((service, tools))
    })
    .await
}

/// The agent's JSON for a `tools/call` result: its content blocks (text,
/// images, resources, as MCP writes them) and its structured content, or
/// the failure an error result says.
fn result_json(result: CallToolResult, max_bytes: usize) -> Result<Value, String> {
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(ContentBlock::as_text)
            .map(|text| text.text.clone())
            .collect();
        let (text, _) = bounded::text(&text.join(" "));
        return Err(format!("the tool reported an error: {text}"));
    }
    let mut out = Map::new();
    out.insert(
        "content".into(),
        serde_json::to_value(&result.content).map_err(|e| e.to_string())?,
    );
    if let Some(structured) = result.structured_content {
        out.insert("structured_content".into(), structured);
    }
    let value = Value::Object(out);
    let bytes = bounded::json_len(&value);
    if bytes > max_bytes {
        return Err(format!(
            "its result is {bytes} bytes, over this tool's limit of {max_bytes} (`max_result_bytes` in the manifest)"
        ));
    }
    Ok(value)
}

/// One of a server's tools, as a guarded tool.
pub struct McpTool {
    /// The server.
    pub server: Arc<McpServer>,
    /// The server's name for the tool.
    pub tool: String,
    /// Largest result.
    pub max_result_bytes: usize,
}

impl DynamicTool for McpTool {
    fn run(&self, _ctx: ToolContext, args: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
        Box::pin(self.server.call(&self.tool, args, self.max_result_bytes))
    }
}
