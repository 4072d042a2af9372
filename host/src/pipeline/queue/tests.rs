//! Unit tests of the queue file and its refusals.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::pipeline::approval::Reviewer;
use crate::pipeline::session::{AgentRef, Delegate, DelegateKind, UserRef};
use crate::policy::DeterminingPolicy;

fn pending(id: &str, deadline: Timestamp) -> PendingApproval {
    PendingApproval {
        revealed: Default::default(),
        approval_id: id.into(),
        session_id: "s".into(),
        call_id: "s:1".into(),
        tool: "send_email".into(),
        arguments: serde_json::json!({"to": "bob@example.com"}),
        resource: "Tool::\"send_email\"".into(),
        user: UserRef {
            id: "alice".into(),
            email: "alice@example.com".into(),
        },
        agent: AgentRef {
            id: "a".into(),
            name: "A".into(),
            version: "1".into(),
        },
        delegation_chain: vec![Delegate {
            kind: DelegateKind::User,
            id: "alice".into(),
        }],
        demanded_by: vec![DeterminingPolicy {
            id: "email-requires-approval".into(),
            reason: Some("humans review email".into()),
        }],
        deadline,
    }
}

fn in_secs(s: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_secs(s)
}

fn approve(reviewer: &str) -> QueueDecision {
    QueueDecision {
        verdict: Verdict::Approve,
        reviewer: reviewer.into(),
        reason: Some("fine".into()),
        scope: GrantScope::Session,
    }
}

#[test]
fn a_decision_is_seen_by_another_handle_and_stands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let guard_side = ApprovalQueue::open(&path).unwrap();
    let reviewer_side = ApprovalQueue::open(&path).unwrap();
    guard_side.submit(&pending("apr:1", in_secs(60))).unwrap();
    guard_side.submit(&pending("apr:2", in_secs(60))).unwrap();
    let listed: Vec<String> = reviewer_side
        .pending()
        .unwrap()
        .into_iter()
        .map(|a| a.pending.approval_id)
        .collect();
    assert_eq!(listed, ["apr:1", "apr:2"]);

    let decided = reviewer_side.decide("apr:2", &approve("carol")).unwrap();
    assert_eq!(decided.status, QueueStatus::Approved);
    let seen = guard_side.get("apr:2").unwrap().unwrap();
    assert_eq!(seen.status, QueueStatus::Approved);
    assert_eq!(seen.reviewer.as_deref(), Some("carol"));
    assert_eq!(seen.scope, Some(GrantScope::Session));
    assert!(seen.decided_at.is_some());
    assert_eq!(guard_side.pending().unwrap().len(), 1);

    let again = reviewer_side.decide("apr:2", &approve("dave")).unwrap_err();
    assert!(
        matches!(&again, QueueError::AlreadyDecided { status: QueueStatus::Approved, reviewer: Some(r), .. } if r == "carol"),
        "{again}"
    );
    assert_eq!(
        again.to_string(),
        "approval `apr:2` was already approved by `carol`; a decision cannot be changed"
    );
    let unknown = reviewer_side
        .decide("apr:9", &approve("carol"))
        .unwrap_err();
    assert!(matches!(unknown, QueueError::NotFound { .. }), "{unknown}");
    assert!(matches!(
        guard_side.submit(&pending("apr:1", in_secs(60))),
        Err(QueueError::Duplicate { .. })
    ));
    let empty = reviewer_side.decide("apr:1", &approve(" ")).unwrap_err();
    assert!(
        matches!(empty, QueueError::InvalidDecision { .. }),
        "{empty}"
    );
}

