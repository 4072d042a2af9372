//! What the guard's decision path costs on top of Cedar, for one `read_document` call that the
//! example policies allow, side by side in one run:
//!
//! - `raw_cedar`: `cedar_policy::Authorizer::is_authorized` on a prepared `Request` against the
//!   example policies (`policies/`), the request and entities built once outside the timed loop;
//! - `decision_path`: `SessionGuard::dry_run` of the same call, the guard's decision path from
//!   tool name and JSON arguments to the hashed decision record, without fsync: the call path's
//!   own steps (look the tool up, parse and check the arguments, derive the resource, build the
//!   Cedar request from the session's prepared context, screen it through the policy index),
//!   then the decision record built, serialized and hashed as the log's next line
//!   (`AuditLog::preview`, the writer's own framing), but not written;
//! - `guard_call`: `SessionGuard::call("read_document", "{\"document_id\":\"doc_88pk3r\"}")` with
//!   a registered tool of that name that does nothing, so the call is the guard's whole path:
//!   parse and check the JSON arguments, build the Cedar request, decide, write the decision
//!   record (serialized, hash-chained and made durable: by the calling thread itself when the
//!   writer is idle, as it is here), run the no-op tool and write its outcome record. That is
//!   two records per call, each one write and one `fdatasync`;
//! - `guard_call_disk`: the same whole call with the log on the real disk (under the target
//!   directory unless `DECISION_DISK_DIR=<dir>`);
//! - `fdatasync`: the disk's own sync time, a plain append of 1 KB to a file in the same
//!   directory followed by `fdatasync`, as a record's commit is.
//!
//! For `guard_call` the log is on a tmpfs (`/dev/shm` unless `DECISION_BENCH_DIR=<dir>` says
//! otherwise), where `fdatasync` returns at once: what is measured is the CPU work of the call
//! and its two commits, not the disk. Small segments with only the newest two kept keep the run
//! from filling memory or the disk.
//!
//! Run: `cargo bench -p mandate --bench decision`. Besides criterion's report it prints the
//! medians (p50) and p99 of single calls, timed one by one in alternating rounds of the five,
//! the differences from raw Cedar in microseconds, the whole call over the decision path (issue
//! 18's goal: within 2.5x at p50), the whole call on the disk less the disk's own sync time
//! (goal: within the sync time plus 20 µs), and whether the other core was idle meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../audit/benches/common/machine.rs"]
mod machine;

use machine::Machine;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request, Schema,
};
use criterion::{Criterion, criterion_group, criterion_main};
use mandate::audit::{AuditConfig, AuditLog, Retention};
use mandate::pipeline::{
    Guard, ResourceBinding, Session, SessionGuard, Tool, ToolContext, ToolFailure, ToolRegistry,
    ToolSpec,
};
use mandate::policy::Policies;
use mandate::tools::document_entity_type;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

const TOOL: &str = "read_document";
const ARGUMENTS: &str = r#"{"document_id":"doc_88pk3r"}"#;
/// Alternating rounds of the summary, and single calls of each per round.
const ROUNDS: usize = 20;
const CALLS_PER_ROUND: usize = 1_000;
/// Single calls per round with the log on the disk, and plain syncs.
const DISK_CALLS_PER_ROUND: usize = 250;

/// `read_document` as the policies see it, doing nothing when it runs.
struct NoopRead;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoopArgs {
    #[allow(dead_code)]
    document_id: String,
}

impl Tool for NoopRead {
    type Args = NoopArgs;

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

