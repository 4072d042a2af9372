#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pending-approvals queue: held calls wait in a SQLite file until a
//! reviewer decides them from another handle on the same file (as `mandate
//! approvals approve` or the review page would, from another process), and
//! standing grants a reviewer gives for the rest of a session.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Env, copy_policies, email_call, policy_ids, scripted_agent, session_with_id};
use mandate::pipeline::queue::{
    ApprovalQueue, GrantScope, QueueDecision, QueueError, QueueReviewer, QueueStatus,
};
use mandate::pipeline::{SessionGuard, ToolCallError, Verdict};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// Long enough that no test here times out by accident.
const PATIENT: Duration = Duration::from_secs(60);

/// An environment whose guard waits on a queue file in a temp dir of its
/// own (returned, so it lives as long as the test).
fn env_with_queue(policies: Option<&Path>, timeout: Duration) -> (Env, PathBuf, TempDir) {
    let holder = tempfile::tempdir().unwrap();
    let path = holder.path().join("approvals.sqlite");
    let reviewer = QueueReviewer::new(ApprovalQueue::open(&path).unwrap())
        .poll_interval(Duration::from_millis(10));
    let mut builder = Env::builder().reviewer(reviewer).approval_timeout(timeout);
    if let Some(p) = policies {
        builder = builder.policies(p);
    }
    (builder.build(), path, holder)
}

fn email(to: &str) -> String {
    json!({"to": to, "subject": "Q3 notes", "body": "see attached"}).to_string()
}

fn summary(document_id: &str) -> String {
    json!({"document_id": document_id, "summary": "short"}).to_string()
}

fn decision(verdict: Verdict, reviewer: &str, scope: GrantScope) -> QueueDecision {
    QueueDecision {
        verdict,
        reviewer: reviewer.into(),
        reason: Some(format!("{reviewer} looked at it")),
        scope,
    }
}

type Call = JoinHandle<Result<String, ToolCallError>>;

fn spawn_call(session: &Arc<SessionGuard>, tool: &str, arguments: String) -> Call {
    let session = Arc::clone(session);
    let tool = tool.to_string();
    tokio::spawn(async move { session.call(&tool, &arguments).await })
}

