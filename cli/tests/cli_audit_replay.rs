//! `mandate audit replay` as a user runs it: a log written by a real guard,
//! replayed against an unchanged and a changed candidate, in both formats,
//! and the errors for what cannot be replayed at all.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{mandate, policies_dir, s, stderr, stdout, success};
use mandate::audit::AuditLog;
use mandate::pipeline::{Guard, Session};
use mandate::policy::Policies;
use mandate::tools::{Workspace, example_registry};
use serde_json::{Value, json};

/// Copies the example policies into `dest`.
fn copy_policies(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dest.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// A log of one session under the example policies and the deny-all
/// reviewer: a read and a summary (allowed), an email (held, denied by the
/// reviewer) and an unknown tool (refused before policy).
fn write_log(dir: &Path) -> PathBuf {
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    std::fs::copy(
        policies_dir().join("../examples/workspace/documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .unwrap();
    let log = dir.join("audit");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let guard = Guard::builder(
            Policies::load_dir(&policies_dir()).unwrap(),
            AuditLog::open(&log).unwrap(),
        )
        .tools(example_registry(&Workspace::new(&workspace)).unwrap())
        .build()
        .unwrap();
        let session = guard
            .start_session(
                Session::from_file(&policies_dir().join("session.json")).unwrap(),
                None,
            )
            .await
            .unwrap();
        let calls = [
            ("read_document", json!({"document_id": "doc_88pk3r"})),
            (
                "write_summary",
                json!({"document_id": "doc_88pk3r", "summary": "short"}),
            ),
            (
                "send_email",
                json!({"to": "bob@example.com", "subject": "s", "body": "secret"}),
            ),
            ("no_such_tool", json!({})),
        ];
        for (tool, args) in calls {
            let _ = session.call(tool, &args.to_string()).await;
        }
        session.end(&Ok(String::new())).await.unwrap();
        guard.audit().shutdown().unwrap();
    });
    log
}

#[test]
fn an_unchanged_candidate_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let out = mandate(&["audit", "replay", s(&log), "--policies", s(&policies_dir())]);
    let text = success(&out);
    assert_eq!(
        text.trim_end().lines().last().unwrap(),
        "4 decisions: 3 re-evaluated (3 unchanged, 0 changed), 0 not replayable, 1 refused before policy (not re-evaluated)",
        "{text}"
    );
}

#[test]
fn a_candidate_without_the_approval_rule_lists_the_email_as_changed() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let candidate = dir.path().join("candidate");
    copy_policies(&candidate);
    std::fs::remove_file(candidate.join("approval.cedar")).unwrap();

    let out = mandate(&[
        "audit",
        "replay",
        s(&log),
        "--policies",
        s(&candidate),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(&success(&out)).unwrap();
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{report:#}");
    let change = &changes[0];
    assert_eq!(change["tool"], "send_email");
    assert_eq!(change["seq"], 8, "{change:#}");
    assert_eq!(change["session_id"], "sess_example_01");
    assert_eq!(change["user"], "alice");
    assert_eq!(change["agent"], "document-summarizer");
    let text = change.to_string();
    assert!(text.contains("email-requires-approval"), "{change:#}");
    assert!(text.contains("scope-email-send"), "{change:#}");
    assert_eq!(report["totals"]["changed"], 1, "{report:#}");
    assert_eq!(report["totals"]["unchanged"], 2, "{report:#}");

    let table = success(&mandate(&[
        "audit",
        "replay",
        s(&log),
        "--policies",
        s(&candidate),
    ]));
    let line = table
        .lines()
        .find(|l| l.contains("send_email"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.starts_with("8 "), "{table}");
    assert!(
        line.contains("deny [approval") && line.contains("-> allow"),
        "{table}"
    );
}

#[test]
fn a_missing_log_or_candidate_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = mandate(&[
        "audit",
        "replay",
        s(&missing),
        "--policies",
        s(&policies_dir()),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains(s(&missing)), "{}", stderr(&out));

    let log = write_log(dir.path());
    let out = mandate(&["audit", "replay", s(&log), "--policies", s(&missing)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains(s(&missing)), "{}", stderr(&out));
}
