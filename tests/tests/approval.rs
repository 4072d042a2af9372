//! Calls that policy holds for a human: `send_email` needs an approval from a
//! member of `Group::"reviewers"` (policies/approval.cedar).

mod common;

use std::time::{Duration, Instant};

use common::{Env, FixedReviewer, email_call, policy_ids, script_file, session};
use mandate::pipeline::{CommandReviewer, DenyAll, PendingApproval};
use serde_json::{Value, json};

const SECRET: &str = "the launch slips to October; tell nobody";

/// The single decision record of a one-call run.
fn only_decision(env: &Env) -> Value {
    let mut decisions = env.records_of("decision");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    decisions.remove(0)
}

/// Checks that a held call was refused: no outcome, nothing sent, the log
/// intact with log_start, session_start, approval_requested, decision and
/// session_end.
fn assert_refused_and_nothing_sent(env: &Env) {
    assert!(env.records_of("outcome").is_empty());
    assert!(env.outbox().is_empty());
    env.assert_verifies(5);
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
    env.assert_verifies(6);
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
    env.assert_verifies(6);
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

/// Approves as `carol`, but only after `delay`: a human who answers late.
struct LateReviewer {
    delay: Duration,
    seen: std::sync::Arc<std::sync::Mutex<Vec<PendingApproval>>>,
}

impl mandate::pipeline::Reviewer for LateReviewer {
    fn name(&self) -> &str {
        "late"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> mandate::pipeline::BoxFuture<
        'a,
        Result<mandate::pipeline::ReviewDecision, mandate::pipeline::ReviewError>,
    > {
        self.seen.lock().unwrap().push(pending.clone());
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Ok(mandate::pipeline::ReviewDecision {
                decision: mandate::pipeline::Verdict::Approve,
                reviewer: "carol".into(),
                reason: Some("late but fine".into()),
                scope: Default::default(),
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_approved_after_its_session_expired_does_not_run() {
    let seen = std::sync::Arc::default();
    let env = Env::builder()
        .reviewer(LateReviewer {
            delay: Duration::from_secs(12),
            seen: std::sync::Arc::clone(&seen),
        })
        .approval_timeout(Duration::from_secs(60))
        .build();
    let mut s = session();
    // Long enough that the call is made before expiry on a loaded machine (the
    // session start compiles nothing, but CI runs many tests at once); the
    // reviewer answers two seconds after it.
    s.expires_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(10);
    let expires_at = s.expires_at;
    let results = env.script_as(s, json!([email_call(SECRET)])).await;

    assert!(results[0].get("ok").is_none(), "{results:?}");
    assert!(env.outbox().is_empty(), "an email was sent after expiry");
    let pending = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("the reviewer was never asked: {results:?}"));
    assert!(
        pending.deadline <= expires_at,
        "deadline {} is after the session's expiry {expires_at}",
        pending.deadline
    );
    let decision = only_decision(&env);
    assert_eq!(decision["decision"]["effect"], "deny");
    assert!(env.records_of("outcome").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_is_recorded_before_the_reviewer_is_asked() {
    let reviewer = FixedReviewer::approves_as("carol");
    let env = Env::builder().reviewer(reviewer.clone()).build();
    env.script(json!([email_call(SECRET)])).await;

    let records = env.records();
    let kinds = common::kinds(&records);
    let held = kinds.iter().position(|k| k == "approval_requested");
    let decided = kinds.iter().position(|k| k == "decision");
    assert!(
        held.is_some() && held < decided,
        "no hold recorded before the decision: {kinds:?}"
    );
    let hold = &records[held.unwrap()];
    let pending = &reviewer.seen()[0];
    assert_eq!(hold["call_id"], "sess_example_01:1");
    assert_eq!(hold["action"]["tool"], "send_email");
    assert_eq!(hold["detail"]["approval_id"], pending.approval_id);
    assert_eq!(hold["detail"]["deadline"], pending.deadline.to_string());
    assert_eq!(hold["detail"]["reviewer_callback"], "fixed");
    assert_eq!(
        policy_ids(&hold["detail"]["demanded_by"]),
        ["email-requires-approval"]
    );
    assert!(!common::log_text(&env.audit_path).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_command_does_not_see_the_hosts_secrets() {
    // SAFETY of the test: no other test in this binary reads these names.
    unsafe {
        std::env::set_var("MANDATE_TEST_API_KEY", "sk-host-secret-4242");
        std::env::set_var("MANDATE_TEST_ALLOWED", "shown-on-purpose");
    }
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("env.txt");
    let program = script_file(
        dir.path(),
        "env.sh",
        &format!(
            r#"cat >/dev/null
env > '{}'
echo '{{"decision":"deny","reviewer":"carol"}}'"#,
            seen.display()
        ),
    );
    let env = Env::builder()
        .reviewer(CommandReviewer::new(&program).allow_env("MANDATE_TEST_ALLOWED"))
        .build();
    env.script(json!([email_call(SECRET)])).await;

    let shown = std::fs::read_to_string(&seen).unwrap();
    assert!(!shown.contains("sk-host-secret-4242"), "{shown}");
    assert!(
        shown.contains("MANDATE_TEST_ALLOWED=shown-on-purpose"),
        "{shown}"
    );
    assert!(shown.contains("PATH="), "{shown}");
}

/// The `mandate` binary of this build, beside the test binaries' `deps/`.
/// Cargo builds it with the workspace's tests.
fn mandate_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("mandate");
    assert!(
        bin.exists(),
        "no `mandate` binary at `{}`: run with `cargo test --workspace`",
        bin.display()
    );
    bin
}

#[test]
fn a_host_killed_while_a_call_waits_leaves_the_hold_in_the_log() {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let pid_file = dir.path().join("reviewer.pid");
    let program = script_file(
        dir.path(),
        "slow.sh",
        &format!("echo $$ > '{}'\nexec sleep 60", pid_file.display()),
    );
    let task = json!({"calls": [email_call(SECRET)]}).to_string();
    let policies = common::policies_dir();
    let mut child = std::process::Command::new(mandate_binary())
        .args([
            "run",
            "--agent",
            mandate_tests::SCRIPTED_AGENT,
            "--policies",
        ])
        .arg(&policies)
        .arg("--session")
        .arg(policies.join("session.json"))
        .arg("--audit")
        .arg(&audit)
        .arg("--workspace")
        .arg(dir.path())
        .arg("--approver")
        .arg(format!("cmd:{}", program.display()))
        .arg(&task)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut held = None;
    let mut shown = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        shown.push_str(&line);
        shown.push('\n');
        if line.contains("held") && line.contains("waiting") {
            held = Some(line);
            break;
        }
    }
    // SIGKILL: nothing of the host runs after this.
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let held = held.unwrap_or_else(|| panic!("`mandate run` never said the call waits:\n{shown}"));

    let records = common::read_records(&audit);
    let kinds = common::kinds(&records);
    assert!(!kinds.contains(&"decision".to_string()), "{kinds:?}");
    let hold = records
        .iter()
        .find(|r| r["kind"] == "approval_requested")
        .unwrap_or_else(|| panic!("no hold in the log: {kinds:?}"));
    let approval_id = hold["detail"]["approval_id"].as_str().unwrap();
    assert!(approval_id.starts_with("apr:sess_example_01:1:"), "{hold}");
    assert!(held.contains(approval_id), "{held}");
    assert_eq!(hold["action"]["tool"], "send_email");
    assert_eq!(
        policy_ids(&hold["detail"]["demanded_by"]),
        ["email-requires-approval"]
    );
    assert!(hold["detail"]["deadline"].is_string(), "{hold}");
    assert!(!common::log_text(&audit).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn send_email_takes_exactly_one_address_and_names_the_field() {
    let reviewer = FixedReviewer::approves_as("carol");
    let env = Env::builder().reviewer(reviewer.clone()).build();
    let lists = [
        "eve@evil.example, bob@example.com",
        "eve@evil.example\nbob@example.com",
        "Eve <eve@evil.example>",
        "eve@evil.example bob@example.com",
        "eve@evil.example@example.com",
        "bob",
    ];
    let calls: Vec<Value> = lists
        .iter()
        .map(|to| {
            json!({"tool": "send_email",
                   "arguments": {"to": to, "subject": "s", "body": SECRET}})
        })
        .collect();
    let results = env.script(Value::Array(calls)).await;

    for (to, result) in lists.iter().zip(&results) {
        let error = &result["error"];
        assert_eq!(error["kind"], "invalid-arguments", "{to:?}: {result}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("`to`"), "{to:?}: {message}");
        assert!(message.contains("exactly one"), "{to:?}: {message}");
    }
    assert!(env.outbox().is_empty());
    assert!(reviewer.seen().is_empty(), "a reviewer was asked");

    // One plain address still goes through.
    let results = env.script(json!([email_call(SECRET)])).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
}

/// Runs `examples/reviewer.sh` on a pending approval of an email to `to`
/// and returns its decision.
fn example_reviewer_decides(to: &str) -> Value {
    use std::io::Write as _;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/reviewer.sh");
    let mut child = std::process::Command::new("sh")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pending = json!({"tool": "send_email", "arguments": {"to": to, "subject": "s"}});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pending.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_example_reviewer_approves_only_a_whole_internal_address() {
    assert_eq!(
        example_reviewer_decides("bob@example.com")["decision"],
        "approve"
    );
    for to in [
        "eve@evil.example, bob@example.com",
        "eve@evil.example\nbob@example.com",
        "eve@evil.example,bob@example.com",
        "<eve@evil.example> bob@example.com",
        "bob@notexample.com",
    ] {
        assert_eq!(
            example_reviewer_decides(to)["decision"],
            "deny",
            "{to:?} was approved"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_reviewer_sees_the_held_body_in_clear_another_does_not_and_no_file_keeps_it() {
    use mandate::pipeline::Verdict;
    use mandate::pipeline::queue::{ApprovalQueue, GrantScope, QueueDecision, QueueReviewer};
    use mandate::pipeline::reveal::{RevealConfig, RevealError, fetch, socket_dir_for_queue};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let queue_path = dir.path().join("approvals.sqlite");
    let queue = ApprovalQueue::open(&queue_path).unwrap();
    let sockets = socket_dir_for_queue(&queue_path);
    let env = Env::builder()
        .reviewer(QueueReviewer::new(
            ApprovalQueue::open(&queue_path).unwrap(),
        ))
        .reveal(RevealConfig::to(["carol"]).serve_in(&sockets))
        .build();
    let agent = tokio::spawn(async move {
        let results = env.script(json!([email_call(SECRET)])).await;
        (env, results)
    });
    let start = Instant::now();
    let id = loop {
        if let Some(a) = queue.pending().unwrap().first() {
            break a.pending.approval_id.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "nothing held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let show = |reviewer: &'static str| {
        let (id, queue_path) = (id.clone(), queue_path.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(mandate_binary())
                .args(["approvals", "show", &id, "--queue"])
                .arg(&queue_path)
                .args(["--reviewer", reviewer])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            (
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        })
    };

    // carol, whom the operator allows, sees the body while the call waits.
    let values = fetch(&sockets, &id, "carol").await.unwrap();
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(values[0].path, "arguments.body");
    assert_eq!(values[0].value, SECRET);
    let (shown, _) = show("carol").await.unwrap();
    assert!(shown.contains(SECRET), "{shown}");
    assert!(shown.contains("arguments.body"), "{shown}");

    // bob is not allowed: refused, and his `show` has only the commitment.
    let refused = fetch(&sockets, &id, "bob").await.unwrap_err();
    assert!(matches!(refused, RevealError::Refused(_)), "{refused}");
    assert!(refused.to_string().contains("`bob`"), "{refused}");
    let (shown, note) = show("bob").await.unwrap();
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(note.contains("does not allow reviewer `bob`"), "{note}");

    let mode = std::fs::metadata(&sockets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let files_keep_it = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .any(|p| {
                let bytes = std::fs::read(&p).unwrap();
                bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
            })
    };
    assert!(!files_keep_it(), "the queue files hold the body in clear");

    queue
        .decide(
            &id,
            &QueueDecision {
                verdict: Verdict::Approve,
                reviewer: "carol".into(),
                reason: None,
                scope: GrantScope::Once,
            },
        )
        .unwrap();
    let (env, results) = tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert!(!common::log_text(&env.audit_path).contains(SECRET));
    assert!(!files_keep_it(), "the queue files hold the body in clear");

    // The hold is over: nothing is served any more, no socket is left.
    let gone = fetch(&sockets, &id, "carol").await.unwrap_err();
    assert!(matches!(gone, RevealError::NotOffered(_)), "{gone}");
    assert_eq!(std::fs::read_dir(&sockets).unwrap().count(), 0);
}
