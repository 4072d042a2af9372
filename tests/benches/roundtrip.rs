//! What the sandbox costs around the guard, with the scripted agent, side by side in one run:
//!
//! - the WIT round trip: the guest calling a cheap tool `N` times in one session
//!   (`{"calls": [read_document], "repeat": N}`) against the same session with no calls, and
//!   against the same `N` calls made directly on `SessionGuard::call`. Per call, the guest's
//!   cost is `(session with N calls - session with none) / N`; the difference from a direct
//!   call is what crossing the component boundary adds (argument and result strings copied in
//!   and out, the host import's bookkeeping, the guest's own loop);
//! - a new session's sandbox plus its first call: `AgentComponent::run` of a one-call task (the
//!   session-start record, a fresh `Store`, instantiation from the pre-instantiated component,
//!   the call, the session-end record), against the same session made directly on the guard
//!   (`start_session`, one call, `end`): the difference is the sandbox.
//!
//! The tool is `read_document` doing nothing, and the log is on a tmpfs (`/dev/shm` unless
//! `ROUNDTRIP_BENCH_DIR=<dir>`), so neither a file read nor the disk is measured. The runtime
//! is `Runtime::new()` as shipped: default limits (epoch interruption on) and wasmtime's default
//! on-demand instance allocator, not the pooling allocator.
//!
//! Run: `cargo bench -p mandate-tests --bench roundtrip`. Besides criterion's report it prints
//! medians of alternating rounds and the differences in microseconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mandate::audit::{AuditConfig, AuditLog, Retention};
use mandate::guard::{
    Guard, ResourceBinding, Session, Tool, ToolContext, ToolFailure, ToolRegistry, ToolSpec,
};
use mandate::policy::Policies;
use mandate::runtime::{AgentComponent, RunOutcome, Runtime};
use mandate::tools::document_entity_type;
use serde_json::{Value, json};

const TOOL: &str = "read_document";
const ARGUMENTS: &str = r#"{"document_id":"doc_88pk3r"}"#;
/// Calls per session in the round-trip measurement (the default limit is 1,000).
const N: u64 = 200;
/// Alternating rounds of the summary.
const ROUNDS: usize = 30;

/// `read_document` as the policies see it, doing nothing when it runs.
struct NoopRead;

