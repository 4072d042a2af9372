//! `audit replay` over a log written by a real guest run: each candidate
//! policy directory reports exactly the calls it would decide differently,
//! an unchanged candidate reports none, and a candidate that reads a
//! redacted argument never guesses at it.

mod common;

use std::path::{Path, PathBuf};

use common::{Env, copy_policies, read_call};
use mandate::pipeline::ReplayEffect::{Allow, Deny, Held};
use mandate::pipeline::{
    BoxFuture, NotReplayableReason, PendingApproval, ReplayEffect, ReplayReport, ReplayTotals,
    ReviewDecision, ReviewError, Reviewer, Verdict, replay,
};
use mandate::policy::Policies;
use serde_json::{Value, json};

/// Approves as carol (a member of `Group::"reviewers"`), except an email
/// whose subject asks to be denied, or to be approved by bob (who is not a
/// reviewer in the example entities).
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
                reason: None,
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

/// Decision seqs of the run in [`recorded_run`].
const READ_OWN: u64 = 3;
const WRITE_SUMMARY: u64 = 5;
const READ_OTHERS: u64 = 7;
const EMAIL_APPROVED: u64 = 9;
const EMAIL_DENIED: u64 = 12;
const EMAIL_BY_BOB: u64 = 14;

/// One session of the scripted agent under the example policies: every kind
/// of decision the guard records.
async fn recorded_run() -> Env {
    let env = Env::builder().reviewer(BySubject).build();
    let results = env
        .script(json!([
            read_call("doc_88pk3r"),
            {"tool": "write_summary", "arguments": {"document_id": "doc_88pk3r", "summary": "short"}},
            read_call("doc_4hq2zt"),
            email("approve me"),
            email("deny me"),
            email("approve as bob"),
            {"tool": "delete_everything", "arguments": {}},
            {"tool": "read_document", "raw": "{not json"},
        ]))
        .await;
    assert_eq!(results.len(), 8, "{results:?}");

    // The log is what the constants above say it is.
    let decisions = env.records_of("decision");
    let summary: Vec<(u64, &str, &str, &str, &str)> = decisions
        .iter()
        .map(|d| {
            (
                d["seq"].as_u64().unwrap(),
                d["action"]["tool"].as_str().unwrap(),
                d["decision"]["decided_by"].as_str().unwrap(),
                d["decision"]["effect"].as_str().unwrap(),
                d["approval"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (READ_OWN, "read_document", "policy", "allow", "not_required"),
            (
                WRITE_SUMMARY,
                "write_summary",
                "policy",
                "allow",
                "not_required"
            ),
            (
                READ_OTHERS,
                "read_document",
                "policy",
                "deny",
                "not_required"
            ),
            (EMAIL_APPROVED, "send_email", "policy", "allow", "approved"),
            (EMAIL_DENIED, "send_email", "policy", "deny", "denied"),
            (
                EMAIL_BY_BOB,
                "send_email",
                "policy",
                "deny",
                "reviewer_not_allowed"
            ),
            (
                15,
                "delete_everything",
                "unknown_tool",
                "deny",
                "not_required"
            ),
            (
                16,
                "read_document",
                "invalid_arguments",
                "deny",
                "not_required"
            ),
        ]
    );
    // The email bodies are in the log only as commitments.
    assert!(decisions[3]["action"]["arguments"]["body"]["redacted"].is_string());
    env
}

/// A copy of the example policies under `env`'s temp dir, changed by `edit`.
fn candidate(env: &Env, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = env.dir.path().join(name);
    copy_policies(&dir);
    edit(&dir);
    dir
}

fn replay_under(env: &Env, dir: &Path) -> ReplayReport {
    let policies = Policies::load_dir(dir).unwrap();
    let report = replay(&env.audit_path, &policies).unwrap();
    assert_eq!(report.candidate_digest, policies.digest());
    report
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// `(seq, tool, old effect, old approval required, new effect, new approval required)`.
type Row = (u64, String, ReplayEffect, bool, ReplayEffect, bool);

fn changes(report: &ReplayReport) -> Vec<Row> {
    report
        .changes
        .iter()
        .map(|c| {
            (
                c.call.seq,
                c.call.tool.clone(),
                c.old.effect.into(),
                c.old.approval_required,
                c.new.effect,
                c.new.approval_required,
            )
        })
        .collect()
}

fn row(seq: u64, tool: &str, old: (ReplayEffect, bool), new: (ReplayEffect, bool)) -> Row {
    (seq, tool.to_string(), old.0, old.1, new.0, new.1)
}

/// Eight decisions: six decided by policy, two refused before it.
fn totals(unchanged: u64, changed: u64, not_replayable: u64) -> ReplayTotals {
    ReplayTotals {
        decisions: 8,
        re_evaluated: unchanged + changed,
        unchanged,
        changed,
        not_replayable,
        refused_before_policy: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policies_that_made_the_log_change_nothing() {
    let env = recorded_run().await;
    let dir = candidate(&env, "same", |_| {});
    let report = replay_under(&env, &dir);
    assert_eq!(report.changes, []);
    assert_eq!(report.not_replayable, []);
    assert_eq!(report.totals, totals(6, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_email_approval_rule_changes_every_email_and_nothing_else() {
    let env = recorded_run().await;
    let dir = candidate(&env, "no-email-approval", |dir| {
        std::fs::remove_file(dir.join("approval.cedar")).unwrap();
    });
    let report = replay_under(&env, &dir);
    assert_eq!(
        changes(&report),
        [
            row(EMAIL_APPROVED, "send_email", (Allow, true), (Allow, false)),
            // The human's "no" no longer matters: nobody would be asked.
            row(EMAIL_DENIED, "send_email", (Deny, true), (Allow, false)),
            row(EMAIL_BY_BOB, "send_email", (Deny, true), (Allow, false)),
        ]
    );
    let first = &report.changes[0];
    assert_eq!(first.call.call_id, "sess_example_01:4");
    assert_eq!(first.call.session_id, "sess_example_01");
    assert_eq!(first.call.user, "alice");
    assert_eq!(first.call.agent, "document-summarizer");
    assert_eq!(first.old.reviewer.as_deref(), Some("carol"));
    assert_eq!(first.old.determining_policies, ["scope-email-send"]);
    assert_eq!(first.old.demanded_by, ["email-requires-approval"]);
    assert_eq!(first.new.determining_policies, ["scope-email-send"]);
    assert!(first.new.demanded_by.is_empty());
    // The bodies are redacted, but no candidate policy reads them.
    assert_eq!(report.not_replayable, []);
    assert_eq!(report.totals, totals(3, 3, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidding_summaries_denies_the_one_summary_written() {
    let env = recorded_run().await;
    let dir = candidate(&env, "no-summaries", |dir| {
        write(
            dir,
            "summaries.cedar",
            r#"@id("no-summaries")
@reason("summaries are paused")
forbid (principal, action == Action::"write_summary", resource);"#,
        );
    });
    let report = replay_under(&env, &dir);
    assert_eq!(
        changes(&report),
        [row(
            WRITE_SUMMARY,
            "write_summary",
            (Allow, false),
            (Deny, false)
        )]
    );
    let change = &report.changes[0];
    assert_eq!(change.old.determining_policies, ["scope-documents-write"]);
    assert_eq!(change.new.determining_policies, ["no-summaries"]);
    assert_eq!(report.totals, totals(5, 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_approval_rule_holds_calls_nobody_was_asked_about() {
    let env = recorded_run().await;
    let dir = candidate(&env, "reads-need-approval", |dir| {
        write(
            dir,
            "reads.cedar",
            r#"@id("reads-require-approval")
forbid (principal, action == Action::"read_document", resource)
unless { context.approval.granted };"#,
        );
    });
    let report = replay_under(&env, &dir);
    // The read of bob's document stays denied: no approval could allow it.
    assert_eq!(
        changes(&report),
        [row(READ_OWN, "read_document", (Allow, false), (Held, true))]
    );
    assert_eq!(
        report.changes[0].new.demanded_by,
        ["reads-require-approval"]
    );
    assert_eq!(report.totals, totals(5, 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_candidates_entities_decide_whose_approval_counts() {
    let env = recorded_run().await;
    // bob joins the reviewers in the candidate's entities.json.
    let dir = candidate(&env, "bob-reviews", |dir| {
        let path = dir.join("entities.json");
        let mut entities: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for e in &mut entities {
            if e["uid"] == json!({"type": "User", "id": "bob"}) {
                e["parents"] = json!([{"type": "Group", "id": "reviewers"}]);
            }
        }
        std::fs::write(&path, serde_json::to_string(&entities).unwrap()).unwrap();
    });
    let report = replay_under(&env, &dir);
    assert_eq!(
        changes(&report),
        [row(EMAIL_BY_BOB, "send_email", (Deny, true), (Allow, true))]
    );
    let change = &report.changes[0];
    assert_eq!(change.old.reviewer.as_deref(), Some("bob"));
    assert_eq!(change.new.reviewer.as_deref(), Some("bob"));
    assert_eq!(change.new.determining_policies, ["scope-email-send"]);
    assert_eq!(change.new.demanded_by, ["email-requires-approval"]);
    assert_eq!(report.totals, totals(5, 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_reading_a_redacted_body_makes_those_calls_not_replayable_and_others_still_replay()
{
    let env = recorded_run().await;
    let dir = candidate(&env, "reads-body", |dir| {
        write(
            dir,
            "content.cedar",
            r#"@id("no-merger-talk")
forbid (principal, action == Action::"send_email", resource)
when { context.arguments.body like "*merger*" };

@id("no-summaries")
forbid (principal, action == Action::"write_summary", resource);"#,
        );
    });
    let report = replay_under(&env, &dir);
    assert_eq!(
        changes(&report),
        [row(
            WRITE_SUMMARY,
            "write_summary",
            (Allow, false),
            (Deny, false)
        )]
    );
    let skipped: Vec<(u64, &str, &NotReplayableReason)> = report
        .not_replayable
        .iter()
        .map(|n| (n.call.seq, n.call.tool.as_str(), &n.reason))
        .collect();
    let reason = NotReplayableReason::RedactedArguments {
        paths: vec!["arguments.body".into()],
        policies: vec!["no-merger-talk".into()],
    };
    assert_eq!(
        skipped,
        [
            (EMAIL_APPROVED, "send_email", &reason),
            (EMAIL_DENIED, "send_email", &reason),
            (EMAIL_BY_BOB, "send_email", &reason),
        ]
    );
    assert_eq!(report.totals, totals(2, 1, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_reading_an_argument_in_clear_replays_with_its_value() {
    let env = recorded_run().await;
    let dir = candidate(&env, "reads-subject", |dir| {
        write(
            dir,
            "subject.cedar",
            r#"@id("no-bob-subjects")
forbid (principal, action == Action::"send_email", resource)
when { context.arguments.subject like "*bob*" };"#,
        );
    });
    let report = replay_under(&env, &dir);
    // Only the email whose subject names bob; it was denied anyway, but now
    // no approval could allow it, so none is required.
    assert_eq!(
        changes(&report),
        [row(EMAIL_BY_BOB, "send_email", (Deny, true), (Deny, false))]
    );
    assert_eq!(
        report.changes[0].new.determining_policies,
        ["email-requires-approval", "no-bob-subjects"]
    );
    assert_eq!(report.not_replayable, []);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_the_candidate_no_longer_declares_is_denied_with_why() {
    let env = recorded_run().await;
    let dir = candidate(&env, "no-write-action", |dir| {
        let path = dir.join("schema.cedarschema");
        let schema = std::fs::read_to_string(&path).unwrap();
        let start = schema.find("action write_summary").unwrap();
        let end = start + schema[start..].find("};").unwrap() + 2;
        let mut cut = schema.clone();
        cut.replace_range(start..end, "");
        std::fs::write(&path, cut).unwrap();
    });
    let report = replay_under(&env, &dir);
    assert_eq!(
        changes(&report),
        [row(
            WRITE_SUMMARY,
            "write_summary",
            (Allow, false),
            (Deny, false)
        )]
    );
    let message = report.changes[0].new.message.as_deref().unwrap();
    assert!(message.contains("write_summary"), "{message}");
    assert!(message.contains("candidate schema"), "{message}");
}