#[test]
fn a_decision_after_the_deadline_is_refused_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let queue = ApprovalQueue::open(&dir.path().join("q.sqlite")).unwrap();
    queue.submit(&pending("apr:late", in_secs(-1))).unwrap();
    assert!(queue.pending().unwrap().is_empty());
    assert_eq!(
        queue.get("apr:late").unwrap().unwrap().status,
        QueueStatus::Expired
    );
    let err = queue.decide("apr:late", &approve("carol")).unwrap_err();
    assert!(matches!(err, QueueError::PastDeadline { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("deadline") && text.contains("denied as timed out"),
        "{text}"
    );
    // Marked, so it stays expired and keeps refusing.
    let row = queue.get("apr:late").unwrap().unwrap();
    assert_eq!(row.status, QueueStatus::Expired);
    assert!(row.decided_at.is_some() && row.reviewer.is_none());
    assert!(matches!(
        queue.decide("apr:late", &approve("carol")),
        Err(QueueError::PastDeadline { .. })
    ));
}

#[test]
fn an_unopenable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = ApprovalQueue::open(&dir.path().join("missing/q.sqlite")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("missing/q.sqlite"), "{text}");
    assert!(
        text.starts_with("cannot open the approvals queue"),
        "{text}"
    );
    // A directory given as the queue: refused before SQLite sees it (here
    // already for its parent, `/tmp`, which every user may write).
    let err = ApprovalQueue::open(dir.path()).unwrap_err();
    assert!(matches!(err, QueueError::Unsafe { .. }), "{err}");
    let inner = dir.path().join("queue-is-a-dir");
    std::fs::create_dir(&inner).unwrap();
    let err = ApprovalQueue::open(&inner).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reviewer_waits_for_the_decision_and_expires_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let reviewer = QueueReviewer::new(ApprovalQueue::open(&path).unwrap())
        .poll_interval(Duration::from_millis(5));
    assert_eq!(reviewer.name(), format!("queue:{}", path.display()));
    let other = ApprovalQueue::open(&path).unwrap();
    let deciding = tokio::spawn(async move {
        loop {
            if other.get("apr:w").unwrap().is_some() {
                break other.decide("apr:w", &approve("carol")).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let p = pending("apr:w", in_secs(30));
    let d = reviewer.review(&p).await.unwrap();
    assert_eq!(d.decision, Verdict::Approve);
    assert_eq!(d.reviewer, "carol");
    assert_eq!(d.scope, GrantScope::Session);
    deciding.await.unwrap();

    // A guard's deadline drops the future: the approval is expired, not left pending.
    let p = pending("apr:t", in_secs(30));
    let waited = tokio::time::timeout(Duration::from_millis(100), reviewer.review(&p)).await;
    assert!(waited.is_err());
    let queue = ApprovalQueue::open(reviewer.path()).unwrap();
    for _ in 0..200 {
        if queue.get("apr:t").unwrap().unwrap().status == QueueStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        queue.get("apr:t").unwrap().unwrap().status,
        QueueStatus::Expired
    );
    assert!(matches!(
        queue.decide("apr:t", &approve("carol")),
        Err(QueueError::PastDeadline { .. })
    ));
}

#[test]
fn json_has_the_shape_the_review_page_reads() {
    let dir = tempfile::tempdir().unwrap();
    let queue = ApprovalQueue::open(&dir.path().join("q.sqlite")).unwrap();
    queue.submit(&pending("apr:j", in_secs(60))).unwrap();
    let v = serde_json::to_value(queue.get("apr:j").unwrap().unwrap()).unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["pending"]["approval_id"], "apr:j");
    assert_eq!(v["scope"], serde_json::Value::Null);
    let d: QueueDecision =
        serde_json::from_str(r#"{"verdict":"approve","reviewer":"carol","scope":"session"}"#)
            .unwrap();
    assert_eq!(d.scope, GrantScope::Session);
}

#[test]
fn a_decision_copied_onto_another_approval_does_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let queue = ApprovalQueue::open(&path).unwrap();
    queue.submit(&pending("apr:a", in_secs(60))).unwrap();
    queue.submit(&pending("apr:b", in_secs(60))).unwrap();
    queue.decide("apr:a", &approve("carol")).unwrap();
    assert_eq!(
        queue.get("apr:a").unwrap().unwrap().status,
        QueueStatus::Approved
    );
    // Every decision column of carol's approval of `apr:a`, MAC included,
    // copied onto `apr:b`.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE approvals SET (status, decided_at, reviewer, reason, scope, mac) =
             (SELECT status, decided_at, reviewer, reason, scope, mac FROM approvals
              WHERE approval_id = 'apr:a')
         WHERE approval_id = 'apr:b'",
        [],
    )
    .unwrap();
    let b = queue.get("apr:b").unwrap().unwrap();
    assert_eq!(b.status, QueueStatus::Unauthenticated);
    assert_eq!(
        queue.get("apr:a").unwrap().unwrap().status,
        QueueStatus::Approved
    );
    // A decision cannot be made on it either: it reads as decided.
    assert!(queue.decide("apr:b", &approve("carol")).is_err());
}
