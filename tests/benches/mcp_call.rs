//! What the guard adds to one MCP tool call over stdio, side by side in one
//! run against the project's own MCP server (`tests/mcp/misbehaving_server.py`,
//! its `echo` tool), log on a tmpfs:
//!
//! - **direct**: `McpServer::call`, the same client and the same server
//!   without the guard;
//! - **guarded**: `SessionGuard::call` of the server's tool: decision,
//!   durable decision record, the MCP call, durable outcome record;
//! - **in-process**: `SessionGuard::call` of a tool with the same schema
//!   that answers at once: the decision and the durable records alone.
//!
//! Mandate's own cost for an MCP call beyond the decision and the durable
//! record = guarded - direct - in-process. The issue's goal: under 100 µs
//! at p50.
//!
//! Run: `cargo bench -p mandate-tests --bench mcp_call` (the server needs
//! only python3). It prints p50 and p99 of single calls from alternating
//! rounds.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mandate::pipeline::{
    BoxFuture, DynamicSpec, DynamicTool, Guard, ResourceBinding, Session, ToolContext, ToolFailure,
    ToolSpec,
};
use mandate::policy::Policies;
use mandate::tools::{Manifest, ToolSet};
use serde_json::{Value, json};

/// Alternating rounds.
const ROUNDS: usize = 3000;

/// Answers at once, as the server's `echo` would.
struct Echo;

impl DynamicTool for Echo {
    fn run(&self, _ctx: ToolContext, args: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
        Box::pin(async move { Ok(json!({"content": [{"type": "text", "text": args["text"]}]})) })
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn quantile(xs: &[Duration], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort();
    xs[((xs.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let dir = common::bench_dir("mcp-bench-");
    let manifest_path = dir.path().join("mandate.toml");
    std::fs::write(
        &manifest_path,
        format!(
            "[servers.mis]\ncommand = \"python3\"\nargs = [{:?}]\nscope = \"misc:read\"\nprefix = \"mis.\"\ninclude = [\"echo\"]\n",
            repo().join("tests/mcp/misbehaving_server.py").display().to_string()
        ),
    )
    .expect("manifest");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let manifest = Manifest::load(&manifest_path).expect("manifest");
    let set = tokio
        .block_on(ToolSet::start_unpinned(&manifest))
        .expect("server");
    let mut registry = set.registry.clone();
    registry
        .register_dynamic(
            DynamicSpec {
                spec: ToolSpec {
                    name: "local.echo".into(),
                    description: "Echoes a text, in process.".into(),
                    scope: "misc:read".into(),
                    resource: ResourceBinding::Tool,
                    sensitive: Vec::new(),
                },
                input_schema: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
                groups: Vec::new(),
                timeout: None,
            },
            Echo,
        )
        .expect("in-process tool");

    let policy_dir = dir.path().join("policies");
    std::fs::create_dir_all(&policy_dir).expect("policies");
    std::fs::write(
        policy_dir.join("schema.cedarschema"),
        registry.cedar_schema().expect("schema"),
    )
    .expect("schema");
    // The session's user and agent.
    std::fs::write(
        policy_dir.join("entities.json"),
        r#"[{"uid": {"type": "User", "id": "alice"}, "attrs": {"email": "alice@example.com"}, "parents": []},
            {"uid": {"type": "Agent", "id": "document-summarizer"}, "attrs": {"name": "Document Summarizer", "version": "0.1.0"}, "parents": []}]"#,
    )
    .expect("entities");
    std::fs::write(
        policy_dir.join("all.cedar"),
        "permit(principal, action in Action::\"misc:read\", resource);\n",
    )
    .expect("policy");
    let policies = Policies::load_dir(&policy_dir).expect("policies");
    let guard = Guard::builder(policies, common::bench_log(dir.path()))
        .tools(registry)
        .build()
        .expect("guard");
    let session =
        Session::from_file(&repo().join("policies/session.json")).expect("example session");
    let session = tokio
        .block_on(guard.start_session(session, None))
        .expect("session");
    let server = &set.servers[0];
    let arguments = r#"{"text":"hello"}"#;

    let (mut direct, mut guarded, mut local) = (Vec::new(), Vec::new(), Vec::new());
    let mut rounds = 0;
    // The session's call limit is the guard's default; a new session every
    // few hundred calls keeps under it.
    let mut session = session;
    for round in 0..ROUNDS + 100 {
        if round % 300 == 299 {
            let fresh = Session::from_file(&repo().join("policies/session.json"))
                .map(|mut s| {
                    s.session_id = format!("sess_mcp_bench_{round}");
                    s
                })
                .expect("session");
            session = tokio
                .block_on(guard.start_session(fresh, None))
                .expect("session");
        }
        let started = Instant::now();
        tokio
            .block_on(server.call("echo", json!({"text": "hello"}), 1 << 20))
            .expect("direct call");
        let d = started.elapsed();
        let started = Instant::now();
        tokio
            .block_on(session.call("mis.echo", arguments))
            .expect("guarded call");
        let g = started.elapsed();
        let started = Instant::now();
        tokio
            .block_on(session.call("local.echo", arguments))
            .expect("in-process call");
        let l = started.elapsed();
        // The first rounds warm the server, the log and the caches.
        if round >= 100 {
            direct.push(d);
            guarded.push(g);
            local.push(l);
            rounds += 1;
        }
    }
    tokio.block_on(set.shutdown());
    let (d50, g50, l50) = (
        quantile(&direct, 0.5),
        quantile(&guarded, 0.5),
        quantile(&local, 0.5),
    );
    println!(
        "\nmcp_call: {rounds} alternating rounds, single calls\n  \
         direct (McpServer::call)           p50 {d50:>8.1} µs p99 {:>8.1} µs\n  \
         guarded (SessionGuard::call, MCP)  p50 {g50:>8.1} µs p99 {:>8.1} µs\n  \
         in-process tool through the guard  p50 {l50:>8.1} µs p99 {:>8.1} µs\n  \
         Mandate's cost beyond the decision and the durable records: {:.1} µs at p50",
        quantile(&direct, 0.99),
        quantile(&guarded, 0.99),
        quantile(&local, 0.99),
        g50 - d50 - l50,
    );
}