    async fn run(&self, _ctx: ToolContext, _args: NoopArgs) -> Result<Value, ToolFailure> {
        Ok(json!({}))
    }
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// The example policies, schema and entities as plain Cedar values, and the request the guard
/// makes for the call (first evaluation: no approval).
struct RawCedar {
    authorizer: Authorizer,
    set: PolicySet,
    entities: Entities,
    request: Request,
}

fn raw_cedar(policies: &Policies) -> RawCedar {
    let dir = policies_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let set = PolicySet::from_str(&text).unwrap();
    let schema: &Schema = policies.schema();
    let action = EntityUid::from_str(r#"Action::"read_document""#).unwrap();
    let context = Context::from_json_value(
        json!({
            "session": {
                "id": "sess_example_01",
                "scopes": ["documents:read", "documents:write", "email:send"],
                "type": "human_approved",
                "expires_at": { "__extn": { "fn": "datetime", "arg": "2099-01-01T00:00:00Z" } },
            },
            "user": { "__entity": { "type": "User", "id": "alice" } },
            "delegation": { "chain": ["user:alice", "agent:document-summarizer"], "depth": 2 },
            "approval": { "granted": false, "standing": false },
            "now": { "__extn": { "fn": "datetime", "arg": "2026-11-26T12:00:00Z" } },
            "arguments": { "document_id": "doc_88pk3r" },
        }),
        Some((schema, &action)),
    )
    .unwrap();
    let request = Request::new(
        EntityUid::from_str(r#"Agent::"document-summarizer""#).unwrap(),
        action,
        EntityUid::from_str(r#"Document::"doc_88pk3r""#).unwrap(),
        context,
        Some(schema),
    )
    .unwrap();
    RawCedar {
        authorizer: Authorizer::new(),
        set,
        entities: policies.entities().clone(),
        request,
    }
}

impl RawCedar {
    fn decide(&self) -> Decision {
        self.authorizer
            .is_authorized(&self.request, &self.set, &self.entities)
            .decision()
    }
}

struct GuardPath {
    _dir: tempfile::TempDir,
    session: SessionGuard,
    guard: Guard,
    tokio: tokio::runtime::Runtime,
}

/// Where the log goes: `$var` if set, else `default`.
fn bench_base(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| default.into(), PathBuf::from)
}

fn guard_path(policies: Policies, base: PathBuf) -> GuardPath {
    let dir = tempfile::Builder::new()
        .prefix("decision-bench-")
        .tempdir_in(base)
        .unwrap();
    let config = AuditConfig {
        segment_max_bytes: 8 * 1024 * 1024,
        retention: Retention {
            keep_segments: Some(2),
            max_age: None,
        },
        ..AuditConfig::default()
    };
    let audit = AuditLog::open_with(dir.path().join("audit"), config).unwrap();
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(document_entity_type())
        .unwrap()
        .register(NoopRead)
        .unwrap();
    let guard = Guard::builder(policies, audit)
        .tools(tools)
        .build()
        .unwrap();
    let session = Session::from_file(&policies_dir().join("session.json")).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let session = tokio.block_on(guard.start_session(session, None)).unwrap();
    GuardPath {
        _dir: dir,
        session,
        guard,
        tokio,
    }
}

impl GuardPath {
    /// The counters of the guard's audit log.
    fn session_log_stats(&self) -> mandate::audit::Stats {
        self.guard.audit().stats()
    }

    /// Makes `n` calls one after another; returns each one's time.
    fn calls(&self, n: usize) -> Vec<Duration> {
        self.tokio.block_on(async {
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                let result = self.session.call(TOOL, ARGUMENTS).await;
                times.push(started.elapsed());
                assert_eq!(result.as_deref(), Ok("{}"));
            }
            times
        })
    }
}

/// A plain append of a record's size to a file, then `fdatasync`: what the disk itself costs a
/// commit.
struct Sync {
    file: File,
    bytes: Vec<u8>,
}

impl Sync {
    fn new(dir: &Path) -> Sync {
        Sync {
            file: File::create(dir.join("fdatasync-bench")).unwrap(),
            bytes: vec![b'x'; 1024],
        }
    }

    fn once(&mut self) {
        self.file.write_all(&self.bytes).unwrap();
        self.file.sync_data().unwrap();
    }

    /// Makes `n` appends and syncs; returns each one's time. Starts from an empty file.
    fn times(&mut self, n: usize) -> Vec<Duration> {
        self.file.set_len(0).unwrap();
        self.file.sync_all().unwrap();
        (0..n)
            .map(|_| {
                let started = Instant::now();
                self.once();
                started.elapsed()
            })
            .collect()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let machine = Machine::now();
    let policies = Policies::load_dir(&policies_dir()).unwrap();
    let raw = raw_cedar(&policies);
    assert_eq!(raw.decide(), Decision::Allow);
    let load = || Policies::load_dir(&policies_dir()).unwrap();
    let guard = guard_path(load(), bench_base("DECISION_BENCH_DIR", "/dev/shm"));
    let disk = guard_path(
        load(),
        bench_base("DECISION_DISK_DIR", env!("CARGO_TARGET_TMPDIR")),
    );
    let mut sync = Sync::new(disk._dir.path());

    let mut group = c.benchmark_group("decision");
    group.bench_function("raw_cedar", |b| b.iter(|| raw.decide()));
    group.bench_function("decision_path", |b| {
        b.iter(|| guard.session.dry_run(TOOL, ARGUMENTS).unwrap())
    });
    group.bench_function("guard_call", |b| {
        b.iter_custom(|iterations| {
            guard.tokio.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    guard.session.call(TOOL, ARGUMENTS).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("guard_call_disk", |b| {
        b.iter_custom(|iterations| {
            disk.tokio.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    disk.session.call(TOOL, ARGUMENTS).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("fdatasync", |b| b.iter(|| sync.once()));
    group.finish();

    // Single calls timed one by one, all alternating so that all see the same machine.
    let (mut cedar, mut path, mut call) = (Vec::new(), Vec::new(), Vec::new());
    let (mut disk_call, mut syncs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..CALLS_PER_ROUND {
            let started = Instant::now();
            let decision = raw.decide();
            cedar.push(started.elapsed());
            assert_eq!(decision, Decision::Allow);
        }
        for _ in 0..CALLS_PER_ROUND {
            let started = Instant::now();
            let line = guard.session.dry_run(TOOL, ARGUMENTS);
            path.push(started.elapsed());
            assert!(line.unwrap().contains(r#""effect":"allow""#));
        }
        call.extend(guard.calls(CALLS_PER_ROUND));
        disk_call.extend(disk.calls(DISK_CALLS_PER_ROUND));
        syncs.extend(sync.times(DISK_CALLS_PER_ROUND));
    }
    for times in [&mut cedar, &mut path, &mut call, &mut disk_call, &mut syncs] {
        times.sort();
    }
    let p50 = |times: &[Duration]| micros(percentile(times, 0.5));
    let p99 = |times: &[Duration]| micros(percentile(times, 0.99));
    let (cedar50, path50, call50) = (p50(&cedar), p50(&path), p50(&call));
    let (disk50, sync50) = (p50(&disk_call), p50(&syncs));
    let stats = disk.session_log_stats();
    println!(
        "\ndecision: {} single calls each in {ROUNDS} alternating rounds ({} each on the disk), \
         p50 (p99):\n  \
         raw Cedar {cedar50:.1} µs ({:.1})\n  \
         decision path {path50:.1} µs ({:.1}), {:+.1} µs over raw Cedar\n  \
         whole call, log on tmpfs {call50:.1} µs ({:.1}), {:+.1} µs over raw Cedar, \
         {:.2}x the decision path (goal: within 2.5x)\n  \
         whole call, log on the disk {disk50:.1} µs ({:.1})\n  \
         fdatasync of a 1 KB append on the same disk {sync50:.1} µs ({:.1})\n  \
         whole call on the disk less one fdatasync {:+.1} µs (goal: within the fdatasync + 20 µs); \
         the call makes two records, so less two: {:+.1} µs\n  \
         records committed by their own caller on the disk log: {} of {}\n  {}",
        cedar.len(),
        disk_call.len(),
        p99(&cedar),
        p99(&path),
        path50 - cedar50,
        p99(&call),
        call50 - cedar50,
        call50 / path50,
        p99(&disk_call),
        p99(&syncs),
        disk50 - sync50,
        disk50 - 2.0 * sync50,
        stats.led_appends,
        stats.durable_seq,
        machine.report(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
