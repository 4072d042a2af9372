#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The approvals queue on the fleet's PostgreSQL: hosts hold calls in one
//! queue, reviewers decide them from their own logins, exactly one decision
//! lands, the waiting host hears of it by `NOTIFY` at once, a host that
//! loses the database keeps waiting, and the database itself enforces who
//! may do what.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::{DATABASE, Postgres};
use common::{Env, mandate_binary, session_with_id};
use mandate::pipeline::queue::{GrantScope, QueueDecision, QueueError, QueueStatus};
use mandate::pipeline::{SessionGuard, ToolCallError, Verdict};
use mandate_fleet::queue::{PgApprovalQueue, PgQueueReviewer};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Long enough that no test here times out by accident.
const PATIENT: Duration = Duration::from_secs(60);

/// A migrated database with two hosts, two reviewers (carol, whom the
/// example policies accept, and dave, whom they do not) and a login in no
/// group at all.
async fn fleet() -> Postgres {
    let postgres = Postgres::start_migrated().await;
    postgres.psql(
        "CREATE ROLE host1 LOGIN IN ROLE mandate_host; \
         CREATE ROLE host2 LOGIN IN ROLE mandate_host; \
         CREATE ROLE carol LOGIN IN ROLE mandate_reviewer; \
         CREATE ROLE dave LOGIN IN ROLE mandate_reviewer; \
         CREATE ROLE nobody LOGIN",
        DATABASE,
    );
    postgres
}

async fn login(postgres: &Postgres, role: &str) -> PgApprovalQueue {
    PgApprovalQueue::connect(&postgres.url_for(role, DATABASE))
        .await
        .unwrap()
}

/// A guard whose held calls wait in the database as `host`.
fn host_env(postgres: &Postgres, host: &str, timeout: Duration) -> (Env, PgQueueReviewer) {
    let queue = PgApprovalQueue::open(&postgres.url_for(host, DATABASE)).unwrap();
    let reviewer = PgQueueReviewer::new(queue);
    let env = Env::builder()
        .reviewer(reviewer.clone())
        .approval_timeout(timeout)
        .build();
    (env, reviewer)
}

fn email(to: &str) -> String {
    json!({"to": to, "subject": "Q3 notes", "body": "see attached"}).to_string()
}

fn decision(verdict: Verdict, reviewer: &str) -> QueueDecision {
    QueueDecision {
        verdict,
        reviewer: reviewer.into(),
        reason: Some(format!("{reviewer} looked at it")),
        scope: GrantScope::Once,
    }
}

type Call = JoinHandle<Result<String, ToolCallError>>;

async fn start(env: &Env, session_id: &str) -> Arc<SessionGuard> {
    Arc::new(
        env.guard
            .start_session(session_with_id(session_id), None)
            .await
            .unwrap(),
    )
}

fn spawn_email(session: &Arc<SessionGuard>) -> Call {
    let session = Arc::clone(session);
    tokio::spawn(async move { session.call("send_email", &email("bob@example.com")).await })
}

