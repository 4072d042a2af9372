//! The guard writes its records with the audit crate's record types, and the
//! readers read them back with those very types: a log written by a real
//! guest run reads back field for field (and writes back byte for byte),
//! the index's skimmed reading keeps what it reads unchanged, and the index's
//! rows and replay's view of every call are what the records say.

mod common;

use std::collections::BTreeSet;

use common::{Env, read_call, session_with_id};
use mandate::audit::record::{Effect, Full, Record, RecordKind, Skim};
use mandate::audit::{AuditIndex, CallEffect, CallQuery, RecordReader};
use mandate::pipeline::{
    BoxFuture, PendingApproval, ReviewDecision, ReviewError, Reviewer, Verdict, replay,
};
use mandate::policy::Policies;
use mandate::runtime::RunOutcome;
use serde_json::{Value, json};

/// Approves as carol, except an email whose subject asks to be denied or to
/// be approved by bob (whom policy does not accept as a reviewer).
struct BySubject;

impl Reviewer for BySubject {
    fn name(&self) -> &str {
        "by-subject"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        let (decision, reviewer) = match pending.arguments["subject"].as_str() {
            Some("deny me") => (Verdict::Deny, "carol"),
            Some("approve as bob") => (Verdict::Approve, "bob"),
            _ => (Verdict::Approve, "carol"),
        };
        Box::pin(async move {
            Ok(ReviewDecision {
                decision,
                reviewer: reviewer.to_string(),
                reason: Some("looked at it".into()),
                scope: Default::default(),
            })
        })
    }
}

fn email(subject: &str) -> Value {
    json!({
        "tool": "send_email",
        "arguments": {"to": "bob@example.com", "subject": subject, "body": "the merger closes Friday"},
    })
}

/// A session with every kind of decision: allowed, denied by policy,
/// approved, denied by a reviewer, a reviewer policy does not accept, an
/// unknown tool, arguments that are not JSON; then a session whose guest traps.
async fn recorded_run() -> Env {
    let env = Env::builder().reviewer(BySubject).build();
    let results = env
        .script(json!([
            read_call("doc_88pk3r"),
            read_call("doc_4hq2zt"),
            email("approve me"),
            email("deny me"),
            email("approve as bob"),
            {"tool": "delete_everything", "arguments": {}},
            {"tool": "read_document", "raw": "{not json"},
        ]))
        .await;
    assert_eq!(results.len(), 7, "{results:?}");
    // A second session whose guest traps after its call: a `guest_fault`.
    let task = json!({"calls": [read_call("doc_88pk3r")], "trap": true});
    let report = common::scripted_agent()
        .run(&env.guard, session_with_id("sess_trap"), &task.to_string())
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::Faulted(_)),
        "{:?}",
        report.outcome
    );
    env
}

/// The log's lines, without their newlines.
fn lines(env: &Env) -> Vec<Vec<u8>> {
    RecordReader::open(&env.audit_path)
        .unwrap()
        .map(|raw| raw.unwrap().bytes)
        .collect()
}

/// The body of a line as the guard serialized it: the fields between the
/// chain's prefix and its hash, as one object.
fn body(line: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(line).unwrap();
    let start = text.find(",\"kind\":").unwrap() + 1;
    let end = text.rfind(",\"hash\":\"").unwrap();
    format!("{{{}}}", &text[start..end]).into_bytes()
}

fn kind_of(line: &[u8]) -> String {
    let value: Value = serde_json::from_slice(line).unwrap();
    value["kind"].as_str().unwrap().to_string()
}

