#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `mandate approvals list|show|approve|deny` on a queue file filled through
//! the library, as a guard waiting on it would.

mod common;

use std::path::{Path, PathBuf};

use common::{mandate, policies_dir, s, stderr, stdout, success};
use jiff::{SignedDuration, Timestamp};
use mandate::pipeline::queue::{ApprovalQueue, GrantScope, QueueStatus};
use mandate::pipeline::{AgentRef, Delegate, DelegateKind, PendingApproval, UserRef};
use mandate::policy::DeterminingPolicy;
use serde_json::{Value, json};

fn pending(id: &str, session: &str, deadline: Timestamp) -> PendingApproval {
    PendingApproval {
        revealed: Default::default(),
        approval_id: id.into(),
        session_id: session.into(),
        call_id: format!("{session}:3"),
        tool: "send_email".into(),
        arguments: json!({"to": "bob@example.com", "subject": "Q3 notes", "body": {"redacted": "sha256:ab", "key_id": "k"}}),
        resource: "Tool::\"send_email\"".into(),
        user: UserRef {
            id: "alice".into(),
            email: "alice@example.com".into(),
        },
        agent: AgentRef {
            id: "document-summarizer".into(),
            name: "Document Summarizer".into(),
            version: "0.1.0".into(),
        },
        delegation_chain: vec![
            Delegate {
                kind: DelegateKind::User,
                id: "alice".into(),
            },
            Delegate {
                kind: DelegateKind::Agent,
                id: "document-summarizer".into(),
            },
        ],
        demanded_by: vec![DeterminingPolicy {
            id: "email-requires-approval".into(),
            reason: Some("every outgoing email is reviewed by a human before it is sent".into()),
        }],
        deadline,
    }
}

fn in_secs(secs: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_secs(secs)
}

/// A queue with two pending approvals (s1 older than s2) and one whose
/// deadline has passed.
fn queue(dir: &Path) -> (PathBuf, ApprovalQueue) {
    let path = dir.join("approvals.sqlite");
    let q = ApprovalQueue::open(&path).unwrap();
    q.submit(&pending("apr:s1:3:0001", "s1", in_secs(300)))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    q.submit(&pending("apr:s2:3:0002", "s2", in_secs(300)))
        .unwrap();
    q.submit(&pending("apr:s0:3:0000", "s0", in_secs(-5)))
        .unwrap();
    (path, q)
}

fn approvals(args: &[&str], path: &Path) -> std::process::Output {
    let mut all = vec!["approvals"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--queue", s(path)]);
    mandate(&all)
}

#[test]
fn list_shows_the_pending_approvals_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _q) = queue(dir.path());
    let text = success(&approvals(&["list"], &path));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("id "), "{text}");
    for column in [
        "status", "deadline", "session", "user", "agent", "tool", "resource",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    assert!(lines[1].starts_with("apr:s1:3:0001  pending"), "{text}");
    assert!(lines[2].starts_with("apr:s2:3:0002  pending"), "{text}");
    assert!(lines[1].contains("left") && lines[1].contains("send_email"));
    assert!(lines[1].contains("Tool::\"send_email\""));
    assert_eq!(lines.last(), Some(&"2 pending approvals"));
    assert!(!text.contains("apr:s0"), "{text}");

    let json: Value =
        serde_json::from_str(&success(&approvals(&["list", "--format", "json"], &path))).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pending"]["approval_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["apr:s1:3:0001", "apr:s2:3:0002"]);

    let all = success(&approvals(&["list", "--all"], &path));
    assert!(all.contains("apr:s0:3:0000  expired"), "{all}");
    assert!(all.ends_with("3 approvals\n"), "{all}");
}

