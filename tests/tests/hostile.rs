//! Hostile agents: guests that loop forever, allocate, recurse, flood the
//! host with calls, pass huge or malformed arguments, call unknown tools,
//! reach for another user's data, or trap. Each is stopped or refused as
//! specified, its session's records end with what happened, the log
//! verifies, and a well-behaved session running at the same time finishes
//! normally.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Env, read_call, report_results, session_with_id};
use mandate::limits::SessionLimits;
use mandate::runtime::{AgentComponent, RunOutcome, RunReport, Runtime};
use serde_json::{Value, json};

/// Limits small enough to hit quickly, as a host for untrusted agents might
/// set them.
fn hostile_limits() -> SessionLimits {
    SessionLimits {
        memory_bytes: 128 * 1024 * 1024,
        cpu_time: Some(Duration::from_secs(1)),
        tool_calls: 50,
        argument_bytes: 1024 * 1024,
        ..SessionLimits::default()
    }
}

/// The scripted agent under [`hostile_limits`], compiled once.
fn agent() -> &'static AgentComponent {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    static AGENT: OnceLock<AgentComponent> = OnceLock::new();
    AGENT.get_or_init(|| {
        RUNTIME
            .get_or_init(|| Runtime::with_limits(hostile_limits()).unwrap())
            .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
            .unwrap()
    })
}

/// What a well-behaved agent does meanwhile: read and summarize alice's
/// document.
fn good_task() -> Value {
    json!({"calls": [
        read_call("doc_88pk3r"),
        {"tool": "write_summary", "arguments": {"document_id": "doc_88pk3r", "summary": "ok"}},
    ]})
}

