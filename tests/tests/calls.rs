//! One tool call at a time, from the scripted guest through the real host:
//! what the guest gets back and what the audit log says about it.

mod common;

use common::{Env, policy_ids, read_call, session};
use mandate::pipeline::{ResourceBinding, Tool, ToolContext, ToolFailure, ToolSpec};
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../../examples/workspace/documents/doc_88pk3r.md");

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_call_returns_the_document_and_is_recorded_before_its_outcome() {
    let env = Env::example();
    let results = env.script(json!([read_call("doc_88pk3r")])).await;

    assert_eq!(results.len(), 1);
    let ok = &results[0]["ok"];
    assert_eq!(ok["document_id"], "doc_88pk3r", "{results:?}");
    assert_eq!(ok["title"], "Q3 planning notes");
    assert_eq!(ok["content"], DOCUMENT);

    let records = env.records();
    assert_eq!(
        common::kinds(&records),
        [
            "log_start",
            "session_start",
            "decision",
            "outcome",
            "session_end"
        ]
    );
    let decision = &records[2];
    assert_eq!(decision["seq"], 3);
    assert_eq!(decision["call_id"], "sess_example_01:1");
    assert_eq!(decision["session_id"], "sess_example_01");
    assert_eq!(decision["trace_id"], "trace_example_01");
    assert_eq!(
        decision["action"],
        json!({
            "type": "tool_call",
            "tool": "read_document",
            "scope": "documents:read",
            "arguments": {"document_id": "doc_88pk3r"},
            "resource": "Document::\"doc_88pk3r\"",
        })
    );
    let d = &decision["decision"];
    assert_eq!(d["effect"], "allow");
    assert_eq!(d["decided_by"], "policy");
    assert_eq!(
        policy_ids(&d["determining_policies"]),
        ["scope-documents-read"]
    );
    assert_eq!(
        d["determining_policies"][0]["reason"],
        "the session holds the documents:read scope"
    );
    assert_eq!(d["errors"], json!([]));
    assert_eq!(d["policy_digest"], env.guard.policies().digest());
    assert_eq!(d["policy_digest"], env.policy_digest.as_str());
    assert_eq!(
        decision["approval"],
        json!({"required": false, "outcome": "not_required"})
    );

    // The six questions, answered by the decision record on its own.
    assert_eq!(
        decision["user"],
        json!({"id": "alice", "email": "alice@example.com"})
    );
    let agent = &decision["agent"];
    assert_eq!(agent["id"], "document-summarizer");
    assert_eq!(agent["name"], "Document Summarizer");
    assert_eq!(agent["version"], "0.1.0");
    let digest = common::scripted_agent().digest();
    assert_eq!(agent["component_digest"], digest);
    assert_eq!(digest.len(), 64);
    if let Some(independent) = common::sha256sum(mandate_tests::SCRIPTED_AGENT) {
        assert_eq!(digest, independent);
    }
    assert_eq!(
        decision["authorization"],
        json!({
            "scopes": ["documents:read", "documents:write", "email:send"],
            "session_type": "human_approved",
            "expires_at": "2099-01-01T00:00:00Z",
            "approved_by": "alice",
            "approved_at": "2026-11-26T09:00:00Z",
        })
    );
    assert_eq!(
        decision["delegation_chain"],
        json!(["user:alice", "agent:document-summarizer"])
    );

    let outcome = &records[3];
    assert_eq!(outcome["call_id"], "sess_example_01:1");
    assert_eq!(outcome["outcome"]["decision_seq"], decision["seq"]);
    assert_eq!(outcome["outcome"]["status"], "ok");
    assert!(outcome["outcome"]["latency_us"].is_u64());
    assert!(outcome["outcome"].get("error").is_none());
    assert_eq!(outcome["agent"]["component_digest"], digest);

    assert_eq!(records[4]["detail"], json!({"status": "completed"}));
    env.assert_verifies(5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_outside_the_session_scopes_is_denied_by_default_and_never_runs() {
    let env = Env::example();
    let mut s = session();
    s.scopes = vec!["documents:write".into(), "email:send".into()];
    let results = env.script_as(s, json!([read_call("doc_88pk3r")])).await;

    assert_eq!(
        results[0],
        json!({"tool": "read_document", "error": {"kind": "denied", "policies": [], "reasons": []}})
    );
    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0]["decision"];
    assert_eq!(d["effect"], "deny");
    assert_eq!(d["decided_by"], "policy");
    assert_eq!(d["determining_policies"], json!([]));
    assert_eq!(
        decisions[0]["authorization"]["scopes"],
        json!(["documents:write", "email:send"])
    );
    assert_eq!(decisions[0]["approval"]["required"], false);
    assert!(env.records_of("outcome").is_empty());
    env.assert_verifies(4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_of_another_user_is_denied_by_the_ownership_forbid() {
    let env = Env::example();
    // The file exists, so only policy stands between the agent and it.
    std::fs::copy(
        common::example_workspace().join("documents/doc_4hq2zt.md"),
        env.workspace.root().join("documents/doc_4hq2zt.md"),
    )
    .unwrap();
    let results = env.script(json!([read_call("doc_4hq2zt")])).await;

    assert_eq!(
        results[0]["error"],
        json!({
            "kind": "denied",
            "policies": ["forbid-document-not-owned"],
            "reasons": ["the document belongs to another user"],
        })
    );
    assert!(results[0].get("ok").is_none());
    assert!(!results[0].to_string().contains("Compensation"));

    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        decisions[0]["action"]["resource"],
        "Document::\"doc_4hq2zt\""
    );
    let d = &decisions[0]["decision"];
    assert_eq!(d["effect"], "deny");
    assert_eq!(d["decided_by"], "policy");
    assert_eq!(
        d["determining_policies"],
        json!([{"id": "forbid-document-not-owned", "reason": "the document belongs to another user"}])
    );
    // Approval could not help (the forbid has no `unless`), so none was asked.
    assert_eq!(decisions[0]["approval"]["outcome"], "not_required");
    // The tool did not run: nothing was recorded as its outcome.
    assert!(env.records_of("outcome").is_empty());
    env.assert_verifies(4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_refused_before_policy() {
    let env = Env::example();
    let mut s = session();
    s.expires_at = "2020-01-01T00:00:00Z".parse().unwrap();
    let results = env.script_as(s, json!([read_call("doc_88pk3r")])).await;

    assert_eq!(
        results[0],
        json!({"tool": "read_document", "error": {"kind": "session-expired"}})
    );
    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0]["decision"];
    assert_eq!(d["effect"], "deny");
    assert_eq!(d["decided_by"], "session_expired");
    assert_eq!(d["message"], "session expired");
    assert_eq!(d["determining_policies"], json!([]));
    assert_eq!(
        decisions[0]["authorization"]["expires_at"],
        "2020-01-01T00:00:00Z"
    );
    assert!(env.records_of("outcome").is_empty());
    env.assert_verifies(4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tool_is_refused_with_its_arguments_recorded() {
    let env = Env::example();
    let results = env
        .script(json!([
            {"tool": "delete_everything", "arguments": {"path": "/", "force": true}}
        ]))
        .await;

    assert_eq!(
        results[0]["error"],
        json!({"kind": "unknown-tool", "message": "delete_everything"})
    );
    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1);
    let r = &decisions[0];
    assert_eq!(r["action"]["tool"], "delete_everything");
    assert_eq!(
        r["action"]["arguments"],
        json!({"path": "/", "force": true})
    );
    assert!(r["action"].get("scope").is_none());
    assert!(r["action"].get("resource").is_none());
    assert_eq!(r["decision"]["effect"], "deny");
    assert_eq!(r["decision"]["decided_by"], "unknown_tool");
    assert_eq!(r["decision"]["message"], "unknown tool `delete_everything`");
    assert!(env.records_of("outcome").is_empty());
    env.assert_verifies(4);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_are_refused_naming_the_field() {
    let env = Env::example();
    let calls = json!([
        {"tool": "read_document", "arguments": {}},
        {"tool": "read_document", "arguments": {"document_id": "doc_88pk3r", "extra": 1}},
        {"tool": "read_document", "arguments": {"document_id": "../../etc/passwd"}},
        {"tool": "read_document", "raw": "{not json"},
        {"tool": "read_document", "arguments": {"document_id": null}},
    ]);
    let results = env.script(calls).await;
    let messages: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r["error"]["kind"], "invalid-arguments", "{r}");
            r["error"]["message"].as_str().unwrap().to_string()
        })
        .collect();

    let expect = [
        ("missing document_id", "`document_id`"),
        ("unknown field", "`extra`"),
        ("path traversal", "document_id"),
        ("malformed json", "not valid json"),
        ("null document_id", "`document_id`"),
    ];
    for ((what, needle), message) in expect.iter().zip(&messages) {
        assert!(
            message.contains(needle),
            "{what}: `{message}` should name {needle}"
        );
    }
    assert!(messages[0].contains("missing field"), "{}", messages[0]);
    assert!(messages[1].contains("unknown field"), "{}", messages[1]);
    assert!(messages[2].contains("../../etc/passwd"), "{}", messages[2]);

    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), results.len());
    for (record, message) in decisions.iter().zip(&messages) {
        let d = &record["decision"];
        assert_eq!(d["effect"], "deny");
        assert_eq!(d["decided_by"], "invalid_arguments");
        assert_eq!(d["message"], format!("invalid arguments: {message}"));
    }
    // What the agent sent is kept, even when it is not JSON.
    assert_eq!(
        decisions[2]["action"]["arguments"]["document_id"],
        "../../etc/passwd"
    );
    assert_eq!(decisions[3]["action"]["arguments"], "{not json");
    // Nothing ran, and nothing escaped the workspace.
    assert!(env.records_of("outcome").is_empty());
    env.assert_verifies(3 + results.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrongly_typed_argument_is_refused_naming_the_field() {
    let env = Env::example();
    let results = env
        .script(json!([
            {"tool": "send_email", "arguments": {"to": "bob@example.com", "subject": null, "body": "hi"}},
            {"tool": "send_email", "arguments": {"to": "bob@example.com", "subject": 5, "body": "hi"}},
        ]))
        .await;
    for r in &results {
        assert_eq!(r["error"]["kind"], "invalid-arguments", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("subject"),
            "`{message}` should name `subject`"
        );
    }
    for record in env.records_of("decision") {
        assert_eq!(record["decision"]["decided_by"], "invalid_arguments");
    }
    assert!(env.outbox().is_empty());
    env.assert_verifies(3 + results.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_argument_names_its_field_to_the_host_as_data() {
    let env = Env::example();
    let session = env.guard.start_session(session(), None).await.unwrap();
    let calls = [
        (
            "read_document",
            r#"{"document_id": "doc_88pk3r", "extra": 1}"#,
            Some("extra"),
        ),
        ("read_document", "{}", Some("document_id")),
        (
            "send_email",
            r#"{"to": "bob@example.com", "subject": 5, "body": "hi"}"#,
            Some("subject"),
        ),
        ("read_document", "{not json", None),
    ];
    let mut told = Vec::new();
    for (tool, arguments, field) in calls {
        let err = session.call(tool, arguments).await.unwrap_err();
        assert!(
            matches!(
                err,
                mandate::pipeline::ToolCallError::InvalidArguments { .. }
            ),
            "{err:?}"
        );
        assert_eq!(err.field(), field, "{tool} {arguments}: {err}");
        told.push(err.to_string());
    }
    // The record says what the agent is told; the field is in its text.
    let decisions = env.records_of("decision");
    assert_eq!(decisions.len(), told.len());
    for (record, told) in decisions.iter().zip(&told) {
        assert_eq!(record["decision"]["message"], told.as_str());
    }
    assert!(told[0].contains("`extra`"), "{}", told[0]);
    assert!(told[2].contains("field `subject`"), "{}", told[2]);
}

/// A tool that, while it runs, reads the audit log on its own and checks
/// that the decision allowing it is already there and the chain verifies.
struct CheckLog;

/// No arguments, and no field the type does not declare.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

impl Tool for CheckLog {
    type Args = NoArguments;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "check_log".into(),
            description: "Checks that its own decision record is durable.".into(),
            scope: "documents:read".into(),
            resource: ResourceBinding::Tool,
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, ctx: ToolContext, _args: Self::Args) -> Result<Value, ToolFailure> {
        let fail = |m: String| ToolFailure(m);
        let record = common::read_records(&ctx.audit_path)
            .into_iter()
            .find(|r| r["seq"] == ctx.decision_seq)
            .ok_or_else(|| fail(format!("no record with seq {}", ctx.decision_seq)))?;
        if record["kind"] != "decision"
            || record["call_id"] != ctx.call_id.as_str()
            || record["decision"]["effect"] != "allow"
        {
            return Err(fail(format!("unexpected record {record}")));
        }
        let report = mandate::audit::verify_file(&ctx.audit_path)
            .map_err(|e| fail(format!("the log does not verify: {e}")))?;
        if report.head_seq != ctx.decision_seq {
            return Err(fail(format!(
                "the decision should be the last record, head is {}",
                report.head_seq
            )));
        }
        Ok(json!({"durable": true}))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_finds_its_decision_record_durable_while_it_runs() {
    let policies = tempfile::tempdir().unwrap();
    common::copy_policies(policies.path());
    let schema = policies.path().join("schema.cedarschema");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.push_str(
        "\naction check_log in [\"documents:read\"] appliesTo {\n  principal: [Agent],\n  resource: [Tool],\n  context: { session: Session, user: User, delegation: Delegation, approval: Approval, now: datetime, arguments: {} },\n};\n",
    );
    std::fs::write(&schema, text).unwrap();

    let env = Env::builder()
        .policies(policies.path())
        .tools(|tools| {
            tools.register(CheckLog).unwrap();
        })
        .build();
    let results = env.script(json!([{"tool": "check_log"}])).await;

    assert_eq!(
        results[0],
        json!({"tool": "check_log", "ok": {"durable": true}})
    );
    let records = env.records();
    assert_eq!(records[2]["kind"], "decision");
    assert_eq!(records[2]["action"]["resource"], "Tool::\"check_log\"");
    assert_eq!(
        policy_ids(&records[2]["decision"]["determining_policies"]),
        ["scope-documents-read"]
    );
    assert_eq!(records[3]["outcome"]["status"], "ok");
    assert_eq!(records[3]["outcome"]["decision_seq"], 3);
    env.assert_verifies(5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_record_carries_the_cedar_request_that_was_evaluated() {
    let env = Env::example();
    env.script(json!([read_call("doc_88pk3r"), {"tool": "nope"}]))
        .await;
    let decisions = env.records_of("decision");
    let request = &decisions[0]["decision"]["request"];
    assert_eq!(request["principal"], "Agent::\"document-summarizer\"");
    assert_eq!(request["action"], "Action::\"read_document\"");
    assert_eq!(request["resource"], "Document::\"doc_88pk3r\"");
    let context = &request["context"];
    assert_eq!(
        context["session"],
        json!({
            "id": "sess_example_01",
            "scopes": ["documents:read", "documents:write", "email:send"],
            "type": "human_approved",
            "expires_at": {"__extn": {"fn": "datetime", "arg": "2099-01-01T00:00:00.000Z"}},
        })
    );
    assert_eq!(
        context["user"],
        json!({"__entity": {"type": "User", "id": "alice"}})
    );
    assert_eq!(
        context["delegation"],
        json!({"chain": ["user:alice", "agent:document-summarizer"], "depth": 2})
    );
    assert_eq!(context["now"]["__extn"]["fn"], "datetime");
    // Arguments are the record's (redacted) `action.arguments`; approval is
    // what the guard varies between evaluations.
    assert!(context.get("arguments").is_none());
    assert!(context.get("approval").is_none());

    // A call refused before policy has no request to record.
    assert_eq!(decisions[1]["decision"]["decided_by"], "unknown_tool");
    assert!(decisions[1]["decision"].get("request").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_too_large_for_a_record_are_refused_closed_and_recorded_by_digest() {
    use sha2::Digest;
    // A host may raise the argument limit; the record must still fit the
    // log. 3 MB of control characters is 18 MB once escaped in a record.
    let env = Env::example();
    let session = env.guard.start_session(session(), None).await.unwrap();
    let arguments = "\u{1}".repeat(3_000_000);
    let result = session.call("read_document", &arguments).await;
    let Err(mandate::pipeline::ToolCallError::InvalidArguments {
        field: None,
        problem: message,
    }) = &result
    else {
        panic!("expected a typed refusal: {result:?}");
    };
    assert!(message.contains("over the limit of 8388608"), "{message}");
    let decision = env.records_of("decision").pop().unwrap();
    assert_eq!(decision["decision"]["decided_by"], "invalid_arguments");
    assert_eq!(
        decision["action"]["arguments"],
        json!({
            "omitted": "over the record limit",
            "bytes": arguments.len(),
            "sha256": hex::encode(sha2::Sha256::digest(arguments.as_bytes())),
        })
    );
    let longest = common::log_text(&env.audit_path)
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest < 64 * 1024, "{longest} bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_schema_is_refused_at_build_naming_the_tool_and_the_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let policies_dir = dir.path().join("policies");
    common::copy_policies(&policies_dir);
    let schema = policies_dir.join("schema.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    // `write_summary` as it was before it took a summary.
    let stale = text.replace(
        "arguments: { document_id: String, summary: String }",
        "arguments: { document_id: String }",
    );
    assert_ne!(stale, text, "the example schema changed; update this test");
    std::fs::write(&schema, stale).unwrap();

    let workspace = mandate::tools::Workspace::new(dir.path().join("workspace"));
    let policies = mandate::policy::Policies::load_dir(&policies_dir).unwrap();
    let audit = mandate::audit::AuditLog::open(dir.path().join("audit")).unwrap();
    let built = mandate::pipeline::Guard::builder(policies, audit)
        .tools(mandate::tools::example_registry(&workspace).unwrap())
        .build();
    let Err(err) = built else {
        panic!("a guard was built over a schema that lacks `arguments.summary`")
    };
    let text = err.to_string();
    assert!(text.contains("`write_summary`"), "{text}");
    assert!(text.contains("`arguments.summary`"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_errors_and_results_name_no_host_path() {
    let env = Env::example();
    let root = env.dir.path().to_str().unwrap().to_string();
    // Allowed by policy, but its file is gone.
    std::fs::remove_file(env.workspace.root().join("documents/doc_88pk3r.md")).unwrap();
    let results = env
        .script(json!([
            read_call("doc_88pk3r"),
            {"tool": "write_summary", "arguments": {"document_id": "doc_88pk3r", "summary": "s"}},
        ]))
        .await;
    assert_eq!(results[0]["error"]["kind"], "tool-failed", "{results:?}");
    let told = serde_json::to_string(&results).unwrap();
    assert!(!told.contains(&root), "{told}");
    assert!(!told.contains("/documents/"), "{told}");
    assert_eq!(
        results[1]["ok"]["path"], "summaries/doc_88pk3r.md",
        "{results:?}"
    );
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("`documents/doc_88pk3r.md`"), "{message}");
    // The log, the auditor's, says what failed too, without the host's
    // directories.
    let outcomes = env.records_of("outcome");
    assert!(!outcomes[0].to_string().contains(&root), "{}", outcomes[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_failure_tells_the_agent_why_but_not_where_the_log_lives() {
    let env = Env::example();
    let session = env.guard.start_session(session(), None).await.unwrap();
    env.guard
        .audit()
        .faults()
        .set(Some(mandate::audit::FaultPlan::always(
            mandate::audit::Fault::PermissionDenied,
        )));
    let read = json!({"document_id": "doc_88pk3r"}).to_string();
    let err = session.call("read_document", &read).await.unwrap_err();
    let mandate::pipeline::ToolCallError::AuditUnavailable(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("permission denied"), "{message}");
    let root = env.dir.path().to_str().unwrap();
    assert!(!message.contains(root), "{message}");
}
