//! The example agent in Rust, Python (componentize-py) and JavaScript
//! (componentize-js), side by side in one run, under `Runtime::new()`
//! (default limits, the pooling allocator, copy-on-write memory images):
//!
//! - **new session**: `AgentComponent::sandbox` (a session place, a fresh
//!   `Store`, instantiation from the pre-instantiated component: CPython's
//!   and StarlingMonkey's initialized heaps are mapped copy-on-write, not
//!   rebuilt) and the store dropped again. The issue's goal: under 5 ms at
//!   p50 for Python and JavaScript;
//! - **whole task**: `Sandbox::run` of the example task (read the document,
//!   write its summary, email it; a reviewer approves the email at once) in
//!   a started session: what a user waits for, the agent's own work and its
//!   first touch of its copy-on-write heap included;
//! - **per call**: the scripted agent of each language (`guest/scripted-agent`,
//!   `guest/scripted-agent-py`, `guest/scripted-agent-js`) making the same
//!   allowed `read_document` call `CALLS + 1` times in one session, against
//!   the same agent making it once: the difference divided by `CALLS` is one
//!   call as an agent in that language pays for it in a warm sandbox (the
//!   guard's decision and durable records, the WIT round trip, the language's
//!   bindings and its JSON in and out). The same calls made directly on
//!   `SessionGuard::call` give the guard's share; the rest is the language's.
//!   The issue's goal: Python's and JavaScript's per call within 2x the Rust
//!   agent's.
//!
//! The components come from `scripts/build-agents` (`target/polyglot/`, or
//! `MANDATE_PYTHON_AGENT`, `MANDATE_JAVASCRIPT_AGENT`,
//! `MANDATE_PYTHON_SCRIPTED_AGENT`, `MANDATE_JAVASCRIPT_SCRIPTED_AGENT`);
//! compiling them takes minutes unoptimized, seconds here (release), and is
//! cached in `target/polyglot/compiled-bench/`. The log and the workspace
//! are on a tmpfs (`/dev/shm` unless `ROUNDTRIP_BENCH_DIR=<dir>`).
//!
//! Run: `cargo bench -p mandate-tests --bench polyglot`. It prints p50 and
//! p99 of single iterations from alternating rounds, and the ratios.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mandate::pipeline::{
    BoxFuture, GrantScope, Guard, PendingApproval, ReviewDecision, ReviewError, Reviewer, Session,
    SessionGuard, Verdict,
};
use mandate::policy::Policies;
use mandate::runtime::{AgentComponent, RunOutcome, Runtime};
use mandate::tools::{Workspace, example_registry};

/// Alternating rounds of the summary.
const ROUNDS: usize = 300;

/// Calls in the longer of the two per-call runs, beyond the one both make.
const CALLS: usize = 50;

/// The call every language's scripted agent makes for the per-call figure.
const READ: &str = r#"{"tool":"read_document","arguments":{"document_id":"doc_88pk3r"}}"#;

const TASK: &str = "summarize doc_88pk3r and share it with bob@example.com";

/// Approves every held call as carol, at once.
struct Carol;

impl Reviewer for Carol {
    fn name(&self) -> &str {
        "carol-bench"
    }

    fn review<'a>(
        &'a self,
        _pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(async {
            Ok(ReviewDecision {
                decision: Verdict::Approve,
                reviewer: "carol".into(),
                reason: None,
                scope: GrantScope::Once,
            })
        })
    }
}

struct Agent {
    name: &'static str,
    component: AgentComponent,
    /// The same language's scripted agent.
    scripted: AgentComponent,
}

struct Bench {
    _dir: tempfile::TempDir,
    guard: Guard,
    session: Session,
    agents: Vec<Agent>,
    tokio: tokio::runtime::Runtime,
    sessions: std::cell::Cell<u64>,
    /// The three calls the agents make, as they make them.
    calls: Vec<(String, String)>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn polyglot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), |dir| repo().join(dir));
    target.join("polyglot")
}

fn component_path(variable: &str, file: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| polyglot_dir().join(file), PathBuf::from)
}

