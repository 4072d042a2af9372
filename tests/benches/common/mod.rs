//! What the sandbox benches share: a guard whose only tool is a no-op
//! `read_document`, its log on a tmpfs, the example session and the
//! scripted agent.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mandate::audit::{AuditConfig, AuditLog, Retention};
use mandate::pipeline::{
    Guard, ResourceBinding, Session, Tool, ToolContext, ToolFailure, ToolRegistry, ToolSpec,
};
use mandate::policy::Policies;
use mandate::runtime::{AgentComponent, Runtime};
use mandate::tools::document_entity_type;
use serde_json::{Value, json};

pub const TOOL: &str = "read_document";
pub const ARGUMENTS: &str = r#"{"document_id":"doc_88pk3r"}"#;

/// `read_document` as the policies see it, doing nothing when it runs.
struct NoopRead;

/// `read_document`'s arguments, closed as the guard requires.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    #[allow(dead_code)]
    document_id: String,
}

impl Tool for NoopRead {
    type Args = ReadArgs;

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

    async fn run(&self, _ctx: ToolContext, _args: ReadArgs) -> Result<Value, ToolFailure> {
        Ok(json!({}))
    }
}

pub struct Setup {
    _dir: tempfile::TempDir,
    pub guard: Guard,
    session: Session,
    pub agent: AgentComponent,
    pub tokio: tokio::runtime::Runtime,
    sessions: Cell<u64>,
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A scratch directory on a tmpfs (`/dev/shm` unless
/// `ROUNDTRIP_BENCH_DIR=<dir>`), so the disk is not measured.
pub fn bench_dir(prefix: &str) -> tempfile::TempDir {
    let base =
        std::env::var_os("ROUNDTRIP_BENCH_DIR").map_or_else(|| "/dev/shm".into(), PathBuf::from);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("temp dir")
}

/// The audit log of a bench in `dir`, at most two 8 MiB segments kept, so
/// long runs do not fill the tmpfs.
pub fn bench_log(dir: &Path) -> AuditLog {
    let config = AuditConfig {
        segment_max_bytes: 8 * 1024 * 1024,
        retention: Retention {
            keep_segments: Some(2),
            max_age: None,
        },
        ..AuditConfig::default()
    };
    AuditLog::open_with(dir.join("audit"), config).expect("audit log")
}

/// The guard, the agent under `Runtime::new()` (default limits, the pooling
/// allocator) and a two-worker tokio runtime. The log is on a tmpfs
/// (`/dev/shm` unless `ROUNDTRIP_BENCH_DIR=<dir>`), so the disk is not
/// measured.
pub fn setup() -> Setup {
    let dir = bench_dir("roundtrip-bench-");
    let policies = Policies::load_dir(&policies_dir()).expect("example policies");
    let audit = bench_log(dir.path());
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
        sessions: Cell::new(0),
    }
}

impl Setup {
    /// The example session under a new id.
    pub fn session(&self) -> Session {
        let n = self.sessions.get() + 1;
        self.sessions.set(n);
        let mut session = self.session.clone();
        session.session_id = format!("sess_bench_{n}");
        session
    }
}

/// The scripted agent's task making `calls` calls to the no-op tool. The guest only counts the
/// results (`tally`), so that what is measured per call is the call, not the guest parsing each
/// result and listing it in its report.
pub fn task(calls: u64) -> String {
    if calls == 0 {
        json!({ "calls": [], "tally": true })
    } else {
        json!({
            "calls": [{ "tool": TOOL, "arguments": { "document_id": "doc_88pk3r" } }],
            "repeat": calls,
            "tally": true,
        })
    }
    .to_string()
}

/// Checks the agent's report: `calls` calls, all allowed.
pub fn check_report(text: &str, calls: u64) {
    let report: Value = serde_json::from_str(text).expect("report");
    assert_eq!(
        report["tally"],
        json!({ "ok": calls, "error": 0 }),
        "{text}"
    );
}

/// The value at quantile `q` (0..=1) of `xs`.
pub fn quantile(xs: &[Duration], q: f64) -> Duration {
    let mut xs = xs.to_vec();
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
