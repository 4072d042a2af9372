//! Replaying hand-written decision records against the example policies:
//! the record shapes the guard writes, old ones without a request, and
//! damaged ones.

use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn example_policies() -> Policies {
    Policies::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
}

fn datetime(text: &str) -> Value {
    json!({"__extn": {"fn": "datetime", "arg": text}})
}

/// A decision record as the guard writes it, for alice's summarizer.
fn decision(tool: &str, resource: &str, arguments: Value, effect: &str, approval: Value) -> Value {
    json!({
        "seq": 3,
        "kind": "decision",
        "session_id": "s1",
        "user": {"id": "alice"},
        "agent": {"id": "document-summarizer"},
        "call_id": "s1:1",
        "action": {"type": "tool_call", "tool": tool, "arguments": arguments, "resource": resource},
        "decision": {
            "effect": effect,
            "decided_by": "policy",
            "determining_policies": [],
            "errors": [],
            "policy_digest": "d",
            "request": {
                "principal": "Agent::\"document-summarizer\"",
                "action": format!("Action::\"{tool}\""),
                "resource": resource,
                "context": {
                    "session": {
                        "id": "s1",
                        "scopes": ["documents:read", "documents:write", "email:send"],
                        "type": "human_approved",
                        "expires_at": datetime("2099-01-01T00:00:00.000Z"),
                    },
                    "user": {"__entity": {"type": "User", "id": "alice"}},
                    "delegation": {"chain": ["user:alice", "agent:document-summarizer"], "depth": 2},
                    "now": datetime("2026-11-26T09:00:00.000Z"),
                },
            },
        },
        "approval": approval,
    })
}

fn read_own(effect: &str) -> Value {
    decision(
        "read_document",
        "Document::\"doc_88pk3r\"",
        json!({"document_id": "doc_88pk3r"}),
        effect,
        json!({"required": false, "outcome": "not_required"}),
    )
}

/// A `send_email` whose body is a commitment, reviewed with `outcome`.
fn email(effect: &str, outcome: &str, reviewer: Option<&str>) -> Value {
    let mut approval = json!({"required": true, "outcome": outcome});
    if let Some(r) = reviewer {
        approval["reviewer"] = json!(r);
    }
    decision(
        "send_email",
        "Tool::\"send_email\"",
        json!({
            "to": "bob@example.com",
            "subject": "s",
            "body": {"redacted": format!("sha256:{}", "0".repeat(64)), "key_id": "k"},
        }),
        effect,
        approval,
    )
}

/// Replays `record` (a decision record as JSON) through the record types.
fn replay_json(replayer: &Replayer<'_>, record: &Value) -> Option<Replayed> {
    replayer
        .replay_line(&serde_json::to_vec(record).unwrap())
        .unwrap()
}

fn changed(replayed: Option<Replayed>) -> ReplayChange {
    match replayed {
        Some(Replayed::Changed(c)) => *c,
        other => panic!("not a change: {other:?}"),
    }
}

fn not_replayable(replayed: Option<Replayed>) -> NotReplayableReason {
    match replayed {
        Some(Replayed::NotReplayable(n)) => n.reason,
        other => panic!("replayable: {other:?}"),
    }
}

#[test]
fn a_recorded_decision_that_the_policies_repeat_is_unchanged() {
    let policies = example_policies();
    let replayer = Replayer::new(&policies);
    assert_eq!(
        replay_json(&replayer, &read_own("allow")),
        Some(Replayed::Unchanged)
    );
    let change = changed(replay_json(&replayer, &read_own("deny")));
    assert_eq!(change.call.seq, 3);
    assert_eq!(change.call.tool, "read_document");
    assert_eq!(change.new.effect, ReplayEffect::Allow);
    assert_eq!(change.new.determining_policies, ["scope-documents-read"]);
}

#[test]
fn the_recorded_human_answer_is_reused_when_the_candidate_asks_for_one() {
    let policies = example_policies();
    let replayer = Replayer::new(&policies);
    // No policy reads the redacted body, so these replay without it.
    for (effect, outcome, reviewer) in [
        ("allow", "approved", Some("carol")),
        ("deny", "denied", Some("carol")),
        ("deny", "timed_out", None),
        ("deny", "reviewer_failed", None),
        ("deny", "reviewer_not_allowed", Some("bob")),
    ] {
        let record = email(effect, outcome, reviewer);
        assert_eq!(
            replay_json(&replayer, &record),
            Some(Replayed::Unchanged),
            "{outcome}"
        );
    }
    // carol's approval was accepted; bob's is not, whatever the log says.
    let change = changed(replay_json(
        &replayer,
        &email("allow", "approved", Some("bob")),
    ));
    assert_eq!(change.new.effect, ReplayEffect::Deny);
    assert!(change.new.approval_required);
    assert_eq!(change.new.reviewer.as_deref(), Some("bob"));
    assert_eq!(
        change.new.determining_policies,
        ["approver-must-be-reviewer"]
    );
}