fn setup() -> Bench {
    let dir = common::bench_dir("polyglot-bench-");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).expect("workspace");
    std::fs::copy(
        repo().join("examples/workspace/documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .expect("example document");
    let policies = Policies::load_dir(&repo().join("policies")).expect("example policies");
    let audit = common::bench_log(dir.path());
    let guard = Guard::builder(policies, audit)
        .tools(example_registry(&Workspace::new(&workspace)).expect("tools"))
        .reviewer(Carol)
        .build()
        .expect("guard");
    let session =
        Session::from_file(&repo().join("policies/session.json")).expect("example session");
    let runtime = Runtime::builder()
        .compile_cache(polyglot_dir().join("compiled-bench"))
        .build()
        .expect("runtime");
    let load = |path: PathBuf| {
        runtime.load_agent(&path).unwrap_or_else(|e| {
            panic!("{e}; build the Python and JavaScript agents with scripts/build-agents")
        })
    };
    let agents = vec![
        Agent {
            name: "rust",
            component: load(PathBuf::from(mandate_tests::DOCUMENT_SUMMARIZER)),
            scripted: load(PathBuf::from(mandate_tests::SCRIPTED_AGENT)),
        },
        Agent {
            name: "python",
            component: load(component_path(
                "MANDATE_PYTHON_AGENT",
                "document_summarizer_py.wasm",
            )),
            scripted: load(component_path(
                "MANDATE_PYTHON_SCRIPTED_AGENT",
                "scripted_agent_py.wasm",
            )),
        },
        Agent {
            name: "javascript",
            component: load(component_path(
                "MANDATE_JAVASCRIPT_AGENT",
                "document_summarizer_js.wasm",
            )),
            scripted: load(component_path(
                "MANDATE_JAVASCRIPT_SCRIPTED_AGENT",
                "scripted_agent_js.wasm",
            )),
        },
    ];
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let mut bench = Bench {
        _dir: dir,
        guard,
        session,
        agents,
        tokio,
        sessions: std::cell::Cell::new(0),
        calls: Vec::new(),
    };
    bench.calls = bench.recorded_calls();
    bench
}

impl Bench {
    fn session(&self) -> Session {
        let n = self.sessions.get() + 1;
        self.sessions.set(n);
        let mut session = self.session.clone();
        session.session_id = format!("sess_bench_{n}");
        session
    }

    fn started(&self, agent: &Agent) -> Arc<SessionGuard> {
        let guard = self.tokio.block_on(
            self.guard
                .start_session(self.session(), Some(agent.component.digest().to_string())),
        );
        Arc::new(guard.expect("session"))
    }

    fn end(&self, guard: &SessionGuard) {
        self.tokio
            .block_on(guard.end(&Ok(String::new())))
            .expect("end");
    }

    /// The calls the Rust agent makes for the task, read back from the
    /// records of one run: the arguments every agent sends.
    fn recorded_calls(&self) -> Vec<(String, String)> {
        let mut calls = Vec::new();
        let guard = self.started(&self.agents[0]);
        let report = self.tokio.block_on(async {
            let sandbox = self.agents[0]
                .component
                .sandbox(Arc::clone(&guard))
                .await
                .expect("sandbox");
            sandbox.run(TASK).await
        });
        self.end(&guard);
        let RunOutcome::Finished(Ok(text)) = &report.outcome else {
            panic!("{:?}", report.outcome);
        };
        let summary = text.split("\n\n").nth(1).expect("summary").to_string();
        calls.push((
            "read_document".into(),
            r#"{"document_id":"doc_88pk3r"}"#.into(),
        ));
        calls.push((
            "write_summary".into(),
            serde_json::json!({"document_id": "doc_88pk3r", "summary": summary}).to_string(),
        ));
        calls.push((
            "send_email".into(),
            serde_json::json!({
                "to": "bob@example.com",
                "subject": "Summary of Q3 planning notes",
                "body": summary,
            })
            .to_string(),
        ));
        calls
    }

    /// A new session's sandbox, created and dropped.
    fn new_session(&self, agent: &Agent) -> Duration {
        let guard = self.started(agent);
        let started = Instant::now();
        let sandbox = self
            .tokio
            .block_on(agent.component.sandbox(Arc::clone(&guard)))
            .expect("sandbox");
        drop(sandbox);
        let elapsed = started.elapsed();
        self.end(&guard);
        elapsed
    }

    /// The whole task in a started session: sandbox, `run`, three calls.
    fn task(&self, agent: &Agent) -> Duration {
        let guard = self.started(agent);
        let started = Instant::now();
        let report = self.tokio.block_on(async {
            let sandbox = agent
                .component
                .sandbox(Arc::clone(&guard))
                .await
                .expect("sandbox");
            sandbox.run(TASK).await
        });
        let elapsed = started.elapsed();
        match &report.outcome {
            RunOutcome::Finished(Ok(text)) if text.contains("done: 3 of 3 tool calls allowed") => {}
            other => panic!("{}: {other:?}", agent.name),
        }
        self.end(&guard);
        elapsed
    }

    /// `calls` allowed `read_document` calls by the agent's scripted agent,
    /// in a started session: its sandbox, its run and its calls.
    fn scripted(&self, agent: &Agent, calls: usize) -> Duration {
        let guard = self.started(agent);
        let task = format!(r#"{{"calls":[{READ}],"repeat":{calls},"tally":true}}"#);
        let started = Instant::now();
        let report = self.tokio.block_on(async {
            let sandbox = agent
                .scripted
                .sandbox(Arc::clone(&guard))
                .await
                .expect("sandbox");
            sandbox.run(&task).await
        });
        let elapsed = started.elapsed();
        let tally = match &report.outcome {
            RunOutcome::Finished(Ok(text)) => serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|report| report.get("tally").cloned()),
            _ => None,
        };
        assert_eq!(
            tally,
            Some(serde_json::json!({"ok": calls, "error": 0})),
            "{} scripted: {:?}",
            agent.name,
            report.outcome
        );
        self.end(&guard);
        elapsed
    }

    /// `calls` allowed `read_document` calls on the guard of a started
    /// session, as the scripted agents make them.
    fn direct_reads(&self, calls: usize) -> Duration {
        let guard = self.started(&self.agents[0]);
        let arguments = r#"{"document_id":"doc_88pk3r"}"#;
        let started = Instant::now();
        self.tokio.block_on(async {
            for _ in 0..calls {
                guard.call("read_document", arguments).await.expect("call");
            }
        });
        let elapsed = started.elapsed();
        self.end(&guard);
        elapsed
    }

    /// The same three calls on the guard of a started session.
    fn direct(&self) -> Duration {
        let guard = self.started(&self.agents[0]);
        let started = Instant::now();
        self.tokio.block_on(async {
            for (tool, arguments) in &self.calls {
                guard.call(tool, arguments).await.expect("call");
            }
        });
        let elapsed = started.elapsed();
        self.end(&guard);
        elapsed
    }
}

fn quantile(xs: &[Duration], q: f64) -> Duration {
    let mut xs = xs.to_vec();
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let bench = setup();
    let n = bench.agents.len();
    let (mut new_session, mut task) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    // Per round: the longer scripted run minus the shorter, over `CALLS`.
    let mut per_call = vec![Vec::new(); n];
    let (mut direct, mut direct_per_call) = (Vec::new(), Vec::new());
    // Warm up: the first sessions fault the images' pages in.
    for agent in &bench.agents {
        for _ in 0..5 {
            bench.task(agent);
            bench.scripted(agent, CALLS + 1);
        }
    }
    // Alternating rounds, so that every figure sees the same machine.
    for _ in 0..ROUNDS {
        for (i, agent) in bench.agents.iter().enumerate() {
            new_session[i].push(bench.new_session(agent));
            task[i].push(bench.task(agent));
            let long = bench.scripted(agent, CALLS + 1);
            let short = bench.scripted(agent, 1);
            per_call[i].push(long.saturating_sub(short) / CALLS as u32);
        }
        direct.push(bench.direct());
        let long = bench.direct_reads(CALLS + 1);
        let short = bench.direct_reads(1);
        direct_per_call.push(long.saturating_sub(short) / CALLS as u32);
    }
    let p50 = |xs: &[Duration]| micros(quantile(xs, 0.5));
    let p99 = |xs: &[Duration]| micros(quantile(xs, 0.99));
    let guard_call = p50(&direct_per_call);
    println!(
        "\npolyglot: {ROUNDS} alternating rounds, single iterations (per call: {CALLS} calls)\n  \
         the example task's three calls on SessionGuard::call: p50 {:.1} µs p99 {:.1} µs\n  \
         one read_document on SessionGuard::call: p50 {guard_call:.1} µs p99 {:.1} µs",
        p50(&direct),
        p99(&direct),
        p99(&direct_per_call),
    );
    let rust_call = p50(&per_call[0]);
    for (i, agent) in bench.agents.iter().enumerate() {
        let call = p50(&per_call[i]);
        println!(
            "  {:<10} component {:>5.1} MB · new session p50 {:>8.1} µs p99 {:>8.1} µs · whole \
             task p50 {:>8.1} µs p99 {:>8.1} µs · per call p50 {:>6.1} µs p99 {:>6.1} µs \
             ({:.2}x rust), of which the language's {:>6.1} µs",
            agent.name,
            std::fs::metadata(agent.component.path()).map_or(0.0, |m| m.len() as f64 / 1e6),
            p50(&new_session[i]),
            p99(&new_session[i]),
            p50(&task[i]),
            p99(&task[i]),
            call,
            p99(&per_call[i]),
            call / rust_call,
            call - guard_call,
        );
    }
}
