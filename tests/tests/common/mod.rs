//! Shared helpers for the end-to-end tests: the example policies and tools in
//! a temporary workspace, a guard built over them, the real guest components
//! (compiled once per test binary), and the audit log read back as JSON.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod needs;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mandate::audit::{AuditLog, RecordReader};
use mandate::pipeline::{
    BoxFuture, DEFAULT_APPROVAL_TIMEOUT, DenyAll, Guard, PendingApproval, ReviewDecision,
    ReviewError, Reviewer, Session, ToolRegistry, Verdict,
};
use mandate::policy::Policies;
use mandate::runtime::{AgentComponent, RunOutcome, RunReport, Runtime};
use mandate::tools::{Workspace, example_registry};
use serde_json::Value;
use tempfile::TempDir;

/// The repository's example policy directory.
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// The repository's example workspace.
pub fn example_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/workspace")
}

/// The example session (alice, the document summarizer, every scope,
/// expiring in 2099), parsed from `policies/session.json`.
pub fn session() -> Session {
    Session::from_file(&policies_dir().join("session.json")).unwrap()
}

/// The example session under another id, so that concurrent or successive
/// sessions can be told apart in the log.
pub fn session_with_id(id: &str) -> Session {
    let mut s = session();
    s.session_id = id.to_string();
    s
}

/// Copies the example policies into `dest` (created), so a test can change them.
pub fn copy_policies(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dest.join(path.file_name().unwrap())).unwrap();
        }
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static SCRIPTED: OnceLock<AgentComponent> = OnceLock::new();
static SUMMARIZER: OnceLock<AgentComponent> = OnceLock::new();

// Both are shared by every test of a binary, across tokio runtimes.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Runtime>();
    shareable::<AgentComponent>();
};

fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| Runtime::new().unwrap())
}

/// The scripted agent, compiled once per test binary.
pub fn scripted_agent() -> &'static AgentComponent {
    SCRIPTED.get_or_init(|| {
        runtime()
            .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
            .unwrap()
    })
}

/// The example document summarizer, compiled once per test binary.
pub fn document_summarizer() -> &'static AgentComponent {
    SUMMARIZER.get_or_init(|| {
        runtime()
            .load_agent(Path::new(mandate_tests::DOCUMENT_SUMMARIZER))
            .unwrap()
    })
}