/// Waits until the reviewer's handle lists `n` pending approvals, and returns
/// them by session id.
async fn wait_pending(queue: &ApprovalQueue, n: usize) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let pending = queue.pending().unwrap();
        if pending.len() >= n {
            return pending
                .into_iter()
                .map(|a| (a.pending.session_id, a.pending.approval_id))
                .collect();
        }
        assert!(
            started.elapsed() < PATIENT,
            "only {} pending",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn id_of(pending: &[(String, String)], session_id: &str) -> String {
    pending
        .iter()
        .find(|(s, _)| s == session_id)
        .map(|(_, id)| id.clone())
        .unwrap_or_else(|| panic!("no pending approval for {session_id}: {pending:?}"))
}

/// Awaits a call that should now finish promptly.
async fn landed(call: Call) -> Result<String, ToolCallError> {
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the call did not proceed after its decision landed")
        .unwrap()
}

/// The decision record of `call_id`.
fn decision_of(env: &Env, call_id: &str) -> Value {
    env.records_of("decision")
        .into_iter()
        .find(|r| r["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no decision record for {call_id}"))
}

async fn start(env: &Env, session_id: &str) -> Arc<SessionGuard> {
    Arc::new(
        env.guard
            .start_session(session_with_id(session_id), None)
            .await
            .unwrap(),
    )
}

/// The example policies plus: writing a summary needs a human, and a second
/// document of alice's.
fn grant_policies(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    copy_policies(&policies);
    std::fs::write(
        policies.join("grants.cedar"),
        r#"@id("summary-requires-approval")
@reason("summaries are checked by a human")
forbid (principal, action == Action::"write_summary", resource)
unless { context.approval.granted };
"#,
    )
    .unwrap();
    let entities_path = policies.join("entities.json");
    let mut entities: Value =
        serde_json::from_str(&std::fs::read_to_string(&entities_path).unwrap()).unwrap();
    entities.as_array_mut().unwrap().push(json!({
        "uid": {"type": "Document", "id": "doc_7tq2mw"},
        "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}, "title": "Q4 notes"},
        "parents": [],
    }));
    std::fs::write(&entities_path, entities.to_string()).unwrap();
    policies
}

#[tokio::test(flavor = "multi_thread")]
async fn several_sessions_wait_on_their_own_approvals_and_each_proceeds_as_its_decision_lands() {
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    let sessions = [
        start(&env, "sess_q_1").await,
        start(&env, "sess_q_2").await,
        start(&env, "sess_q_3").await,
    ];
    let mut calls: Vec<Option<Call>> = sessions
        .iter()
        .map(|s| Some(spawn_call(s, "send_email", email("bob@example.com"))))
        .collect();

    // The reviewer's own handle, as another process would open it.
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let pending = wait_pending(&reviewer, 3).await;
    assert_eq!(pending.len(), 3);
    let shown = reviewer.get(&id_of(&pending, "sess_q_1")).unwrap().unwrap();
    assert_eq!(shown.pending.tool, "send_email");
    assert_eq!(shown.pending.user.id, "alice");
    assert_eq!(shown.pending.demanded_by[0].id, "email-requires-approval");
    assert!(shown.pending.arguments["body"]["redacted"].is_string());

    // Decided out of order: each call moves as soon as its own decision lands.
    reviewer
        .decide(
            &id_of(&pending, "sess_q_2"),
            &decision(Verdict::Approve, "carol", GrantScope::Once),
        )
        .unwrap();
    let second = landed(calls[1].take().unwrap()).await;
    assert!(second.is_ok(), "{second:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!calls[0].as_ref().unwrap().is_finished());
    assert!(!calls[2].as_ref().unwrap().is_finished());

    reviewer
        .decide(
            &id_of(&pending, "sess_q_3"),
            &decision(Verdict::Deny, "carol", GrantScope::Once),
        )
        .unwrap();
    let third = landed(calls[2].take().unwrap()).await;
    assert_eq!(
        third,
        Err(ToolCallError::ApprovalDenied("carol looked at it".into()))
    );
    assert!(!calls[0].as_ref().unwrap().is_finished());

    let other_reviewer = ApprovalQueue::open(&path).unwrap();
    other_reviewer
        .decide(
            &id_of(&pending, "sess_q_1"),
            &decision(Verdict::Approve, "carol", GrantScope::Once),
        )
        .unwrap();
    assert!(landed(calls[0].take().unwrap()).await.is_ok());
    assert!(reviewer.pending().unwrap().is_empty());

    for (session, outcome) in [
        ("sess_q_1", "approved"),
        ("sess_q_2", "approved"),
        ("sess_q_3", "denied"),
    ] {
        let record = decision_of(&env, &format!("{session}:1"));
        let a = &record["approval"];
        assert_eq!(a["outcome"], outcome, "{record}");
        assert_eq!(a["reviewer"], "carol");
        assert_eq!(a["reason"], "carol looked at it");
        assert_eq!(a["approval_id"], json!(id_of(&pending, session)));
        assert_eq!(
            a["reviewer_callback"],
            json!(format!("queue:{}", path.display()))
        );
    }
    assert_eq!(env.outbox().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_decision_is_refused_says_why_and_the_call_was_recorded_timed_out() {
    let (env, path, _queue_dir) = env_with_queue(None, Duration::from_millis(500));
    let session = start(&env, "sess_late").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    // Whether or not it is still pending by now: the reviewer is slow.
    let started = Instant::now();
    let id = loop {
        if let Some(a) = reviewer.recent(1).unwrap().pop() {
            break a.pending.approval_id;
        }
        assert!(started.elapsed() < PATIENT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    assert_eq!(landed(call).await, Err(ToolCallError::ApprovalTimedOut));
    let late = reviewer
        .decide(&id, &decision(Verdict::Approve, "carol", GrantScope::Once))
        .unwrap_err();
    assert!(matches!(late, QueueError::PastDeadline { .. }), "{late}");
    let message = late.to_string();
    assert!(
        message.contains(&id)
            && message.contains("decision refused")
            && message.contains("deadline")
            && message.contains("denied as timed out"),
        "{message}"
    );
    let row = reviewer.get(&id).unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Expired);
    assert_eq!(row.reviewer, None);
    assert!(reviewer.pending().unwrap().is_empty());

    let record = decision_of(&env, "sess_late:1");
    assert_eq!(record["decision"]["effect"], "deny");
    assert_eq!(record["approval"]["outcome"], "timed_out");
    assert_eq!(record["approval"]["approval_id"], json!(id));
    assert!(env.outbox().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_the_policy_does_not_allow_cannot_approve() {
    let (env, path, _queue_dir) = env_with_queue(None, Duration::from_secs(2));
    let session = start(&env, "sess_bob").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_bob");
    // The queue takes bob's word down; policy decides whether it counts.
    let taken = reviewer
        .decide(&id, &decision(Verdict::Approve, "bob", GrantScope::Once))
        .unwrap();
    assert_eq!(taken.status, QueueStatus::Approved);

    // It does not: nobody else decides, and the call is denied at the deadline.
    assert_eq!(landed(call).await, Err(ToolCallError::ApprovalTimedOut));
    let record = decision_of(&env, "sess_bob:1");
    assert_eq!(record["decision"]["effect"], "deny");
    assert_eq!(record["approval"]["outcome"], "timed_out");
    assert!(env.outbox().is_empty());
    let refused = env.records_of("approval_refused");
    assert_eq!(refused.len(), 1, "{:?}", env.records());
    let why = refused[0]["detail"]["refused"].as_str().unwrap();
    assert!(
        why.contains("reviewer `bob` may not approve this call")
            && why.contains("only members of the reviewers group may approve"),
        "{why}"
    );
    assert_eq!(
        policy_ids(&refused[0]["detail"]["determining_policies"]),
        ["approver-must-be-reviewer"]
    );
    assert_eq!(refused[0]["detail"]["verdict"], "approve");
    // Bob's tools can tell him.
    let row = reviewer.get(&id).unwrap().unwrap();
    assert_eq!(row.refused.len(), 1);
    assert_eq!(row.refused[0].reviewer, "bob");
    assert_eq!(row.refused[0].why, why);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_queue_fails_closed_and_the_call_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/approvals.sqlite");
    let a_directory = dir.path().join("queue-is-a-dir");
    std::fs::create_dir(&a_directory).unwrap();
    for (n, path) in [missing, a_directory].into_iter().enumerate() {
        let env = Env::builder()
            .reviewer(QueueReviewer::at(&path))
            .approval_timeout(PATIENT)
            .build();
        let session_id = format!("sess_unavailable_{n}");
        let session = start(&env, &session_id).await;
        let started = Instant::now();
        let result = session.call("send_email", &email("bob@example.com")).await;
        // Denied at once, not after the deadline.
        assert!(started.elapsed() < Duration::from_secs(10));
        let Err(ToolCallError::ApprovalDenied(why)) = &result else {
            panic!("{result:?}");
        };
        let shown = path.display().to_string();
        assert!(
            why.contains(&format!("reviewer `queue:{shown}` failed"))
                && why.contains(&format!("cannot open the approvals queue `{shown}`")),
            "{why}"
        );
        let record = decision_of(&env, &format!("{session_id}:1"));
        assert_eq!(record["decision"]["effect"], "deny");
        assert_eq!(record["approval"]["outcome"], "reviewer_failed");
        assert_eq!(record["approval"]["reason"], json!(why));
        assert!(env.outbox().is_empty());
        env.assert_verifies(4);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_grant_is_reused_for_the_same_tool_and_resource_only() {
    let dir = tempfile::tempdir().unwrap();
    let policies = grant_policies(dir.path());
    let (env, path, _queue_dir) = env_with_queue(Some(&policies), PATIENT);
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let session = start(&env, "sess_grant").await;

    let first = spawn_call(&session, "write_summary", summary("doc_88pk3r"));
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_grant");
    reviewer
        .decide(
            &id,
            &decision(Verdict::Approve, "carol", GrantScope::Session),
        )
        .unwrap();
    assert!(landed(first).await.is_ok());
    let original = decision_of(&env, "sess_grant:1");
    assert_eq!(original["approval"]["outcome"], "approved");
    assert_eq!(original["approval"]["scope"], "session");

    // Same tool, same document: no reviewer is asked.
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        session.call("write_summary", &summary("doc_88pk3r")),
    )
    .await
    .expect("a standing grant should not wait for a reviewer");
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(
        reviewer.recent(10).unwrap().len(),
        1,
        "the reviewer was asked again"
    );
    let reused = decision_of(&env, "sess_grant:2");
    assert_eq!(reused["decision"]["effect"], "allow");
    let a = &reused["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "approved_by_grant");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(
        a["grant"],
        json!({"approval_id": id, "reviewer": "carol", "decision_seq": original["seq"]})
    );
    assert_eq!(policy_ids(&a["demanded_by"]), ["summary-requires-approval"]);

    // Another document of alice's: asked again.
    let other_doc = spawn_call(&session, "write_summary", summary("doc_7tq2mw"));
    let pending = wait_pending(&reviewer, 1).await;
    assert_eq!(
        reviewer
            .get(&pending[0].1)
            .unwrap()
            .unwrap()
            .pending
            .resource,
        "Document::\"doc_7tq2mw\""
    );
    reviewer
        .decide(
            &pending[0].1,
            &decision(Verdict::Deny, "carol", GrantScope::Once),
        )
        .unwrap();
    assert!(matches!(
        landed(other_doc).await,
        Err(ToolCallError::ApprovalDenied(_))
    ));

    // Another session, same tool and document: the grant was this session's.
    let elsewhere = start(&env, "sess_grant_other").await;
    let call = spawn_call(&elsewhere, "write_summary", summary("doc_88pk3r"));
    let pending = wait_pending(&reviewer, 1).await;
    assert_eq!(pending[0].0, "sess_grant_other");
    reviewer
        .decide(
            &pending[0].1,
            &decision(Verdict::Deny, "carol", GrantScope::Once),
        )
        .unwrap();
    assert!(landed(call).await.is_err());
    // The audit replay sees the reuse for what it was.
    let candidate = mandate::policy::Policies::load_dir(&policies).unwrap();
    let replay = mandate::pipeline::replay(&env.audit_path, &candidate).unwrap();
    assert_eq!(replay.totals.changed, 0, "{:?}", replay.changes);
    assert_eq!(replay.totals.re_evaluated, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_refusing_standing_grants_forces_a_new_review() {
    // The example email-requires-approval does not count a standing grant.
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let session = start(&env, "sess_email_grant").await;

    let first = spawn_call(&session, "send_email", email("bob@example.com"));
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_email_grant");
    reviewer
        .decide(
            &id,
            &decision(Verdict::Approve, "carol", GrantScope::Session),
        )
        .unwrap();
    assert!(landed(first).await.is_ok());

    // The grant exists, but email-requires-approval refuses it: asked again.
    let second = spawn_call(&session, "send_email", email("eve@example.com"));
    let pending = wait_pending(&reviewer, 1).await;
    assert_ne!(pending[0].1, id);
    assert_eq!(
        reviewer
            .get(&pending[0].1)
            .unwrap()
            .unwrap()
            .pending
            .arguments["to"],
        "eve@example.com"
    );
    reviewer
        .decide(
            &pending[0].1,
            &decision(Verdict::Approve, "carol", GrantScope::Once),
        )
        .unwrap();
    assert!(landed(second).await.is_ok());
    let record = decision_of(&env, "sess_email_grant:2");
    assert_eq!(record["approval"]["outcome"], "approved");
    assert_eq!(record["approval"]["grant"], Value::Null);
    assert_eq!(env.outbox().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_server_restarts_while_calls_wait_and_the_approvals_are_still_there() {
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    // A real agent run waits on the queue.
    let guard = env.guard.clone();
    let run = tokio::spawn(async move {
        scripted_agent()
            .run(
                &guard,
                session_with_id("sess_restart"),
                &json!({"calls": [email_call("hello"), email_call("again")]}).to_string(),
            )
            .await
            .unwrap()
    });
    let server = ApprovalQueue::open(&path).unwrap();
    let before = wait_pending(&server, 1).await;
    // The review server goes away and comes back.
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = ApprovalQueue::open(&path).unwrap();
    let after = wait_pending(&server, 1).await;
    assert_eq!(before, after);
    server
        .decide(
            &after[0].1,
            &decision(Verdict::Approve, "carol", GrantScope::Once),
        )
        .unwrap();
    // The second email waits again; restart once more before deciding it.
    let next = loop {
        let p = wait_pending(&server, 1).await;
        if p[0].1 != after[0].1 {
            break p;
        }
    };
    drop(server);
    let server = ApprovalQueue::open(&path).unwrap();
    assert_eq!(wait_pending(&server, 1).await, next);
    server
        .decide(
            &next[0].1,
            &decision(Verdict::Deny, "carol", GrantScope::Once),
        )
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    let results = common::report_results(&report);
    assert!(results[0]["ok"].is_object(), "{results:?}");
    assert_eq!(
        results[1]["error"],
        json!({"kind": "approval-denied", "message": "carol looked at it"}),
        "{results:?}"
    );
    assert_eq!(env.outbox().len(), 1);
}

// --- The queue trusts nothing it did not write (issue 12, items 12 and 13) ---

/// The uid of `nobody`, the other local user of these tests.
const NOBODY: u32 = 65534;

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `nobody` can read one byte of `file`.
fn nobody_can_read(file: &Path) -> bool {
    std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "head", "-c", "1"])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// What the guard said about the held call, and its decision record.
async fn refused_at_once(env: &Env, session_id: &str) -> (String, Value) {
    let session = start(env, session_id).await;
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        session.call("send_email", &email("bob@example.com")),
    )
    .await
    .expect("the call waited on a queue it should have refused");
    let Err(ToolCallError::ApprovalDenied(why)) = result else {
        panic!("{result:?}");
    };
    let record = decision_of(env, &format!("{session_id}:1"));
    assert_eq!(record["decision"]["effect"], "deny");
    assert_eq!(record["approval"]["outcome"], "reviewer_failed");
    assert!(env.outbox().is_empty());
    (why, record)
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_files_are_private_to_the_user_and_another_user_cannot_read_them() {
    let (env, path, queue_dir) = env_with_queue(None, PATIENT);
    // A directory other users may enter, so that only the files' own modes
    // keep them out.
    set_mode(queue_dir.path(), 0o755);
    let session = start(&env, "sess_private").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_private");

    for file in [
        path.clone(),
        with_suffix(&path, "-wal"),
        with_suffix(&path, "-shm"),
        with_suffix(&path, ".key"),
    ] {
        assert!(file.exists(), "{} is missing", file.display());
        assert_eq!(
            mode_of(&file) & 0o077,
            0,
            "{} is not private",
            file.display()
        );
        // Nor can another user open it, so none can hold a lock on `-shm`
        // that blocks every write.
        assert!(
            !nobody_can_read(&file),
            "nobody can read {}",
            file.display()
        );
    }
    reviewer
        .decide(&id, &decision(Verdict::Approve, "carol", GrantScope::Once))
        .unwrap();
    assert!(landed(call).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_file_another_user_created_is_refused_and_the_call_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("approvals.sqlite");
    // The other user prepared the queue the host will use, readable and
    // writable by all.
    drop(ApprovalQueue::open(&path).unwrap());
    for file in [
        path.clone(),
        with_suffix(&path, "-wal"),
        with_suffix(&path, "-shm"),
    ] {
        if file.exists() {
            std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
            set_mode(&file, 0o666);
        }
    }
    let err = ApprovalQueue::open(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!("`{}`", path.display())) && err.contains("uid 65534"),
        "{err}"
    );

    let env = Env::builder()
        .reviewer(QueueReviewer::at(&path))
        .approval_timeout(Duration::from_secs(3))
        .build();
    let (why, _) = refused_at_once(&env, "sess_foreign").await;
    assert!(why.contains("uid 65534"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_in_a_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let err = ApprovalQueue::open(&shared.join("approvals.sqlite"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("`{}`", shared.display())) && err.contains("writable by other users"),
        "{err}"
    );
    assert!(!shared.join("approvals.sqlite").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_queue_file_or_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let target = elsewhere.join("approvals.sqlite");
    drop(ApprovalQueue::open(&target).unwrap());

    let queue_dir = dir.path().join("queue");
    std::fs::create_dir(&queue_dir).unwrap();
    let link = queue_dir.join("approvals.sqlite");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = ApprovalQueue::open(&link).unwrap_err().to_string();
    assert!(
        err.contains(&format!("`{}`", link.display())) && err.contains("symbolic link"),
        "{err}"
    );

    // A key that points elsewhere is refused too.
    std::fs::remove_file(&link).unwrap();
    let real = queue_dir.join("approvals.sqlite");
    std::fs::write(elsewhere.join("key"), [7u8; 32]).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("key"), with_suffix(&real, ".key")).unwrap();
    let err = ApprovalQueue::open(&real).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_written_into_the_queue_with_sqlite_is_refused_and_recorded() {
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    let session = start(&env, "sess_forged").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_forged");

    // Someone approves in carol's name without mandate's reviewer tools.
    let forged = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg(format!(
            "UPDATE approvals SET status = 'approved', reviewer = 'carol', reason = 'fine', \
             scope = 'once', decided_at = '{}' WHERE approval_id = '{id}'",
            jiff::Timestamp::now()
        ))
        .output()
        .unwrap();
    assert!(forged.status.success(), "{forged:?}");

    let result = landed(call).await;
    let Err(ToolCallError::ApprovalDenied(why)) = &result else {
        panic!("the forged approval was taken: {result:?}");
    };
    assert!(why.contains("unauthenticated_decision"), "{why}");
    let record = decision_of(&env, "sess_forged:1");
    assert_eq!(record["decision"]["effect"], "deny");
    assert_eq!(record["approval"]["outcome"], "reviewer_failed");
    assert!(
        record["approval"]["reason"]
            .as_str()
            .unwrap()
            .contains("unauthenticated_decision"),
        "{record}"
    );
    assert!(env.outbox().is_empty());
    // The reviewer tools show it for what it is, not as carol's approval.
    let row = reviewer.get(&id).unwrap().unwrap();
    assert_ne!(row.status, QueueStatus::Approved);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_the_policy_does_not_allow_does_not_end_the_hold_and_carol_still_approves() {
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    let session = start(&env, "sess_bob_first").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_bob_first");

    // Bob decides first; policy does not accept him as a reviewer.
    reviewer
        .decide(&id, &decision(Verdict::Approve, "bob", GrantScope::Once))
        .unwrap();
    // The host refuses his decision and the call waits on.
    let started = Instant::now();
    loop {
        let row = reviewer.get(&id).unwrap().unwrap();
        if row.status == QueueStatus::Pending {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bob's decision ended the hold: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!call.is_finished());
    // Bob is told: his refused decision stays on the approval with why.
    let row = reviewer.get(&id).unwrap().unwrap();
    assert_eq!(row.refused.len(), 1);
    assert_eq!(row.refused[0].reviewer, "bob");
    assert!(
        row.refused[0]
            .why
            .contains("reviewer `bob` may not approve this call"),
        "{row:?}"
    );

    reviewer
        .decide(&id, &decision(Verdict::Approve, "carol", GrantScope::Once))
        .unwrap();
    assert!(landed(call).await.is_ok());
    // Carol's decision stands and the queue says the host took it.
    let row = reviewer.get(&id).unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Approved);
    assert_eq!(row.reviewer.as_deref(), Some("carol"));
    assert!(row.taken_at.is_some(), "{row:?}");
    let record = decision_of(&env, "sess_bob_first:1");
    assert_eq!(record["approval"]["outcome"], "approved");
    assert_eq!(record["approval"]["reviewer"], "carol");
    assert_eq!(env.outbox().len(), 1);
    // Bob's refused decision is in the log.
    let refused = env.records_of("approval_refused");
    assert_eq!(refused.len(), 1, "{:?}", env.records());
    assert_eq!(refused[0]["call_id"], "sess_bob_first:1");
    assert_eq!(refused[0]["detail"]["approval_id"], json!(id));
    assert_eq!(refused[0]["detail"]["reviewer"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_from_a_reviewer_the_policy_does_not_accept_does_not_end_the_hold() {
    let (env, path, _queue_dir) = env_with_queue(None, PATIENT);
    let session = start(&env, "sess_bob_denies").await;
    let call = spawn_call(&session, "send_email", email("bob@example.com"));
    let reviewer = ApprovalQueue::open(&path).unwrap();
    let id = id_of(&wait_pending(&reviewer, 1).await, "sess_bob_denies");
    reviewer
        .decide(&id, &decision(Verdict::Deny, "bob", GrantScope::Once))
        .unwrap();
    let started = Instant::now();
    while reviewer.get(&id).unwrap().unwrap().status != QueueStatus::Pending {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bob's denial ended the hold"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!call.is_finished());
    reviewer
        .decide(&id, &decision(Verdict::Approve, "carol", GrantScope::Once))
        .unwrap();
    assert!(landed(call).await.is_ok());
    let refused = env.records_of("approval_refused");
    assert_eq!(refused.len(), 1, "{:?}", env.records());
    assert_eq!(refused[0]["detail"]["verdict"], "deny");
    assert_eq!(refused[0]["detail"]["reviewer"], "bob");
    assert_eq!(env.outbox().len(), 1);
}