#[test]
fn a_reused_standing_grant_replays_with_the_standing_state() {
    let record = email("allow", "approved_by_grant", Some("carol"));
    // The example policies do not count a standing grant for email: a
    // reviewer would have been asked again, so the call is held.
    let policies = example_policies();
    let change = changed(replay_json(&Replayer::new(&policies), &record));
    assert_eq!(change.new.effect, ReplayEffect::Held);
    assert_eq!(change.new.reviewer.as_deref(), Some("carol"));
    assert!(
        change
            .new
            .message
            .as_deref()
            .is_some_and(|m| m.contains("standing grant of `carol` is not accepted")),
        "{:?}",
        change.new.message
    );

    // A candidate that accepts standing grants for email repeats the allow.
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let approval = dir.path().join("approval.cedar");
    let text = std::fs::read_to_string(&approval).unwrap();
    let accepting = text.replace(
        "context.approval.granted && !context.approval.standing",
        "context.approval.granted",
    );
    assert_ne!(text, accepting);
    std::fs::write(&approval, accepting).unwrap();
    let candidate = Policies::load_dir(dir.path()).unwrap();
    assert_eq!(
        replay_json(&Replayer::new(&candidate), &record),
        Some(Replayed::Unchanged)
    );
}

#[test]
fn a_call_nobody_was_asked_about_is_held() {
    let policies = example_policies();
    let replayer = Replayer::new(&policies);
    // Recorded when email needed no approval.
    let mut record = email("allow", "not_required", None);
    record["approval"]["required"] = json!(false);
    let change = changed(replay_json(&replayer, &record));
    assert_eq!(change.new.effect, ReplayEffect::Held);
    assert!(change.new.approval_required);
    assert_eq!(change.new.demanded_by, ["email-requires-approval"]);
}

#[test]
fn records_that_cannot_be_replayed_say_why() {
    let policies = example_policies();
    let replayer = Replayer::new(&policies);
    let mut old = read_own("allow");
    old["decision"].as_object_mut().unwrap().remove("request");
    assert_eq!(
        not_replayable(replay_json(&replayer, &old)),
        NotReplayableReason::NoRequest
    );
    let mut bad = read_own("allow");
    bad["decision"]["request"]["principal"] = json!("not an entity");
    assert!(matches!(
        not_replayable(replay_json(&replayer, &bad)),
        NotReplayableReason::Malformed { message } if message.contains("principal")
    ));
    let mut refused = read_own("deny");
    refused["decision"]["decided_by"] = json!("unknown_tool");
    assert_eq!(
        replay_json(&replayer, &refused),
        Some(Replayed::RefusedBeforePolicy)
    );
    assert_eq!(replay_json(&replayer, &json!({"kind": "outcome"})), None);
}

#[test]
fn a_log_is_replayed_record_by_record_and_a_damaged_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let log = crate::audit::AuditLog::open(&path).unwrap();
    for record in [
        read_own("allow"),
        read_own("deny"),
        email("allow", "approved", Some("carol")),
        json!({"kind": "session_end"}),
    ] {
        let mut body = record;
        body.as_object_mut().unwrap().remove("seq");
        log.append(&body).unwrap();
    }
    drop(log);
    let policies = example_policies();
    let report = replay(&path, &policies).unwrap();
    assert_eq!(report.candidate_digest, policies.digest());
    assert_eq!(
        report.totals,
        ReplayTotals {
            decisions: 3,
            re_evaluated: 3,
            unchanged: 2,
            changed: 1,
            not_replayable: 0,
            refused_before_policy: 0,
        }
    );
    // log_start is seq 1, so the recorded deny is seq 3.
    assert_eq!(report.changes[0].call.seq, 3);

    let segment = crate::audit::list_segments(&path).unwrap().remove(0).path;
    let mut text = std::fs::read_to_string(&segment).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&segment, text).unwrap();
    let err = replay(&path, &policies).unwrap_err();
    assert!(matches!(err, ReplayError::NotJson { line: 6, .. }), "{err}");
}

/// The example policies with `extra` added as `extra.cedar`.
fn candidate_with(extra: &str) -> (tempfile::TempDir, Policies) {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("extra.cedar"), extra).unwrap();
    let policies = Policies::load_dir(dir.path()).unwrap();
    (dir, policies)
}

#[test]
fn only_the_redacted_arguments_a_policy_reads_are_named() {
    // Both the subject and the body are commitments here.
    let mut record = email("allow", "approved", Some("carol"));
    record["action"]["arguments"]["subject"] = record["action"]["arguments"]["body"].clone();

    let (_dir, reads_body) = candidate_with(
        r#"@id("reads-body") forbid (principal, action == Action::"send_email", resource)
           when { context.arguments.body like "*merger*" };"#,
    );
    assert_eq!(
        not_replayable(replay_json(&Replayer::new(&reads_body), &record)),
        NotReplayableReason::RedactedArguments {
            paths: vec!["arguments.body".into()],
            policies: vec!["reads-body".into()],
        }
    );

    let (_dir, reads_all) = candidate_with(
        r#"@id("reads-all") forbid (principal, action == Action::"send_email", resource)
           when { context.arguments == {"to": "x", "subject": "s", "body": "b"} };"#,
    );
    assert_eq!(
        not_replayable(replay_json(&Replayer::new(&reads_all), &record)),
        NotReplayableReason::RedactedArguments {
            paths: vec!["arguments.subject".into(), "arguments.body".into()],
            policies: vec!["reads-all".into()],
        }
    );

    // Presence is known, so a presence test replays.
    let (_dir, presence) = candidate_with(
        r#"@id("needs-body") forbid (principal, action == Action::"send_email", resource)
           unless { context.arguments has body };"#,
    );
    assert_eq!(
        replay_json(&Replayer::new(&presence), &record),
        Some(Replayed::Unchanged)
    );
}
