//! Whole agent runs: the example agent end to end, a guest that traps, and
//! many sessions at once on one guard and one component.

mod common;

use common::{Env, email_call, kinds, read_call, report_results, session_with_id};
use mandate::runtime::RunOutcome;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_example_agent_reads_and_writes_but_may_not_email_without_a_reviewer() {
    let env = Env::example();
    let agent = common::document_summarizer();
    let report = agent
        .run(
            &env.guard,
            common::session(),
            "summarize doc_88pk3r and share it with bob@example.com",
        )
        .await
        .unwrap();

    let RunOutcome::Finished(Ok(text)) = &report.outcome else {
        panic!("the agent did not finish: {:?}", report.outcome);
    };
    assert!(text.contains("read_document doc_88pk3r: allowed"), "{text}");
    assert!(text.contains("write_summary doc_88pk3r: allowed"), "{text}");
    assert!(
        text.contains(
            "send_email bob@example.com: refused (approval denied: no reviewer is configured; held calls are denied)"
        ),
        "{text}"
    );
    assert!(text.contains("done: 2 of 3 tool calls allowed"), "{text}");

    let summary_path = env.workspace.root().join("summaries/doc_88pk3r.md");
    let summary = std::fs::read_to_string(&summary_path).unwrap();
    assert!(summary.starts_with("# Q3 planning notes"), "{summary}");
    assert!(summary.contains("words in the full document."), "{summary}");
    assert!(text.ends_with(&summary), "{text}");
    assert!(env.outbox().is_empty());

    let records = env.records();
    assert_eq!(
        kinds(&records),
        [
            "log_start",
            "session_start",
            "decision",
            "outcome",
            "decision",
            "outcome",
            "approval_requested",
            "decision",
            "session_end",
        ]
    );
    let tools: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| r["action"]["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["read_document", "write_summary", "send_email"]);
    assert_eq!(records[2]["decision"]["effect"], "allow");
    assert_eq!(records[4]["decision"]["effect"], "allow");
    assert_eq!(
        common::policy_ids(&records[4]["decision"]["determining_policies"]),
        ["scope-documents-write"]
    );
    assert_eq!(
        records[6]["call_id"], records[7]["call_id"],
        "the email's hold"
    );
    let email = &records[7];
    assert_eq!(email["decision"]["effect"], "deny");
    assert_eq!(email["approval"]["outcome"], "denied");
    assert_eq!(email["approval"]["reviewer"], "deny-all");
    assert!(email["action"]["arguments"]["body"]["redacted"].is_string());
    assert_eq!(records[3]["outcome"]["status"], "ok");
    assert_eq!(records[5]["outcome"]["status"], "ok");
    assert_eq!(records[8]["detail"], json!({"status": "completed"}));
    for r in &records[1..] {
        assert_eq!(r["agent"]["component_digest"], agent.digest());
    }
    env.assert_verifies(9);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_traps_is_stopped_audited_and_the_host_keeps_serving() {
    let env = Env::example();
    let agent = common::scripted_agent();
    let task = json!({"calls": [read_call("doc_88pk3r")], "trap": true});
    let report = agent
        .run(&env.guard, session_with_id("sess_trap"), &task.to_string())
        .await
        .unwrap();

    let RunOutcome::Faulted(message) = &report.outcome else {
        panic!("expected a fault: {:?}", report.outcome);
    };
    assert!(message.contains("unreachable"), "{message}");
    let records = env.records();
    assert_eq!(
        kinds(&records),
        [
            "log_start",
            "session_start",
            "decision",
            "outcome",
            "guest_fault",
            "session_end"
        ]
    );
    // The call made before the trap went through normally.
    assert_eq!(records[3]["outcome"]["status"], "ok");
    assert_eq!(records[4]["session_id"], "sess_trap");
    assert_eq!(records[4]["detail"]["message"], message.as_str());
    assert_eq!(records[5]["detail"]["status"], "guest_fault");
    env.assert_verifies(6);

    // The same component serves the next session.
    let after = agent
        .run(
            &env.guard,
            session_with_id("sess_after"),
            &json!({"calls": [read_call("doc_88pk3r")]}).to_string(),
        )
        .await
        .unwrap();
    let results = report_results(&after);
    assert_eq!(results[0]["ok"]["title"], "Q3 planning notes");
    let records = env.records();
    assert_eq!(
        kinds(&records[6..]),
        ["session_start", "decision", "outcome", "session_end"]
    );
    assert!(records[6..].iter().all(|r| r["session_id"] == "sess_after"));
    env.assert_verifies(10);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_sessions_run_at_once_on_one_guard_and_one_component() {
    const SESSIONS: usize = 8;
    let env = Env::example();
    let task = json!({"calls": [read_call("doc_88pk3r"), email_call("hello")]}).to_string();
    let handles: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let guard = env.guard.clone();
            let task = task.clone();
            tokio::spawn(async move {
                common::scripted_agent()
                    .run(&guard, session_with_id(&format!("sess_c{i}")), &task)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for handle in handles {
        let results = report_results(&handle.await.unwrap());
        assert_eq!(results[0]["ok"]["document_id"], "doc_88pk3r");
        assert_eq!(results[1]["error"]["kind"], "approval-denied");
    }

    // log_start, then per session: start, decision, outcome, the email's hold
    // (approval_requested) and its decision, end.
    env.assert_verifies(1 + 6 * SESSIONS as u64);
    let records = env.records();
    for i in 0..SESSIONS {
        let id = format!("sess_c{i}");
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r["session_id"] == id.as_str())
            .cloned()
            .collect();
        assert_eq!(
            kinds(&mine),
            [
                "session_start",
                "decision",
                "outcome",
                "approval_requested",
                "decision",
                "session_end"
            ],
            "{id}"
        );
        assert_eq!(mine[1]["call_id"], format!("{id}:1"));
        assert_eq!(mine[2]["call_id"], format!("{id}:1"));
        assert_eq!(mine[2]["outcome"]["decision_seq"], mine[1]["seq"]);
        assert_eq!(mine[3]["call_id"], format!("{id}:2"));
        assert_eq!(mine[4]["call_id"], format!("{id}:2"));
        assert_eq!(mine[4]["approval"]["outcome"], "denied");
    }
}