/// SHA-256 of a file computed outside Mandate (by `sha256sum`), when the
/// tool is available.
pub fn sha256sum(path: &str) -> Option<String> {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// Extra tools registered next to the example ones.
type ToolHook = Box<dyn FnOnce(&mut ToolRegistry)>;

/// The tools of an environment, made over its workspace.
type RegistryHook = Box<dyn FnOnce(&Workspace) -> ToolRegistry>;

/// How to build an [`Env`]: reviewer, timeout, policy directory, extra tools.
pub struct EnvBuilder {
    reviewer: Arc<dyn Reviewer>,
    approval_timeout: Duration,
    policies: PathBuf,
    registry: Option<RegistryHook>,
    tools: Vec<ToolHook>,
    audit_path: Option<PathBuf>,
    reveal: mandate::pipeline::reveal::RevealConfig,
    egress: Option<mandate::egress::Egress>,
}

impl EnvBuilder {
    /// Where the agent's HTTP requests may go (default: nowhere private,
    /// no keys).
    pub fn egress(mut self, egress: mandate::egress::Egress) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Who decides held calls (default: [`DenyAll`]).
    pub fn reviewer(mut self, reviewer: impl Reviewer) -> Self {
        self.reviewer = Arc::new(reviewer);
        self
    }

    /// How long a reviewer has (default: the library's default).
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout;
        self
    }

    /// Another policy directory (default: the example policies).
    pub fn policies(mut self, dir: impl Into<PathBuf>) -> Self {
        self.policies = dir.into();
        self
    }

    /// Where the audit log lives (default: `audit` in the test's temp dir).
    pub fn audit_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_path = Some(path.into());
        self
    }

    /// Who may see held calls' clear values (default: nobody).
    pub fn reveal(mut self, config: mandate::pipeline::reveal::RevealConfig) -> Self {
        self.reveal = config;
        self
    }

    /// Other tools than the example ones (default: [`example_registry`]),
    /// e.g. without one of them; [`EnvBuilder::tools`] adds to these.
    pub fn registry(mut self, hook: impl FnOnce(&Workspace) -> ToolRegistry + 'static) -> Self {
        self.registry = Some(Box::new(hook));
        self
    }

    /// Registers more tools next to the example ones.
    pub fn tools(mut self, hook: impl FnOnce(&mut ToolRegistry) + 'static) -> Self {
        self.tools.push(Box::new(hook));
        self
    }

    /// A temp dir with `workspace/documents/doc_88pk3r.md` and an audit log
    /// directory, and a guard over them.
    pub fn build(self) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("workspace");
        std::fs::create_dir_all(root.join("documents")).unwrap();
        std::fs::copy(
            example_workspace().join("documents/doc_88pk3r.md"),
            root.join("documents/doc_88pk3r.md"),
        )
        .unwrap();
        let workspace = Workspace::new(&root);
        let audit_path = self.audit_path.unwrap_or_else(|| dir.path().join("audit"));
        let policies = Policies::load_dir(&self.policies).unwrap();
        let digest = policies.digest().to_string();
        let mut tools = match self.registry {
            Some(hook) => hook(&workspace),
            None => example_registry(&workspace).unwrap(),
        };
        for hook in self.tools {
            hook(&mut tools);
        }
        let mut builder = Guard::builder(policies, AuditLog::open(&audit_path).unwrap())
            .tools(tools)
            .reviewer_arc(self.reviewer)
            .approval_timeout(self.approval_timeout)
            .reveal(self.reveal);
        if let Some(egress) = self.egress {
            builder = builder.egress(egress);
        }
        let guard = builder.build().unwrap();
        Env {
            dir,
            workspace,
            audit_path,
            policy_digest: digest,
            guard,
        }
    }
}

/// One test's world: a temp dir holding the workspace and the audit log
/// (a directory of segments), and a guard writing to it.
pub struct Env {
    pub dir: TempDir,
    pub workspace: Workspace,
    pub audit_path: PathBuf,
    pub policy_digest: String,
    pub guard: Guard,
}

impl Env {
    /// Starts describing an environment.
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            reviewer: Arc::new(DenyAll),
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            policies: policies_dir(),
            registry: None,
            tools: Vec::new(),
            audit_path: None,
            reveal: Default::default(),
            egress: None,
        }
    }

    /// The default environment: example policies and tools, deny-all reviewer.
    pub fn example() -> Env {
        Env::builder().build()
    }

    /// Runs the scripted agent on `task` under `session`.
    pub async fn run(&self, session: Session, task: &Value) -> RunReport {
        scripted_agent()
            .run(&self.guard, session, &task.to_string())
            .await
            .unwrap()
    }

    /// Runs the scripted agent with the example session over `calls` and
    /// returns the `results` array of its report.
    pub async fn script(&self, calls: Value) -> Vec<Value> {
        self.script_as(session(), calls).await
    }

    /// Same as [`Env::script`] under `session`.
    pub async fn script_as(&self, session: Session, calls: Value) -> Vec<Value> {
        let report = self
            .run(session, &serde_json::json!({ "calls": calls }))
            .await;
        report_results(&report)
    }

    /// Every record of the log, parsed.
    pub fn records(&self) -> Vec<Value> {
        read_records(&self.audit_path)
    }

    /// The records of `kind`.
    pub fn records_of(&self, kind: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }

    /// Checks the log's chain and that it holds `expected` records.
    pub fn assert_verifies(&self, expected: u64) {
        let report = mandate::audit::verify_file(&self.audit_path)
            .unwrap_or_else(|e| panic!("the log does not verify: {e}"));
        assert_eq!(report.records, expected, "records in the log");
        assert_eq!(report.head_seq, expected);
        assert_eq!(
            self.guard.audit().head(),
            (report.head_seq, report.head_hash)
        );
    }

    /// The messages in the outbox, parsed.
    pub fn outbox(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.workspace.outbox()) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read the outbox: {e}"),
        }
    }
}