fn name<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_the_guard_writes_reads_back_through_its_own_type_field_for_field() {
    let env = recorded_run().await;
    let mut kinds = BTreeSet::new();
    let mut guard_records = 0;
    for line in lines(&env) {
        let kind = kind_of(&line);
        let Ok(guard_kind) = kind.parse::<RecordKind>() else {
            // The log's own records (`log_start`) are not the guard's.
            assert_eq!(kind, "log_start");
            continue;
        };
        kinds.insert(name(guard_kind));
        guard_records += 1;

        // Read back whole, it writes the same bytes: no field was lost,
        // renamed or reordered on the way.
        let full: Record<Full> = serde_json::from_slice(&line).unwrap();
        assert_eq!(full.kind, guard_kind);
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&full).unwrap()).unwrap(),
            String::from_utf8(body(&line)).unwrap()
        );

        // Skimmed, as the index reads it, what it keeps is the same.
        let skimmed: Record<Skim> = serde_json::from_slice(&line).unwrap();
        assert_eq!(skimmed.kind, full.kind);
        assert_eq!(skimmed.session_id, full.session_id);
        assert_eq!(skimmed.user, full.user);
        assert_eq!(skimmed.agent, full.agent);
        assert_eq!(skimmed.call_id, full.call_id);
        assert_eq!(
            skimmed.action.map(|a| (a.tool, a.resource)),
            full.action.map(|a| (a.tool, a.resource))
        );
        assert_eq!(
            skimmed
                .decision
                .map(|d| (d.effect, d.decided_by, d.determining_policies)),
            full.decision
                .map(|d| (d.effect, d.decided_by, d.determining_policies))
        );
        assert_eq!(skimmed.approval, full.approval);
        assert_eq!(skimmed.outcome, full.outcome);
    }
    assert!(guard_records > 10, "{guard_records}");
    // `approval_refused` (one of several reviewers refused by policy) needs
    // an approvals queue; every kind reads back in the audit crate's tests.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "approval_requested",
            "decision",
            "guest_fault",
            "outcome",
            "session_end",
            "session_start"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_and_replay_read_each_call_as_its_records_say() {
    let env = recorded_run().await;
    let records: Vec<(u64, Record)> = lines(&env)
        .iter()
        .filter(|line| kind_of(line) != "log_start")
        .map(|line| {
            let seq = mandate::audit::line_seq(line).unwrap();
            (seq, serde_json::from_slice(line).unwrap())
        })
        .collect();
    let decisions: Vec<&(u64, Record)> = records
        .iter()
        .filter(|(_, r)| r.kind == RecordKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 8);

    let (index, _) = AuditIndex::reindex(&env.audit_path).unwrap();
    let rows = index.query(&CallQuery::default()).unwrap();
    assert_eq!(rows.len(), decisions.len());
    for (row, (seq, record)) in rows.iter().zip(&decisions) {
        let action = record.action.as_ref().unwrap();
        let decision = record.decision.as_ref().unwrap();
        let approval = record.approval.as_ref().unwrap();
        assert_eq!(row.decision_seq, *seq);
        assert_eq!(Some(&row.call_id), record.call_id.as_ref());
        assert_eq!(row.session_id.as_deref(), record.session_id.as_deref());
        assert_eq!(row.trace_id.as_deref(), record.trace_id.as_deref());
        assert_eq!(row.user_id.as_ref(), record.user.as_ref().map(|u| &u.id));
        assert_eq!(row.agent_id.as_ref(), record.agent.as_ref().map(|a| &a.id));
        assert_eq!((&row.tool, &row.resource), (&action.tool, &action.resource));
        let effect = match decision.effect {
            Effect::Allow => CallEffect::Allow,
            Effect::Deny => CallEffect::Deny,
        };
        assert_eq!(row.effect, effect);
        assert_eq!(row.decided_by, decision.decided_by.map(name));
        let ids: Vec<&String> = decision
            .determining_policies
            .iter()
            .map(|p| &p.id)
            .collect();
        assert_eq!(row.determining_policies.iter().collect::<Vec<_>>(), ids);
        assert_eq!(row.message, decision.message);
        assert_eq!(row.approval_required, approval.required);
        assert_eq!(row.approval_outcome, Some(name(approval.outcome)));
        assert_eq!(row.reviewer, approval.reviewer);
        assert_eq!(row.approved_by.as_deref(), approval.approved_by());
        let outcome = records.iter().find(|(_, r)| {
            r.kind == RecordKind::Outcome && r.outcome.as_ref().unwrap().decision_seq == *seq
        });
        match outcome {
            Some((outcome_seq, r)) => {
                let o = r.outcome.as_ref().unwrap();
                assert_eq!(row.outcome_seq, Some(*outcome_seq));
                assert_eq!(row.status, Some(name(o.status)));
                assert_eq!(row.latency_us, Some(o.latency_us));
                assert_eq!(row.error, o.error);
            }
            None => assert_eq!((row.outcome_seq, &row.status), (None, &None)),
        }
    }

    // Replayed under the policies that made them, every decision the
    // policies made is read, decided again and found unchanged.
    let policies = Policies::load_dir(&common::policies_dir()).unwrap();
    let report = replay(&env.audit_path, &policies).unwrap();
    let by_policy = decisions
        .iter()
        .filter(|(_, r)| {
            r.decision.as_ref().unwrap().decided_by == Some(mandate::pipeline::DecidedBy::Policy)
        })
        .count() as u64;
    assert_eq!(report.totals.decisions, decisions.len() as u64);
    assert_eq!(report.totals.re_evaluated, by_policy, "{report:?}");
    assert_eq!(report.totals.unchanged, by_policy, "{report:?}");
    assert_eq!(
        report.totals.refused_before_policy,
        decisions.len() as u64 - by_policy
    );
}
