//! The record types read back what they write, field for field, in both forms; records that
//! lack what older or hand-made records lack read as absent.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::*;
use crate::chain::{BodyFields, check_body_keys};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn identity() -> Identity {
    Identity {
        session_id: "s".into(),
        trace_id: "t".into(),
        user: Arc::new(User {
            id: "alice".into(),
            email: "alice@example.com".into(),
        }),
        agent: Arc::new(Agent {
            id: "summarizer".into(),
            name: "Summarizer".into(),
            version: "1".into(),
            component_digest: Some("00".repeat(32)),
        }),
        authorization: Arc::new(Authorization {
            scopes: vec!["email:send".into()],
            session_type: SessionType::HumanApproved,
            expires_at: at(4_000_000_000),
            approved_by: Some("carol".into()),
            approved_at: Some(at(1_700_000_000)),
        }),
        delegation_chain: vec!["user:alice".to_string(), "agent:summarizer".into()].into(),
    }
}

fn truncated() -> Option<Truncated> {
    Some(Truncated::of("the whole text"))
}

/// A record of `kind` with every optional part present.
fn everything(kind: RecordKind) -> Record {
    let mut session = Map::new();
    session.insert(
        "user".into(),
        json!({"__entity": {"type": "User", "id": "alice"}}),
    );
    let mut record = Record::new(kind, &identity());
    record.call_id = Some("s:1".into());
    record.action = Some(ActionRecord {
        kind: ActionKind::ToolCall,
        tool: "send_email".into(),
        tool_truncated: truncated(),
        scope: Some("email:send".into()),
        // Keys that the log reserves, inside a part, are the part's own.
        arguments: json!({"seq": 1, "hash": "x", "body": {"redacted": "sha256:00"}}),
        resource: Some("Tool::\"send_email\"".into()),
    });
    record.decision = Some(DecisionRecord {
        effect: Effect::Allow,
        decided_by: Some(DecidedBy::Policy),
        determining_policies: vec![PolicyRef {
            id: "p".into(),
            reason: Some("r".into()),
        }],
        errors: vec![PolicyError {
            policy: "q".into(),
            message: "m".into(),
        }],
        message: Some("m".into()),
        message_truncated: truncated(),
        policy_digest: "d".into(),
        request: Some(RequestRecord {
            principal: "Agent::\"summarizer\"".into(),
            action: "Action::\"send_email\"".into(),
            resource: "Tool::\"send_email\"".into(),
            context: RequestContext {
                session: Arc::new(session),
                now: json!({"__extn": {"fn": "datetime", "arg": "2026-01-01T00:00:00.000Z"}}),
            },
        }),
    });
    record.approval = Some(ApprovalRecord {
        required: true,
        outcome: ApprovalOutcome::ApprovedByGrant,
        demanded_by: vec![PolicyRef {
            id: "held".into(),
            reason: None,
        }],
        reviewer_callback: Some("cmd:r".into()),
        reviewer: Some("carol".into()),
        decided_at: Some(at(1_800_000_000)),
        reason: Some("fine".into()),
        deadline: Some(at(1_800_000_300)),
        approval_id: Some("apr:s:1:00".into()),
        scope: Some(GrantScope::Session),
        grant: Some(GrantRef {
            approval_id: "apr:s:0:00".into(),
            reviewer: "carol".into(),
            decision_seq: 3,
        }),
    });
    record.outcome = Some(OutcomeRecord {
        decision_seq: 4,
        status: CallStatus::Failed,
        latency_us: 12,
        error: Some("boom".into()),
        error_truncated: truncated(),
        http: Some(HttpExchange {
            status: Some(502),
            address: Some("127.0.0.1:8080".into()),
            request_bytes: 3,
            response_bytes: 5,
            response_sha256: Some("ab".repeat(32)),
        }),
    });
    record.detail = Some(json!({"timestamp": 1, "status": "ok"}));
    record
}

/// The body as the log writes it, wrapped in the chain's fields as a line holds them.
fn line(record: &Record) -> Vec<u8> {
    let body = BodyFields::with_fixed_keys(record).unwrap();
    let body = String::from_utf8(body.inner().to_vec()).unwrap();
    format!(
        "{{\"seq\":9,\"prev_hash\":\"{}\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",{body},\"hash\":\"{}\"}}",
        "0".repeat(64),
        "1".repeat(64)
    )
    .into_bytes()
}