#[test]
fn show_has_everything_a_reviewer_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _q) = queue(dir.path());
    let text = success(&approvals(&["show", "apr:s1:3:0001"], &path));
    for line in [
        "approval   apr:s1:3:0001",
        "session    s1 (call s1:3)",
        "user       alice <alice@example.com>",
        "agent      Document Summarizer 0.1.0 (document-summarizer)",
        "on behalf  user:alice -> agent:document-summarizer",
        "tool       send_email",
        "resource   Tool::\"send_email\"",
        "  \"to\": \"bob@example.com\",",
        "held by    email-requires-approval: every outgoing email is reviewed by a human before it is sent",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains("status     pending, "), "{text}");

    let json: Value = serde_json::from_str(&success(&approvals(
        &["show", "apr:s1:3:0001", "--format", "json"],
        &path,
    )))
    .unwrap();
    assert_eq!(json["status"], "pending");
    assert_eq!(json["pending"]["tool"], "send_email");
    assert_eq!(
        json["pending"]["demanded_by"][0]["id"],
        "email-requires-approval"
    );

    let out = approvals(&["show", "apr:nope"], &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no approval `apr:nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn approve_and_deny_record_the_decision_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let text = success(&approvals(
        &[
            "approve",
            "apr:s1:3:0001",
            "--reviewer",
            "carol",
            "--reason",
            "internal",
            "--scope",
            "session",
        ],
        &path,
    ));
    assert!(
        text.starts_with("approved apr:s1:3:0001 as carol"),
        "{text}"
    );
    assert!(
        text.contains("later send_email calls on Tool::\"send_email\" in session s1"),
        "{text}"
    );
    let row = q.get("apr:s1:3:0001").unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Approved);
    assert_eq!(row.reviewer.as_deref(), Some("carol"));
    assert_eq!(row.reason.as_deref(), Some("internal"));
    assert_eq!(row.scope, Some(GrantScope::Session));

    let text = success(&approvals(
        &["deny", "apr:s2:3:0002", "--reviewer", "carol"],
        &path,
    ));
    assert_eq!(
        text,
        "denied apr:s2:3:0002 as carol; the waiting call is refused\n"
    );
    assert_eq!(
        q.get("apr:s2:3:0002").unwrap().unwrap().status,
        QueueStatus::Denied
    );
    assert!(success(&approvals(&["list"], &path)).ends_with("0 pending approvals\n"));

    // A decision stands once made.
    let out = approvals(&["deny", "apr:s1:3:0001", "--reviewer", "dave"], &path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "refused: approval `apr:s1:3:0001` was already approved by `carol`; a decision cannot be changed\n"
    );
    let shown = success(&approvals(&["show", "apr:s1:3:0001"], &path));
    assert!(
        shown.contains("decided    approved by carol at "),
        "{shown}"
    );
    assert!(shown.contains(", scope session"), "{shown}");
    assert!(shown.contains("reason     internal"), "{shown}");

    let out = approvals(&["approve", "apr:unknown", "--reviewer", "carol"], &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no approval `apr:unknown` in the queue"));

    // --reviewer is required; scopes are `once` or `session`.
    let out = approvals(&["approve", "apr:s1:3:0001"], &path);
    assert_eq!(out.status.code(), Some(2));
    let out = approvals(
        &[
            "approve",
            "apr:s1:3:0001",
            "--reviewer",
            "carol",
            "--scope",
            "forever",
        ],
        &path,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown grant scope `forever`: use `once` or `session`"));
}

#[test]
fn a_late_decision_is_refused_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let out = approvals(&["approve", "apr:s0:3:0000", "--reviewer", "carol"], &path);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("refused: approval `apr:s0:3:0000`: decision refused, the deadline ")
            && err.contains(
                "has passed and the call was denied as timed out; your decision was not recorded"
            ),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    let row = q.get("apr:s0:3:0000").unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Expired);
    assert_eq!(row.reviewer, None);
}

#[test]
fn a_missing_queue_is_an_error_not_a_new_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.sqlite");
    let out = approvals(&["list"], &path);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: no approvals queue at `{}`",
            path.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!path.exists());

    // `mandate run` with a queue nobody could reach stops before the agent runs.
    let queue = dir.path().join("no-such-dir/approvals.sqlite");
    let out = mandate(&[
        "run",
        "--agent",
        s(&dir.path().join("agent.wasm")),
        "--policies",
        s(&policies_dir()),
        "--session",
        s(&policies_dir().join("session.json")),
        "--audit",
        s(&dir.path().join("audit")),
        "--approver",
        &format!("queue:{}", queue.display()),
        "task",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "cannot open the approvals queue `{}`",
            queue.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("audit").exists());
}

#[test]
fn reveal_to_needs_a_queue_approver_and_is_checked_before_the_log_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let out = mandate(&[
        "run",
        "--agent",
        s(&dir.path().join("agent.wasm")),
        "--policies",
        s(&policies_dir()),
        "--session",
        s(&policies_dir().join("session.json")),
        "--audit",
        s(&dir.path().join("audit")),
        "--approver",
        "deny",
        "--reveal-to",
        "carol",
        "task",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--reveal-to needs a `queue:<file>` approver"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("audit").exists());
}

#[test]
fn deny_does_not_offer_a_scope() {
    let help = stdout(&mandate(&["approvals", "deny", "--help"]));
    assert!(help.contains("--reviewer"), "{help}");
    assert!(!help.contains("--scope"), "{help}");
    let help = stdout(&mandate(&["approvals", "approve", "--help"]));
    assert!(help.contains("--scope"), "{help}");
    let out = mandate(&[
        "approvals",
        "deny",
        "x",
        "--reviewer",
        "carol",
        "--scope",
        "once",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--scope"), "{}", stderr(&out));
}

#[test]
fn a_closed_stdout_ends_list_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _q) = queue(dir.path());
    for format in ["json", "table"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mandate"))
            .args([
                "approvals",
                "list",
                "--all",
                "--format",
                format,
                "--queue",
                s(&path),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn serve_on_a_taken_port_says_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _q) = queue(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "\"carol-7f3a9c2e51d84b06\" = \"carol\"\n").unwrap();
    let out = mandate(&[
        "approvals",
        "serve",
        "--queue",
        s(&path),
        "--listen",
        &addr,
        "--tokens",
        s(&tokens),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on `{addr}`")), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn a_reviewer_the_host_refuses_is_told_and_the_approval_is_pending_again() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    // Bob approves; the test plays the waiting host, whose policy does not
    // accept bob, as soon as his decision lands.
    let bob = std::thread::spawn({
        let path = path.clone();
        move || {
            approvals(
                &[
                    "approve",
                    "apr:s1:3:0001",
                    "--reviewer",
                    "bob",
                    "--wait",
                    "20",
                ],
                &path,
            )
        }
    });
    let started = std::time::Instant::now();
    while q.get("apr:s1:3:0001").unwrap().unwrap().status != QueueStatus::Approved {
        assert!(
            started.elapsed().as_secs() < 20,
            "bob's decision never landed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    q.reopen(
        "apr:s1:3:0001",
        "bob",
        "reviewer `bob` may not approve this call: only members of the reviewers group may approve",
    )
    .unwrap();
    let out = bob.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "refused: the waiting host refused your decision on apr:s1:3:0001: reviewer `bob` may not approve this call: only members of the reviewers group may approve; the approval is pending again for other reviewers\n"
    );
    // Carol can still decide; the host takes her decision.
    assert_eq!(
        q.get("apr:s1:3:0001").unwrap().unwrap().status,
        QueueStatus::Pending
    );
    let carol = std::thread::spawn({
        let path = path.clone();
        move || {
            approvals(
                &[
                    "approve",
                    "apr:s1:3:0001",
                    "--reviewer",
                    "carol",
                    "--wait",
                    "20",
                ],
                &path,
            )
        }
    });
    while q.get("apr:s1:3:0001").unwrap().unwrap().status != QueueStatus::Approved {
        assert!(
            started.elapsed().as_secs() < 40,
            "carol's decision never landed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    q.mark_taken("apr:s1:3:0001").unwrap();
    let text = success(&carol.join().unwrap());
    assert!(
        text.starts_with("approved apr:s1:3:0001 as carol"),
        "{text}"
    );
    let row = q.get("apr:s1:3:0001").unwrap().unwrap();
    assert_eq!(row.refused.len(), 1);
    assert_eq!(row.refused[0].reviewer, "bob");
}

#[test]
fn queue_files_made_by_the_cli_side_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, _q) = queue(dir.path());
    let mut key = path.as_os_str().to_owned();
    key.push(".key");
    for file in [path.clone(), PathBuf::from(key)] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} mode {mode:o}", file.display());
    }
}