/// Runs the hostile `task` and the good task side by side in one guard;
/// checks that the good session finished with both calls allowed, and
/// returns the hostile session's report.
async fn side_by_side(env: &Env, agent: &AgentComponent, task: Value) -> RunReport {
    let started = Instant::now();
    let task = task.to_string();
    let hostile = agent.run(&env.guard, session_with_id("sess_hostile"), &task);
    let good = async {
        // Start once the hostile guest is busy.
        tokio::time::sleep(Duration::from_millis(50)).await;
        agent
            .run(
                &env.guard,
                session_with_id("sess_good"),
                &good_task().to_string(),
            )
            .await
    };
    let (hostile, good) = tokio::join!(hostile, good);
    let good = good.unwrap();
    let results = report_results(&good);
    assert_eq!(results.len(), 2, "{results:?}");
    for r in &results {
        assert!(r.get("ok").is_some(), "the good session was disturbed: {r}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    hostile.unwrap()
}

/// The hostile session was stopped with `expected` in its message; its
/// records end with a guest fault and a session end saying so; the log
/// verifies.
fn assert_stopped(env: &Env, report: &RunReport, expected: &str) -> String {
    let RunOutcome::Faulted(message) = &report.outcome else {
        panic!("expected the guest to be stopped: {:?}", report.outcome);
    };
    assert!(message.contains(expected), "{message}");
    let records: Vec<Value> = env
        .records()
        .into_iter()
        .filter(|r| r["session_id"] == "sess_hostile")
        .collect();
    let n = records.len();
    assert!(n >= 3, "{records:?}");
    assert_eq!(records[n - 2]["kind"], "guest_fault");
    assert_eq!(records[n - 2]["detail"]["message"], message.as_str());
    assert_eq!(records[n - 1]["kind"], "session_end");
    assert_eq!(records[n - 1]["detail"]["status"], "guest_fault");
    assert_eq!(records[n - 1]["detail"]["message"], message.as_str());
    assert_verifies(env);
    message.clone()
}

fn assert_verifies(env: &Env) {
    let records = env.records().len() as u64;
    env.assert_verifies(records);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_loops_forever_is_stopped_at_its_cpu_time() {
    let env = Env::example();
    let started = Instant::now();
    let report = side_by_side(&env, agent(), json!({"spin": true})).await;
    let message = assert_stopped(
        &env,
        &report,
        "session limit exceeded: cpu time of 1000 ms running guest code",
    );
    // Stopped about when its second of CPU ran out, not much later.
    assert!(started.elapsed() < Duration::from_secs(20), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_allocates_without_bound_is_stopped_at_its_memory_limit() {
    let env = Env::example();
    let report = side_by_side(&env, agent(), json!({"allocate_bytes": 1u64 << 30})).await;
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: linear memory of 134217728 bytes; the guest asked for",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_recurses_without_bound_is_stopped_at_its_stack_limit() {
    let env = Env::example();
    let report = side_by_side(&env, agent(), json!({"recurse": true})).await;
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: wasm stack of 1048576 bytes",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_whose_own_stack_overflows_its_memory_is_stopped_by_the_fault() {
    // A Rust guest keeps part of its stack in linear memory; overflowing it
    // is an out-of-bounds access inside the guest's own memory, which stops
    // the guest and touches nothing outside it.
    let env = Env::example();
    let report = side_by_side(&env, agent(), json!({"recurse_in_memory": true})).await;
    assert_stopped(&env, &report, "out of bounds memory access");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_floods_the_host_with_calls_is_stopped_at_its_call_limit() {
    let env = Env::example();
    let task = json!({"calls": [read_call("doc_88pk3r")], "repeat": 10_000});
    let report = side_by_side(&env, agent(), task).await;
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: 50 tool calls per session",
    );
    // The 50 calls within the limit were decided and recorded; none after.
    let decisions = env
        .records_of("decision")
        .into_iter()
        .filter(|r| r["session_id"] == "sess_hostile")
        .count();
    assert_eq!(decisions, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_passes_100_mb_of_arguments_is_stopped_before_anything_parses_them() {
    let env = Env::example();
    let task = json!({"big_call": {"tool": "read_document", "bytes": 100_000_000}});
    let report = side_by_side(&env, agent(), task).await;
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: arguments of 1048576 bytes per call; the guest passed 100000000 bytes to `read_document`",
    );
    // No decision record: the call never reached the call path.
    assert!(
        env.records_of("decision")
            .iter()
            .all(|r| r["session_id"] != "sess_hostile")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_unknown_tools_and_another_users_document_are_refused_and_recorded() {
    let env = Env::example();
    let task = json!({"calls": [
        {"tool": "read_document", "raw": "{\"document_id\": \"doc_88pk3r\""},
        {"tool": "read_document", "raw": "\u{0}\u{1}binary"},
        {"tool": "delete_everything", "arguments": {"all": true}},
        {"tool": "read_document", "arguments": {"document_id": "doc_4hq2zt"}},
        {"tool": "write_summary", "arguments": {"document_id": "doc_4hq2zt", "summary": "mine now"}},
        {"tool": "read_document", "arguments": {"document_id": "../../etc/passwd"}},
        {"tool": "read_document", "arguments": {"document_id": "doc_88pk3r", "user": "bob"}},
    ]});
    let report = side_by_side(&env, agent(), task).await;
    let results = report_results(&report);
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["error"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        kinds,
        [
            "invalid-arguments",
            "invalid-arguments",
            "unknown-tool",
            "denied",
            "denied",
            "invalid-arguments",
            "invalid-arguments",
        ],
        "{results:#?}"
    );
    assert_eq!(
        results[3]["error"]["policies"],
        json!(["forbid-document-not-owned"])
    );
    assert_eq!(
        results[4]["error"]["policies"],
        json!(["forbid-document-not-owned"])
    );
    // Every refusal is a decision record; nothing ran.
    let hostile: Vec<Value> = env
        .records()
        .into_iter()
        .filter(|r| r["session_id"] == "sess_hostile")
        .collect();
    let decided_by: Vec<&str> = hostile
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| r["decision"]["decided_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        decided_by,
        [
            "invalid_arguments",
            "invalid_arguments",
            "unknown_tool",
            "policy",
            "policy",
            "invalid_arguments",
            "invalid_arguments",
        ]
    );
    assert!(hostile.iter().all(|r| r["kind"] != "outcome"));
    assert_eq!(hostile.last().unwrap()["detail"]["status"], "completed");
    assert_verifies(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_traps_on_purpose_is_stopped_and_recorded() {
    let env = Env::example();
    let report = side_by_side(&env, agent(), json!({"trap": true})).await;
    assert_stopped(&env, &report, "unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fuel_budget_stops_a_compute_bound_guest_and_names_the_budget() {
    let limits = SessionLimits {
        fuel: Some(20_000_000),
        ..SessionLimits::default()
    };
    let runtime = Runtime::with_limits(limits).unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let env = Env::example();
    // Within the budget: finishes.
    let small = side_by_side(&env, &agent, json!({"compute": 1000})).await;
    assert!(
        matches!(small.outcome, RunOutcome::Finished(Ok(_))),
        "{small:?}"
    );
    // Past it: stopped, naming the budget.
    let report = side_by_side(&env, &agent, json!({"compute": 1u64 << 40})).await;
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: fuel budget of 20000000",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_over_the_result_limit_stops_the_guest_before_it_sees_it() {
    let limits = SessionLimits {
        result_bytes: 100,
        ..SessionLimits::default()
    };
    let runtime = Runtime::with_limits(limits).unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let env = Env::example();
    let report = agent
        .run(
            &env.guard,
            session_with_id("sess_hostile"),
            &json!({"calls": [read_call("doc_88pk3r")]}).to_string(),
        )
        .await
        .unwrap();
    assert_stopped(
        &env,
        &report,
        "session limit exceeded: results of 100 bytes per call; `read_document` returned",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_over_the_concurrency_limit_is_refused_and_recorded() {
    let limits = SessionLimits {
        concurrent_sessions: 1,
        cpu_time: Some(Duration::from_millis(500)),
        ..SessionLimits::default()
    };
    let runtime = Runtime::with_limits(limits).unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let env = Env::example();
    let spin = json!({"spin": true}).to_string();
    let busy = agent.run(&env.guard, session_with_id("sess_busy"), &spin);
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        agent
            .run(
                &env.guard,
                session_with_id("sess_hostile"),
                &good_task().to_string(),
            )
            .await
            .unwrap()
    };
    let (busy, second) = tokio::join!(busy, second);
    assert!(matches!(busy.unwrap().outcome, RunOutcome::Faulted(_)));
    assert_stopped(
        &env,
        &second,
        "host limit reached: 1 concurrent sessions; the session was not run",
    );
    // Once the first session is over, a new one runs.
    let after = agent
        .run(
            &env.guard,
            session_with_id("sess_after"),
            &good_task().to_string(),
        )
        .await
        .unwrap();
    assert!(
        matches!(after.outcome, RunOutcome::Finished(Ok(_))),
        "{after:?}"
    );
}

/// Set in the child process that [`what_a_guest_prints_is_captured_in_its_session_not_the_hosts_output`]
/// starts: the child runs the guest; the parent watches the child's real
/// stdout and stderr (file descriptors 1 and 2, which libtest's capture does
/// not cover).
const PRINT_CHILD: &str = "MANDATE_TEST_GUEST_PRINT_CHILD";
const GUEST_SAYS: &str = "guest-print-marker-7f3a";

#[tokio::test(flavor = "multi_thread")]
async fn what_a_guest_prints_is_captured_in_its_session_not_the_hosts_output() {
    if std::env::var_os(PRINT_CHILD).is_none() {
        // The parent: run this same test in a child process and look at
        // everything the child wrote to its own stdout and stderr.
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "what_a_guest_prints_is_captured_in_its_session_not_the_hosts_output",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PRINT_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        // The child really ran the guest, and its own output does reach us.
        assert!(stdout.contains("1 passed"), "{stdout}");
        assert!(stdout.contains("host side: the guest ran"), "{stdout}");
        // The guest's words reached neither of the host's streams.
        assert!(!stdout.contains(GUEST_SAYS), "stdout:\n{stdout}");
        assert!(!stderr.contains(GUEST_SAYS), "stderr:\n{stderr}");
        return;
    }
    let env = Env::example();
    let report = agent()
        .run(
            &env.guard,
            session_with_id("sess_print"),
            &json!({"print": GUEST_SAYS}).to_string(),
        )
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::Finished(Ok(_))),
        "{report:?}"
    );
    assert_eq!(
        report.output,
        format!("stdout: {GUEST_SAYS}\nstderr: {GUEST_SAYS}\n")
    );
    println!("host side: the guest ran");
}

/// SHA-256 of `text`, as the records write it.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The longest line of the log, in bytes.
fn longest_line(env: &Env) -> usize {
    common::log_text(&env.audit_path)
        .lines()
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tool_name_of_a_megabyte_is_recorded_bounded_with_its_size_and_digest() {
    let env = Env::example();
    let name = format!("{}\u{1b}[8m", "x".repeat(1_000_000));
    let task = json!({"calls": [{"tool": name, "arguments": {"all": true}}]});
    let report = side_by_side(&env, agent(), task).await;
    let results = report_results(&report);
    assert_eq!(results[0]["error"]["kind"], "unknown-tool", "{results:?}");
    // What the agent is told is bounded too.
    let told = results[0]["error"]["message"].as_str().unwrap();
    assert!(told.len() <= 512, "{} bytes", told.len());

    let decision = env
        .records_of("decision")
        .into_iter()
        .find(|r| r["session_id"] == "sess_hostile")
        .unwrap();
    let recorded = decision["action"]["tool"].as_str().unwrap();
    assert!(recorded.len() <= 512, "{} bytes", recorded.len());
    assert!(!recorded.contains('\u{1b}'), "{recorded}");
    assert_eq!(
        decision["action"]["tool_truncated"],
        json!({"bytes": name.len(), "sha256": sha256_hex(&name)})
    );
    let message = decision["decision"]["message"].as_str().unwrap();
    assert!(message.len() <= 1024, "{} bytes", message.len());
    assert!(
        longest_line(&env) < 16 * 1024,
        "{} bytes",
        longest_line(&env)
    );
    assert_verifies(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_error_of_ten_megabytes_is_recorded_truncated_with_its_size_and_digest() {
    let env = Env::example();
    // The scripted agent gives up quoting what it could not use: 10 MB of it.
    let big = json!(["A".repeat(10_000_000)]);
    let report = side_by_side(&env, agent(), json!({"print": big})).await;
    let RunOutcome::Finished(Err(full)) = &report.outcome else {
        panic!("expected the agent to give up: {:?}", report.outcome);
    };
    assert_eq!(
        full,
        &format!("task field \"print\" must be a string, not {big}")
    );
    let end = env
        .records_of("session_end")
        .into_iter()
        .find(|r| r["session_id"] == "sess_hostile")
        .unwrap();
    assert_eq!(end["detail"]["status"], "agent_error");
    let message = end["detail"]["message"].as_str().unwrap();
    assert!(message.len() <= 4096, "{} bytes", message.len());
    assert!(full.starts_with(message.trim_end_matches('…')), "{message}");
    assert_eq!(
        end["detail"]["message_truncated"],
        json!({"bytes": full.len(), "sha256": sha256_hex(full)})
    );
    assert!(
        longest_line(&env) < 16 * 1024,
        "{} bytes",
        longest_line(&env)
    );
    assert_verifies(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_document_and_another_users_read_alike_to_the_agent() {
    let env = Env::example();
    let results = env
        .script(json!([
            read_call("doc_4hq2zt"),
            read_call("doc_0nothere"),
            {"tool": "write_summary", "arguments": {"document_id": "doc_4hq2zt", "summary": "s"}},
            {"tool": "write_summary", "arguments": {"document_id": "doc_0nothere", "summary": "s"}},
        ]))
        .await;
    // Bob's document and one that does not exist: the same answer, so the
    // agent cannot learn which documents exist.
    assert_eq!(results[0], results[1], "{results:#?}");
    assert_eq!(results[2], results[3], "{results:#?}");
    assert_eq!(results[0]["error"]["kind"], "denied", "{results:#?}");
    assert!(!results[1].to_string().contains("exist"), "{results:#?}");
    // The record keeps the precise reason for the auditor.
    let decisions = env.records_of("decision");
    let missing = decisions[1]["decision"]["errors"].to_string();
    assert!(missing.contains("doc_0nothere"), "{missing}");
    assert!(missing.contains("does not exist"), "{missing}");
    assert_eq!(decisions[0]["decision"]["errors"], json!([]));
}

/// The `mandate` binary of this workspace's build, beside this test
/// executable (`target/<profile>/deps/..`).
fn mandate_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("mandate");
    assert!(
        binary.is_file(),
        "no `mandate` binary at `{}`",
        binary.display()
    );
    binary
}

#[test]
fn a_stale_schema_cannot_carry_a_secret_argument_to_the_record_the_agent_or_stdout() {
    const SECRET: &str = "hunter2-7f3a9c-the-vault-code";
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    common::copy_policies(&policies);
    // `send_email` as the schema knew it before it took a body: to Cedar,
    // the body the agent sends is one field too many.
    let schema = policies.join("schema.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    let stale = text.replace(
        "arguments: { body: String, subject: String, to: String }",
        "arguments: { subject: String, to: String }",
    );
    assert_ne!(stale, text, "the example schema changed; update this test");
    std::fs::write(&schema, stale).unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    let audit = dir.path().join("audit");
    let task = json!({"calls": [
        {"tool": "send_email", "arguments": {
            "to": "bob@example.com", "subject": "hi", "body": SECRET,
        }},
    ]});
    let output = std::process::Command::new(mandate_binary())
        .arg("run")
        .arg("--agent")
        .arg(mandate_tests::SCRIPTED_AGENT)
        .arg("--policies")
        .arg(&policies)
        .arg("--session")
        .arg(policies.join("session.json"))
        .arg("--audit")
        .arg(&audit)
        .arg("--workspace")
        .arg(&workspace)
        .arg(task.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // Stdout carries the agent's report, so what the agent was told too.
    assert!(!stdout.contains(SECRET), "{shown}");
    assert!(!stderr.contains(SECRET), "{shown}");
    let log = if audit.exists() {
        common::read_records(&audit)
            .iter()
            .map(Value::to_string)
            .collect::<String>()
    } else {
        String::new()
    };
    assert!(!log.contains(SECRET), "{log}");
    // The guard does not start over a schema that disagrees with its tools,
    // and says which tool and which attribute.
    assert_ne!(output.status.code(), Some(0), "{shown}");
    assert!(stderr.contains("`send_email`"), "{shown}");
    assert!(stderr.contains("`arguments.body`"), "{shown}");
}
