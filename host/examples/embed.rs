//! Embedding Mandate in an agent host: load policies once, register tools,
//! plug in a reviewer, open the audit log, then run sessions.
//!
//! ```text
//! cargo build --release --target wasm32-wasip2 -p document-summarizer
//! cargo run -p mandate --example embed -- target/wasm32-wasip2/release/document_summarizer.wasm
//! ```

// ANCHOR: reviewer
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mandate::audit::{AuditLog, verify_file};
use mandate::pipeline::{
    BoxFuture, Guard, PendingApproval, ReviewDecision, ReviewError, Reviewer, Session, Verdict,
};
use mandate::policy::Policies;
use mandate::runtime::{Runtime, default_compile_cache};
use mandate::tools::{Workspace, example_registry};

/// The host's own review flow. A real host would post the pending approval to
/// a chat channel or a review queue and await the human's answer; this one
/// approves mail to the company's domain on behalf of carol.
struct DomainReviewer;

impl Reviewer for DomainReviewer {
    fn name(&self) -> &str {
        "domain-reviewer"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(async move {
            let to = pending.arguments["to"].as_str().unwrap_or_default();
            let internal = one_address_at(to, "example.com");
            Ok(ReviewDecision {
                decision: if internal {
                    Verdict::Approve
                } else {
                    Verdict::Deny
                },
                reviewer: "carol".into(),
                reason: Some(format!("recipient {to} checked by domain-reviewer")),
                scope: Default::default(),
            })
        })
    }
}

/// Whether `to` is exactly one address at `domain` (e.g. `example.com`): the
/// whole text is checked, since a suffix test also passes
/// `"eve@evil.example, bob@example.com"`.
fn one_address_at(to: &str, domain: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    match to.split_once('@') {
        Some((local, d)) => {
            !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
                && d.eq_ignore_ascii_case(domain)
        }
        None => false,
    }
}
// ANCHOR_END: reviewer

// ANCHOR: main
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let agent_path: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/wasm32-wasip2/release/document_summarizer.wasm"));
    let work = tempfile::tempdir()?;
    std::fs::create_dir_all(work.path().join("documents"))?;
    std::fs::copy(
        root.join("examples/workspace/documents/doc_88pk3r.md"),
        work.path().join("documents/doc_88pk3r.md"),
    )?;

    // Once, at start: policies, schema and entities parsed and validated.
    let policies = Policies::load_dir(&root.join("policies"))?;
    // A directory of segment files; appends from concurrent sessions share fsyncs.
    let audit = AuditLog::open(work.path().join("audit"))?;
    let guard = Guard::builder(policies, audit)
        .tools(example_registry(&Workspace::new(work.path()))?)
        .reviewer(DomainReviewer)
        .approval_timeout(Duration::from_secs(60))
        .on_call(|call| println!("{} {:?} {:?}", call.tool, call.effect, call.approval))
        .build()?;
    // Once, at start: the engine, and the agent compiled and pre-instantiated.
    // The compiled agent is kept in a private cache, so later starts skip compiling.
    let mut runtime = Runtime::builder();
    if let Some(dir) = default_compile_cache() {
        runtime = runtime.compile_cache(dir);
    }
    let runtime = runtime.build()?;
    let agent = runtime.load_agent(&agent_path).with_context(
        || "build it with `cargo build --release --target wasm32-wasip2 -p document-summarizer`",
    )?;

    // Per session: a fresh sandbox under the session's scope.
    let session = Session::from_file(&root.join("policies/session.json"))?;
    let report = agent
        .run(
            &guard,
            session,
            "summarize doc_88pk3r and share it with bob@example.com",
        )
        .await?;
    println!("{:?}", report.outcome);

    // Closing writes the final checkpoint (when a signer is configured) and stops the writer.
    guard.audit().shutdown()?;
    let verified = verify_file(&work.path().join("audit"))?;
    println!("audit log verified: {} records", verified.records);
    Ok(())
}
// ANCHOR_END: main