#[test]
fn a_record_with_every_part_has_no_reserved_or_repeated_key() {
    for kind in RecordKind::ALL {
        check_body_keys(&everything(kind)).unwrap();
    }
}

#[test]
fn every_kind_reads_back_field_for_field_and_writes_the_same_bytes() {
    for kind in RecordKind::ALL {
        let written = everything(kind);
        let bytes = line(&written);
        let read: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, written, "{kind:?}");
        assert_eq!(line(&read), bytes, "{kind:?}");
        // The kind's name is the one serde writes.
        let name = serde_json::to_value(kind).unwrap();
        assert_eq!(name.as_str().unwrap().parse::<RecordKind>(), Ok(kind));
    }
    let minimal = Record::new(RecordKind::SessionStart, &identity());
    let read: Record = serde_json::from_slice(&line(&minimal)).unwrap();
    assert_eq!(read, minimal);
}

#[test]
fn a_skimmed_record_keeps_every_field_but_the_bulky_parts() {
    let written = everything(RecordKind::Decision);
    let skimmed: Record<Skim> = serde_json::from_slice(&line(&written)).unwrap();
    assert_eq!(skimmed.kind, written.kind);
    assert_eq!(skimmed.session_id, written.session_id);
    assert_eq!(skimmed.trace_id, written.trace_id);
    assert_eq!(skimmed.user, written.user);
    assert_eq!(skimmed.agent, written.agent);
    assert_eq!(skimmed.authorization, Some(Skipped));
    assert_eq!(skimmed.delegation_chain, Some(Skipped));
    assert_eq!(skimmed.call_id, written.call_id);
    let (action, full) = (skimmed.action.unwrap(), written.action.unwrap());
    assert_eq!(
        (
            action.kind,
            &action.tool,
            &action.tool_truncated,
            &action.scope,
            &action.resource
        ),
        (
            full.kind,
            &full.tool,
            &full.tool_truncated,
            &full.scope,
            &full.resource
        )
    );
    let (decision, full) = (skimmed.decision.unwrap(), written.decision.unwrap());
    assert_eq!(decision.effect, full.effect);
    assert_eq!(decision.decided_by, full.decided_by);
    assert_eq!(decision.determining_policies, full.determining_policies);
    assert_eq!(decision.errors, full.errors);
    assert_eq!(decision.message, full.message);
    assert_eq!(decision.policy_digest, full.policy_digest);
    assert_eq!(decision.request, Some(Skipped));
    assert_eq!(skimmed.approval, written.approval);
    assert_eq!(skimmed.outcome, written.outcome);
    assert_eq!(skimmed.detail, Some(Skipped));
    // What was skipped cannot be written back as if it had been read.
    assert!(serde_json::to_vec(&Skipped).is_err());
}

#[test]
fn records_without_the_optional_parts_read_them_as_absent() {
    let bare: Record = serde_json::from_value(json!({
        "kind": "decision", "call_id": "s:1",
        "action": {"tool": "t"}, "decision": {"effect": "deny"},
        "approval": {"outcome": "approved", "reviewer": "bob"},
    }))
    .unwrap();
    assert_eq!(bare.session_id, None);
    assert_eq!(bare.user, None);
    let action = bare.action.unwrap();
    assert_eq!(
        (action.kind, action.arguments),
        (ActionKind::ToolCall, Value::Null)
    );
    let decision = bare.decision.unwrap();
    assert_eq!(decision.decided_by, None);
    assert!(decision.determining_policies.is_empty());
    assert_eq!(decision.request, None);
    let approval = bare.approval.unwrap();
    assert!(!approval.required);
    assert_eq!(approval.approved_by(), Some("bob"));
}

#[test]
fn kinds_the_guard_does_not_write_are_not_guard_records() {
    for kind in [
        "log_start",
        "retention",
        "checkpoint",
        "policy_reload",
        "note",
    ] {
        assert!(kind.parse::<RecordKind>().is_err(), "{kind}");
        assert!(serde_json::from_value::<Record>(json!({"kind": kind})).is_err());
    }
}