impl Tool for NoopRead {
    type Args = Value;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: TOOL.into(),
            description: "Does nothing (benchmark).".into(),
            scope: "documents:read".into(),
            resource: ResourceBinding::Argument {
                entity_type: "Document".into(),
                argument: "document_id".into(),
            },
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _ctx: ToolContext, _args: Value) -> Result<Value, ToolFailure> {
        Ok(json!({}))
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    guard: Guard,
    session: Session,
    agent: AgentComponent,
    tokio: tokio::runtime::Runtime,
    sessions: std::cell::Cell<u64>,
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn setup() -> Setup {
    let base =
        std::env::var_os("ROUNDTRIP_BENCH_DIR").map_or_else(|| "/dev/shm".into(), PathBuf::from);
    let dir = tempfile::Builder::new()
        .prefix("roundtrip-bench-")
        .tempdir_in(base)
        .expect("temp dir");
    let policies = Policies::load_dir(&policies_dir()).expect("example policies");
    let config = AuditConfig {
        segment_max_bytes: 8 * 1024 * 1024,
        retention: Retention {
            keep_segments: Some(2),
            max_age: None,
        },
        ..AuditConfig::default()
    };
    let audit = AuditLog::open_with(dir.path().join("audit"), config).expect("audit log");
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(document_entity_type())
        .expect("entity type")
        .register(NoopRead)
        .expect("tool");
    let guard = Guard::builder(policies, audit)
        .tools(tools)
        .build()
        .expect("guard");
    let session = Session::from_file(&policies_dir().join("session.json")).expect("session");
    let runtime = Runtime::new().expect("runtime");
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .expect("scripted agent");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    Setup {
        _dir: dir,
        guard,
        session,
        agent,
        tokio,
        sessions: std::cell::Cell::new(0),
    }
}

impl Setup {
    fn session(&self) -> Session {
        let n = self.sessions.get() + 1;
        self.sessions.set(n);
        let mut session = self.session.clone();
        session.session_id = format!("sess_bench_{n}");
        session
    }

    /// One guest session making `calls` calls; how long it took.
    fn guest(&self, calls: u64) -> Duration {
        let task = if calls == 0 {
            json!({ "calls": [] })
        } else {
            json!({
                "calls": [{ "tool": TOOL, "arguments": { "document_id": "doc_88pk3r" } }],
                "repeat": calls,
            })
        };
        let task = task.to_string();
        let session = self.session();
        let started = Instant::now();
        let report = self
            .tokio
            .block_on(self.agent.run(&self.guard, session, &task))
            .expect("run");
        let elapsed = started.elapsed();
        match &report.outcome {
            RunOutcome::Finished(Ok(text)) => {
                let report: Value = serde_json::from_str(text).expect("report");
                let results = report["results"].as_array().expect("results");
                assert_eq!(results.len() as u64, calls);
                assert!(results.iter().all(|r| r.get("ok").is_some()), "{text}");
            }
            other => panic!("{other:?}"),
        }
        elapsed
    }

    /// The same session made directly on the guard: start, `calls` calls, end.
    fn direct(&self, calls: u64) -> Duration {
        let session = self.session();
        let started = Instant::now();
        self.tokio.block_on(async {
            let guard = self
                .guard
                .start_session(session, Some(self.agent.digest().to_string()))
                .await
                .expect("session");
            for _ in 0..calls {
                let result = guard.call(TOOL, ARGUMENTS).await;
                assert_eq!(result.as_deref(), Ok("{}"));
            }
            guard.end(&Ok(String::new())).await.expect("end");
        });
        started.elapsed()
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let setup = setup();

    let mut group = c.benchmark_group("roundtrip");
    group.sample_size(20);
    group.bench_function(format!("guest_{N}_calls"), |b| b.iter(|| setup.guest(N)));
    group.bench_function(format!("direct_{N}_calls"), |b| b.iter(|| setup.direct(N)));
    group.bench_function("guest_no_calls", |b| b.iter(|| setup.guest(0)));
    group.finish();

    let mut group = c.benchmark_group("session");
    group.bench_function("guest_first_call", |b| b.iter(|| setup.guest(1)));
    group.bench_function("direct_first_call", |b| b.iter(|| setup.direct(1)));
    group.finish();

    // Alternating rounds, so that every measurement sees the same machine.
    let (mut guest_n, mut guest_0, mut direct_n) = (Vec::new(), Vec::new(), Vec::new());
    let (mut guest_1, mut direct_1) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        guest_n.push(setup.guest(N));
        guest_0.push(setup.guest(0));
        direct_n.push(setup.direct(N));
        guest_1.push(setup.guest(1));
        direct_1.push(setup.direct(1));
    }
    let (guest_n, guest_0, direct_n) = (median(guest_n), median(guest_0), median(direct_n));
    let (guest_1, direct_1) = (median(guest_1), median(direct_1));
    let per_guest_call = (micros(guest_n) - micros(guest_0)) / N as f64;
    let per_direct_call = micros(direct_n) / N as f64;
    println!(
        "\nroundtrip: medians of {ROUNDS} alternating rounds; sessions of {N} calls: guest \
         {:.0} µs, guest with no calls {:.0} µs, direct on SessionGuard {:.0} µs; per call: \
         through the guest {per_guest_call:.1} µs, direct {per_direct_call:.1} µs, the WIT \
         round trip adds {:.1} µs ({:.2}x)",
        micros(guest_n),
        micros(guest_0),
        micros(direct_n),
        per_guest_call - per_direct_call,
        per_guest_call / per_direct_call,
    );
    println!(
        "session: one-call session through the sandbox (AgentComponent::run) {:.0} µs, the \
         same made directly on the guard {:.0} µs: the sandbox (Store, instantiation, guest \
         run, no pooling allocator) adds {:.0} µs ({:.1}x)",
        micros(guest_1),
        micros(direct_1),
        micros(guest_1) - micros(direct_1),
        guest_1.as_secs_f64() / direct_1.as_secs_f64(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