/// The `results` of a scripted agent's report; fails if it did not finish.
pub fn report_results(report: &RunReport) -> Vec<Value> {
    let RunOutcome::Finished(Ok(text)) = &report.outcome else {
        panic!(
            "the agent did not finish: {:?}\noutput: {}",
            report.outcome, report.output
        );
    };
    let report: Value = serde_json::from_str(text).unwrap();
    report["results"].as_array().unwrap().clone()
}

/// Reads the log at `path` (a log directory or one segment file), one JSON
/// value per record, across segments.
pub fn read_records(path: &Path) -> Vec<Value> {
    RecordReader::open(path)
        .unwrap()
        .map(|r| serde_json::from_slice(&r.unwrap().bytes).unwrap())
        .collect()
}

/// The bytes of the log at `path`: its segments, oldest first, concatenated.
pub fn log_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for segment in mandate::audit::list_segments(path).unwrap() {
        bytes.extend(std::fs::read(&segment.path).unwrap());
    }
    bytes
}

/// The text of the log at `path` (see [`log_bytes`]).
pub fn log_text(path: &Path) -> String {
    String::from_utf8(log_bytes(path)).unwrap()
}

/// The `kind` of every record, in order.
pub fn kinds(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of `decision.determining_policies` (or any list of policies).
pub fn policy_ids(policies: &Value) -> Vec<String> {
    policies
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// A reviewer that gives a fixed answer and keeps every pending approval
/// it was shown.
#[derive(Clone)]
pub struct FixedReviewer {
    pub verdict: Verdict,
    pub reviewer: String,
    pub reason: Option<String>,
    pub seen: Arc<Mutex<Vec<PendingApproval>>>,
}

impl FixedReviewer {
    /// Approves as `reviewer`.
    pub fn approves_as(reviewer: &str) -> Self {
        FixedReviewer {
            verdict: Verdict::Approve,
            reviewer: reviewer.to_string(),
            reason: Some(format!("{reviewer} looked at it")),
            seen: Arc::default(),
        }
    }

    /// The pending approvals seen so far.
    pub fn seen(&self) -> Vec<PendingApproval> {
        self.seen.lock().unwrap().clone()
    }
}

impl Reviewer for FixedReviewer {
    fn name(&self) -> &str {
        "fixed"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        self.seen.lock().unwrap().push(pending.clone());
        Box::pin(async move {
            Ok(ReviewDecision {
                decision: self.verdict,
                reviewer: self.reviewer.clone(),
                reason: self.reason.clone(),
                scope: Default::default(),
            })
        })
    }
}

/// Writes an executable shell script `name` into `dir` and returns its path.
pub fn script_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A `send_email` call of the scripted agent.
pub fn email_call(body: &str) -> Value {
    serde_json::json!({
        "tool": "send_email",
        "arguments": {"to": "bob@example.com", "subject": "Q3 notes", "body": body},
    })
}

/// A `read_document` call of the scripted agent.
pub fn read_call(document_id: &str) -> Value {
    serde_json::json!({"tool": "read_document", "arguments": {"document_id": document_id}})
}

/// The example entities without the documents: the users, groups and agent,
/// as JSON, for policy directories of tools that do not declare `Document`.
pub fn entities_without_documents() -> String {
    let entities: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(policies_dir().join("entities.json")).unwrap(),
    )
    .unwrap();
    let kept: Vec<Value> = entities
        .into_iter()
        .filter(|e| e["uid"]["type"] != "Document")
        .collect();
    serde_json::to_string(&kept).unwrap()
}

/// The `mandate` binary of this workspace's build. Cargo hands
/// `CARGO_BIN_EXE_mandate` only to the CLI crate's own tests, so the binary
/// is found beside this test executable (`target/<profile>/deps/..`), where
/// `cargo test --workspace` puts it.
pub fn mandate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("mandate");
    assert!(
        binary.is_file(),
        "no `mandate` binary at `{}`: build it with `cargo test --workspace`",
        binary.display()
    );
    binary
}
