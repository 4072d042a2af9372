//! Calls that policy holds for a human: `send_email` needs an approval from a
//! member of `Group::"reviewers"` (policies/approval.cedar).

mod common;

use std::time::{Duration, Instant};

use common::{Env, FixedReviewer, email_call, policy_ids, script_file, session};
use mandate::guard::{CommandReviewer, DenyAll, PendingApproval};
use serde_json::{Value, json};

const SECRET: &str = "the launch slips to October; tell nobody";

/// The single decision record of a one-call run.
fn only_decision(env: &Env) -> Value {
    let mut decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    decisions.remove(0)
}

/// Checks that a held call was refused: no outcome, nothing sent, the log
/// intact with log_start, session_start, decision and session_end.
fn assert_refused_and_nothing_sent(env: &Env) {
    assert!(env.records_of("outcome").is_empty());
    assert!(env.outbox().is_empty());
    env.assert_verifies(4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_approved_by_a_reviewer_is_sent_and_the_approval_recorded() {
    let reviewer = FixedReviewer::approves_as("carol");
    let env = Env::builder().reviewer(reviewer.clone()).build();
    let results = env.script(json!([email_call(SECRET)])).await;

    assert_eq!(
        results[0],
        json!({"tool": "send_email", "ok": {"queued": true, "message_id": "msg:sess_example_01:1"}})
    );
    let outbox = env.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["to"], "bob@example.com");
    assert_eq!(outbox[0]["subject"], "Q3 notes");
    assert_eq!(outbox[0]["body"], SECRET);

    let decision = only_decision(&env);
    assert_eq!(decision["action"]["resource"], "Tool::\"send_email\"");
    let arguments = &decision["action"]["arguments"];
    assert_eq!(arguments["to"], "bob@example.com");
    assert_eq!(arguments["subject"], "Q3 notes");
    // The body is a salted commitment (tests/tests/redaction.rs proves it).
    assert!(
        arguments["body"]["redacted"]
            .as_str()
            .is_some_and(|c| c.starts_with("sha256:")),
        "{arguments}"
    );
    let d = &decision["decision"];
    assert_eq!(d["effect"], "allow");
    assert_eq!(d["decided_by"], "policy");
    assert_eq!(policy_ids(&d["determining_policies"]), ["scope-email-send"]);
    let a = &decision["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "approved");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(a["reviewer_callback"], "fixed");
    assert_eq!(a["reason"], "carol looked at it");
    assert!(a["decided_at"].is_string());
    assert!(a["deadline"].is_string());
    assert!(policy_ids(&a["demanded_by"]).contains(&"email-requires-approval".to_string()));

    let outcome = &env.records_of("outcome")[0];
    assert_eq!(outcome["outcome"]["status"], "ok");
    assert_eq!(outcome["outcome"]["decision_seq"], decision["seq"]);

    // The body reached the outbox but never the log.
    let log = common::log_text(&env.audit_path);
    assert!(!log.contains(SECRET));
    assert!(!log.contains("launch slips"));

    // What the reviewer was shown.
    let seen = reviewer.seen();
    assert_eq!(seen.len(), 1);
    let pending = &seen[0];
    assert_eq!(pending.tool, "send_email");
    assert_eq!(pending.call_id, "sess_example_01:1");
    assert_eq!(pending.session_id, "sess_example_01");
    assert_eq!(pending.resource, "Tool::\"send_email\"");
    assert_eq!(
        pending.arguments["body"],
        decision["action"]["arguments"]["body"]
    );
    assert_eq!(pending.arguments["to"], "bob@example.com");
    assert_eq!(pending.user.id, "alice");
    assert_eq!(pending.agent.id, "document-summarizer");
    assert_eq!(pending.delegation_chain, session().delegation_chain);
    let demanded: Vec<(&str, Option<&str>)> = pending
        .demanded_by
        .iter()
        .map(|p| (p.id.as_str(), p.reason.as_deref()))
        .collect();
    assert_eq!(
        demanded,
        [(
            "email-requires-approval",
            Some("every outgoing email is reviewed by a human before it is sent")
        )]
    );
    assert!(pending.deadline > jiff::Timestamp::now());
    assert_eq!(a["deadline"], pending.deadline.to_string());
    env.assert_verifies(5);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_by_someone_policy_does_not_accept_as_reviewer_is_refused() {
    let env = Env::builder()
        .reviewer(FixedReviewer::approves_as("bob"))
        .build();
    let results = env.script(json!([email_call(SECRET)])).await;

    let error = &results[0]["error"];
    assert_eq!(error["kind"], "approval-denied", "{results:?}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("`bob`"), "{message}");
    assert!(message.contains("may not approve"), "{message}");
    assert!(
        message.contains("only members of the reviewers group may approve"),
        "{message}"
    );

    let decision = only_decision(&env);
    let d = &decision["decision"];
    assert_eq!(d["effect"], "deny");
    assert_eq!(
        policy_ids(&d["determining_policies"]),
        ["approver-must-be-reviewer"]
    );
    let a = &decision["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "reviewer_not_allowed");
    assert_eq!(a["reviewer"], "bob");
    assert_refused_and_nothing_sent(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_is_denied_by_the_default_reviewer() {
    let env = Env::builder().reviewer(DenyAll).build();
    let results = env.script(json!([email_call(SECRET)])).await;

    assert_eq!(
        results[0]["error"],
        json!({
            "kind": "approval-denied",
            "message": "no reviewer is configured; held calls are denied",
        })
    );
    let decision = only_decision(&env);
    assert_eq!(decision["decision"]["effect"], "deny");
    assert_eq!(
        policy_ids(&decision["decision"]["determining_policies"]),
        ["email-requires-approval"]
    );
    let a = &decision["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "denied");
    assert_eq!(a["reviewer"], "deny-all");
    assert_eq!(a["reviewer_callback"], "deny-all");
    assert_refused_and_nothing_sent(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_reviewer_command_that_denies_refuses_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let program = script_file(
        dir.path(),
        "deny.sh",
        r#"cat >/dev/null
echo '{"decision":"deny","reviewer":"carol","reason":"not today"}'"#,
    );
    let env = Env::builder()
        .reviewer(CommandReviewer::new(&program))
        .build();
    let results = env.script(json!([email_call(SECRET)])).await;

    assert_eq!(
        results[0]["error"],
        json!({"kind": "approval-denied", "message": "not today"})
    );
    let a = &only_decision(&env)["approval"];
    assert_eq!(a["outcome"], "denied");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(a["reason"], "not today");
    assert_eq!(a["reviewer_callback"], format!("cmd:{}", program.display()));
    assert_refused_and_nothing_sent(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_reviewer_command_reads_the_request_on_stdin_and_approves() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen.json");
    let program = script_file(
        dir.path(),
        "approve.sh",
        &format!(
            r#"input=$(cat)
printf '%s' "$input" > '{}'
case "$input" in
  *'"tool":"send_email"'*) ;;
  *) echo "no send_email in the request" >&2; exit 1 ;;
esac
echo '{{"decision":"approve","reviewer":"carol","reason":"fine by me"}}'"#,
            seen.display()
        ),
    );
    let env = Env::builder()
        .reviewer(CommandReviewer::new(&program))
        .build();
    let results = env.script(json!([email_call(SECRET)])).await;

    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert_eq!(env.outbox()[0]["body"], SECRET);
    let a = &only_decision(&env)["approval"];
    assert_eq!(a["outcome"], "approved");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(a["reason"], "fine by me");

    // The request on stdin is the pending approval, redacted.
    let request = std::fs::read_to_string(&seen).unwrap();
    assert!(!request.contains(SECRET));
    let pending: PendingApproval = serde_json::from_str(&request).unwrap();
    assert_eq!(pending.tool, "send_email");
    assert_eq!(
        pending.arguments["body"],
        only_decision(&env)["action"]["arguments"]["body"]
    );
    assert!(pending.arguments["body"]["redacted"].is_string());
    assert_eq!(pending.demanded_by[0].id, "email-requires-approval");
    env.assert_verifies(5);
}

/// Whether process `pid` has exited (gone, or a zombie not yet reaped).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_that_does_not_answer_in_time_is_a_denial() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let program = script_file(
        dir.path(),
        "slow.sh",
        &format!("echo $$ > '{}'\nexec sleep 30", pid_file.display()),
    );
    let env = Env::builder()
        .reviewer(CommandReviewer::new(&program))
        .approval_timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let results = env.script(json!([email_call(SECRET)])).await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(results[0]["error"], json!({"kind": "approval-timed-out"}));
    let decision = only_decision(&env);
    assert_eq!(decision["decision"]["effect"], "deny");
    let a = &decision["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "timed_out");
    assert!(a.get("reviewer").is_none());
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .starts_with("no decision before "),
        "{a}"
    );
    assert_refused_and_nothing_sent(&env);

    // The reviewer was killed at the deadline, not left running. (Without a
    // pid file it was killed before it even wrote one.)
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    let pid: u32 = pid.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exited(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited(pid), "reviewer process {pid} still runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_that_crashes_is_a_denial_with_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let program = script_file(
        dir.path(),
        "crash.sh",
        "echo 'reviewer blew up' >&2\nexit 3",
    );
    let env = Env::builder()
        .reviewer(CommandReviewer::new(&program))
        .build();
    let results = env.script(json!([email_call(SECRET)])).await;

    let error = &results[0]["error"];
    assert_eq!(error["kind"], "approval-denied");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.contains("reviewer blew up"), "{message}");

    let a = &only_decision(&env)["approval"];
    assert_eq!(a["required"], true);
    assert_eq!(a["outcome"], "reviewer_failed");
    assert!(a.get("reviewer").is_none());
    let reason = a["reason"].as_str().unwrap();
    assert!(reason.contains("exit status: 3"), "{reason}");
    assert!(reason.contains("reviewer blew up"), "{reason}");
    assert_refused_and_nothing_sent(&env);
}