/// Waits until `queue` lists the approval of `session_id`, and returns its id.
async fn held(queue: &PgApprovalQueue, session_id: &str) -> String {
    let started = Instant::now();
    loop {
        let pending = queue.pending().await.unwrap();
        if let Some(a) = pending.iter().find(|a| a.pending.session_id == session_id) {
            return a.pending.approval_id.clone();
        }
        assert!(started.elapsed() < PATIENT, "{session_id} is not held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The decision record of `call_id`.
fn decision_of(env: &Env, call_id: &str) -> Value {
    env.records_of("decision")
        .into_iter()
        .find(|r| r["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no decision record for {call_id}"))
}

/// Awaits a call that should now finish promptly.
async fn landed(call: Call) -> Result<String, ToolCallError> {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call did not proceed after its decision landed")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_approved_through_the_database_proceeds_and_a_denied_one_is_refused() {
    let postgres = fleet().await;
    let (env, host) = host_env(&postgres, "host1", PATIENT);
    let carol = login(&postgres, "carol").await;
    let approved = start(&env, "sess_pg_1").await;
    let denied = start(&env, "sess_pg_2").await;
    let first = spawn_email(&approved);
    let second = spawn_email(&denied);

    let id = held(&carol, "sess_pg_1").await;
    let shown = carol.get(&id).await.unwrap().unwrap();
    assert_eq!(shown.status, QueueStatus::Pending);
    assert_eq!(shown.pending.tool, "send_email");
    assert_eq!(shown.pending.user.id, "alice");
    assert_eq!(shown.pending.demanded_by[0].id, "email-requires-approval");
    assert!(shown.pending.arguments["body"]["redacted"].is_string());

    let decided = carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap();
    assert_eq!(decided.status, QueueStatus::Approved);
    assert!(landed(first).await.is_ok());

    let other = held(&carol, "sess_pg_2").await;
    carol
        .decide(&other, &decision(Verdict::Deny, "carol"))
        .await
        .unwrap();
    assert_eq!(
        landed(second).await,
        Err(ToolCallError::ApprovalDenied("carol looked at it".into()))
    );

    for (session, outcome, approval_id) in [
        ("sess_pg_1", "approved", &id),
        ("sess_pg_2", "denied", &other),
    ] {
        let record = decision_of(&env, &format!("{session}:1"));
        let a = &record["approval"];
        assert_eq!(a["outcome"], outcome, "{record}");
        assert_eq!(a["reviewer"], "carol");
        assert_eq!(a["approval_id"], json!(approval_id));
        assert_eq!(
            a["reviewer_callback"],
            json!(format!("queue:{}", postgres.url_for("host1", DATABASE)))
        );
    }
    assert_eq!(env.outbox().len(), 1);
    // The host took both decisions; the reviewer's tools can say so.
    let started = Instant::now();
    while carol.get(&id).await.unwrap().unwrap().taken_at.is_none() {
        assert!(started.elapsed() < PATIENT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(carol.pending().await.unwrap().is_empty());
    assert_eq!(host.queue().recent(10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_reviewers_deciding_at_once_exactly_one_lands() {
    let postgres = fleet().await;
    let (env, _host) = host_env(&postgres, "host1", PATIENT);
    let carol = login(&postgres, "carol").await;
    // Another session of carol's (the review page, a second terminal).
    let carol_again = login(&postgres, "carol").await;
    for round in 0..5 {
        let session_id = format!("sess_race_{round}");
        let session = start(&env, &session_id).await;
        let call = spawn_email(&session);
        let id = held(&carol, &session_id).await;
        let (approve, deny) = (
            decision(Verdict::Approve, "carol"),
            decision(Verdict::Deny, "carol"),
        );
        let (a, b) = tokio::join!(carol.decide(&id, &approve), carol_again.decide(&id, &deny),);
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) => (won, lost),
            (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: not exactly one decision landed: {other:?}"),
        };
        let QueueError::AlreadyDecided {
            id: refused,
            status,
            reviewer,
        } = &lost
        else {
            panic!("round {round}: {lost}");
        };
        assert_eq!((refused, *status), (&id, won.status));
        assert_eq!(reviewer.as_deref(), Some("carol"));
        // The call follows the decision that landed, and only it.
        let result = landed(call).await;
        match won.status {
            QueueStatus::Approved => assert!(result.is_ok(), "{result:?}"),
            _ => assert_eq!(
                result,
                Err(ToolCallError::ApprovalDenied("carol looked at it".into()))
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_past_the_deadline_is_refused_and_the_call_times_out() {
    let postgres = fleet().await;
    let (env, _host) = host_env(&postgres, "host1", Duration::from_millis(800));
    let carol = login(&postgres, "carol").await;
    let session = start(&env, "sess_pg_late").await;
    let call = spawn_email(&session);
    let id = held(&carol, "sess_pg_late").await;

    assert_eq!(landed(call).await, Err(ToolCallError::ApprovalTimedOut));
    let late = carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap_err();
    let QueueError::PastDeadline { id: refused, .. } = &late else {
        panic!("{late}");
    };
    assert_eq!(refused, &id);
    assert!(late.to_string().contains("denied as timed out"), "{late}");
    let row = carol.get(&id).await.unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Expired);
    assert_eq!(row.reviewer, None);
    let record = decision_of(&env, "sess_pg_late:1");
    assert_eq!(record["decision"]["effect"], "deny");
    assert_eq!(record["approval"]["outcome"], "timed_out");
    assert!(env.outbox().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_wakes_on_the_notification_not_by_polling() {
    let postgres = fleet().await;
    // No second look for an hour: only the notification can wake the call.
    let queue = PgApprovalQueue::open(&postgres.url_for("host1", DATABASE)).unwrap();
    let reviewer = PgQueueReviewer::new(queue).recheck_every(Duration::from_secs(3600));
    let env = Env::builder()
        .reviewer(reviewer)
        .approval_timeout(PATIENT)
        .build();
    let carol = login(&postgres, "carol").await;
    let mut waits = Vec::new();
    for round in 0..7 {
        let session_id = format!("sess_wake_{round}");
        let session = start(&env, &session_id).await;
        let call = spawn_email(&session);
        let id = held(&carol, &session_id).await;
        // Settled into waiting for its notification.
        tokio::time::sleep(Duration::from_millis(50)).await;
        carol
            .decide(&id, &decision(Verdict::Approve, "carol"))
            .await
            .unwrap();
        let decided = Instant::now();
        assert!(landed(call).await.is_ok());
        waits.push(decided.elapsed());
    }
    waits.sort();
    eprintln!("decided -> call proceeds: {waits:?}");
    // The file queue looked every 50 ms; the median here, which includes the
    // guard's third evaluation and its durable records, is far below.
    assert!(
        waits[waits.len() / 2] < Duration::from_millis(40),
        "{waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_enforces_who_may_submit_read_and_decide() {
    let postgres = fleet().await;
    let (env, host) = host_env(&postgres, "host1", PATIENT);
    let carol = login(&postgres, "carol").await;
    let host2 = login(&postgres, "host2").await;
    let session = start(&env, "sess_grants").await;
    let call = spawn_email(&session);
    let id = held(&carol, "sess_grants").await;
    let refused = |result: Result<String, String>, because: &str| {
        let error = result.expect_err("the statement was allowed");
        assert!(error.contains(because), "{error}");
    };

    // A host cannot decide, not even its own call.
    let by_host = host
        .queue()
        .decide(&id, &decision(Verdict::Approve, "host1"))
        .await
        .unwrap_err();
    assert!(
        by_host
            .to_string()
            .contains("permission denied for function mandate_decide"),
        "{by_host}"
    );
    for role in ["host1", "nobody"] {
        refused(
            postgres.psql_as(
                role,
                &format!("SELECT mandate_decide('{id}', 'approve', NULL, 'once')"),
                DATABASE,
            ),
            "permission denied for function mandate_decide",
        );
    }
    // Nobody writes a row directly: reviewers, hosts and the rest.
    for role in ["carol", "host1", "host2", "nobody"] {
        for sql in [
            "UPDATE approvals SET status = 'approved', reviewer = 'carol', decided_by = 'carol', \
             scope = 'once', decided_at = now()"
                .to_string(),
            "DELETE FROM approvals".to_string(),
        ] {
            refused(postgres.psql_as(role, &sql, DATABASE), "permission denied");
        }
    }
    // A host names nothing but the call: not its host, not a decision.
    refused(
        postgres.psql_as(
            "host2",
            "INSERT INTO approvals (approval_id, pending, deadline, host_id) \
             VALUES ('x', '{\"approval_id\": \"x\"}', now() + interval '1 hour', 'host1')",
            DATABASE,
        ),
        "permission denied",
    );
    refused(
        postgres.psql_as(
            "host2",
            "INSERT INTO approvals (approval_id, pending, deadline, status) \
             VALUES ('x', '{\"approval_id\": \"x\"}', now() + interval '1 hour', 'approved')",
            DATABASE,
        ),
        "permission denied",
    );
    // A reviewer cannot submit, and the host functions are not theirs.
    refused(
        postgres.psql_as("carol", &format!("SELECT mandate_expire('{id}')"), DATABASE),
        "permission denied for function mandate_expire",
    );
    // Another host neither sees the call nor closes or reopens it.
    assert!(host2.pending().await.unwrap().is_empty());
    assert!(host2.get(&id).await.unwrap().is_none());
    assert!(host2.expire(&id).await.unwrap().is_none());
    let reopen = host2.reopen(&id, "carol", "no").await.unwrap_err();
    assert!(matches!(reopen, QueueError::NotFound { .. }), "{reopen}");
    assert_eq!(
        postgres
            .psql_as("host2", "SELECT count(*) FROM approvals", DATABASE)
            .unwrap(),
        "0"
    );
    // A reviewer decides only as their own login.
    let as_dave = carol
        .decide(&id, &decision(Verdict::Approve, "dave"))
        .await
        .unwrap_err();
    let QueueError::InvalidDecision { message, .. } = &as_dave else {
        panic!("{as_dave}");
    };
    assert!(
        message.contains("the database login `carol` may not decide as `dave`")
            && message.contains("log in as `dave`"),
        "{message}"
    );
    // Unknown approvals are said as such.
    let unknown = carol
        .decide("apr:nope", &decision(Verdict::Approve, "carol"))
        .await
        .unwrap_err();
    assert!(matches!(unknown, QueueError::NotFound { .. }), "{unknown}");

    // Through all of it the call stayed pending; carol's own decision lands.
    assert_eq!(
        carol.get(&id).await.unwrap().unwrap().status,
        QueueStatus::Pending
    );
    let decided = carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap();
    assert_eq!(decided.reviewer.as_deref(), Some("carol"));
    assert!(landed(call).await.is_ok());
    assert_eq!(
        postgres.psql(
            &format!("SELECT reviewer, decided_by FROM approvals WHERE approval_id = '{id}'"),
            DATABASE
        ),
        "carol|carol"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_policy_does_not_accept_is_refused_and_the_call_waits_for_another() {
    let postgres = fleet().await;
    let (env, _host) = host_env(&postgres, "host1", PATIENT);
    let carol = login(&postgres, "carol").await;
    let dave = login(&postgres, "dave").await;
    let session = start(&env, "sess_dave").await;
    let call = spawn_email(&session);
    let id = held(&dave, "sess_dave").await;

    // The database takes dave's decision; the host's policy does not.
    dave.decide(&id, &decision(Verdict::Approve, "dave"))
        .await
        .unwrap();
    let started = Instant::now();
    let reopened = loop {
        let row = dave.get(&id).await.unwrap().unwrap();
        if row.status == QueueStatus::Pending {
            break row;
        }
        assert!(started.elapsed() < PATIENT, "never reopened: {row:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(reopened.refused.len(), 1);
    assert_eq!(reopened.refused[0].reviewer, "dave");
    assert!(
        reopened.refused[0]
            .why
            .contains("reviewer `dave` may not approve this call"),
        "{:?}",
        reopened.refused
    );
    assert!(!call.is_finished());

    carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap();
    assert!(landed(call).await.is_ok());
    let record = decision_of(&env, "sess_dave:1");
    assert_eq!(record["approval"]["reviewer"], "carol");
    assert_eq!(env.records_of("approval_refused").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_made_while_the_host_was_cut_off_reaches_it_after_the_database_returns() {
    let mut postgres = fleet().await;
    let (env, _host) = host_env(&postgres, "host1", PATIENT);
    let session = start(&env, "sess_outage").await;
    let call = spawn_email(&session);
    {
        let carol = login(&postgres, "carol").await;
        held(&carol, "sess_outage").await;
    }

    // Every connection is cut, the host's included; the call keeps waiting.
    postgres.stop();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!call.is_finished());
    postgres.resume();

    let carol = login(&postgres, "carol").await;
    let id = held(&carol, "sess_outage").await;
    carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap();
    assert!(landed(call).await.is_ok());
    let record = decision_of(&env, "sess_outage:1");
    assert_eq!(record["approval"]["outcome"], "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_stays_away_times_the_call_out_cleanly() {
    let mut postgres = fleet().await;
    let (env, _host) = host_env(&postgres, "host1", Duration::from_secs(2));
    let session = start(&env, "sess_gone").await;
    let call = spawn_email(&session);
    let id = {
        let carol = login(&postgres, "carol").await;
        held(&carol, "sess_gone").await
    };
    postgres.stop();
    assert_eq!(landed(call).await, Err(ToolCallError::ApprovalTimedOut));
    let record = decision_of(&env, "sess_gone:1");
    assert_eq!(record["approval"]["outcome"], "timed_out");
    assert!(env.outbox().is_empty());

    // Back, nothing can be decided any more.
    postgres.resume();
    let carol = login(&postgres, "carol").await;
    let late = carol
        .decide(&id, &decision(Verdict::Approve, "carol"))
        .await
        .unwrap_err();
    assert!(matches!(late, QueueError::PastDeadline { .. }), "{late}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_denies_the_call_at_once_and_never_shows_the_password() {
    let mut postgres = fleet().await;
    postgres.stop();
    let url = postgres
        .url_for("host1", DATABASE)
        .replace("host1@", "host1:s3cret@");
    let reviewer = PgQueueReviewer::new(PgApprovalQueue::open(&url).unwrap());
    let env = Env::builder()
        .reviewer(reviewer)
        .approval_timeout(PATIENT)
        .build();
    let session = start(&env, "sess_unreachable").await;
    let started = Instant::now();
    let result = session.call("send_email", &email("bob@example.com")).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let Err(ToolCallError::ApprovalDenied(why)) = &result else {
        panic!("{result:?}");
    };
    let shown = postgres.url_for("host1", DATABASE);
    assert!(
        why.contains(&format!("reviewer `queue:{shown}` failed"))
            && why.contains("cannot connect to the database"),
        "{why}"
    );
    let record = decision_of(&env, "sess_unreachable:1");
    assert_eq!(record["approval"]["outcome"], "reviewer_failed");
    let log = common::log_text(&env.audit_path);
    assert!(!log.contains("s3cret") && !why.contains("s3cret"));
    assert!(env.outbox().is_empty());
    postgres.resume();
}

/// `mandate run --approver queue:postgresql://...` holds the example
/// agent's email in the database; `mandate approvals list` and `approve
/// --queue postgresql://...` see and decide it from a reviewer's login.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_an_agent_against_the_database_queue_and_a_reviewer_approves_from_it() {
    let postgres = fleet().await;
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    std::fs::copy(
        common::example_workspace().join("documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .unwrap();
    let host_url = postgres.url_for("host1", DATABASE);
    let carol_url = postgres.url_for("carol", DATABASE);
    let run = Command::new(mandate_binary())
        .arg("run")
        .arg("--agent")
        .arg(mandate_tests::DOCUMENT_SUMMARIZER)
        .arg("--policies")
        .arg(common::policies_dir())
        .arg("--session")
        .arg(common::policies_dir().join("session.json"))
        .arg("--audit")
        .arg(dir.path().join("audit"))
        .arg("--workspace")
        .arg(&workspace)
        .args(["--approver", &format!("queue:{host_url}")])
        .arg("summarize doc_88pk3r and share it with bob@example.com")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let cli = |args: &[&str]| {
        let output = Command::new(mandate_binary())
            .arg("approvals")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let started = Instant::now();
    let id = loop {
        let (code, out, err) = cli(&["list", "--queue", &carol_url, "--format", "json"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(first) = listed.as_array().and_then(|a| a.first()) {
            break first["pending"]["approval_id"]
                .as_str()
                .unwrap()
                .to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "nothing held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (code, out, err) = cli(&["list", "--queue", &carol_url]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("send_email") && out.contains("1 pending approval"),
        "{out}"
    );

    // Carol's login decides only as carol.
    let (code, _, err) = cli(&["approve", &id, "--reviewer", "dave", "--queue", &carol_url]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("may not decide as `dave`"), "{err}");
    let (code, out, err) = cli(&["approve", &id, "--reviewer", "carol", "--queue", &carol_url]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("approved {id} as carol")), "{out}");

    let output = tokio::task::spawn_blocking(move || run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("send_email bob@example.com: allowed"),
        "{stdout}"
    );
    let (code, out, _) = cli(&["show", &id, "--queue", &carol_url]);
    assert_eq!(code, Some(0));
    assert!(out.contains("decided    approved by carol"), "{out}");
    // A second decision is refused, and says by whom the first was made.
    let (code, _, err) = cli(&["deny", &id, "--reviewer", "carol", "--queue", &carol_url]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already approved by `carol`"), "{err}");
}
