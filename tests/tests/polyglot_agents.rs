//! The example agent written in Python and in JavaScript, built by
//! componentize-py and componentize-js with their default options
//! (`scripts/build-agents`), run through the real host: each scenario runs
//! for both languages, and each agent's report must be the Rust agent's
//! report for the same task, session and tools, word for word. The scripted
//! agents of both languages (`guest/scripted-agent-py`,
//! `guest/scripted-agent-js`) make the same calls as the Rust scripted agent
//! and must see the same results and the same `tool-error` cases, each raised
//! by the author module as its typed exception.
//!
//! The components are read from `MANDATE_PYTHON_AGENT`,
//! `MANDATE_JAVASCRIPT_AGENT`, `MANDATE_PYTHON_SCRIPTED_AGENT` and
//! `MANDATE_JAVASCRIPT_SCRIPTED_AGENT`, else from `polyglot/` in the target directory
//! (`CARGO_TARGET_DIR`, else `target/`), where `scripts/build-agents` puts
//! them. CPython and StarlingMonkey take minutes to compile in a debug build,
//! so they are compiled into a cache there, `polyglot/compiled/`, once per
//! change of component.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{Env, EnvBuilder, FixedReviewer, kinds, policy_ids, session};
use mandate::pipeline::{Session, ToolRegistry};
use mandate::runtime::{AgentComponent, RunOutcome, RunReport, Runtime};
use mandate::tools::{ReadDocument, WriteSummary, document_entity_type};
use serde_json::{Value, json};

/// The task of the example sessions.
const TASK: &str = "summarize doc_88pk3r and share it with bob@example.com";

#[derive(Debug, Clone, Copy)]
enum Language {
    Python,
    JavaScript,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static PYTHON: OnceLock<AgentComponent> = OnceLock::new();
static JAVASCRIPT: OnceLock<AgentComponent> = OnceLock::new();
static PYTHON_SCRIPTED: OnceLock<AgentComponent> = OnceLock::new();
static JAVASCRIPT_SCRIPTED: OnceLock<AgentComponent> = OnceLock::new();

/// Which of a language's two agents.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The example document summarizer.
    Example,
    /// The scripted test agent.
    Scripted,
}

/// `polyglot/` in the target directory, as in scripts/build-agents (a
/// relative `CARGO_TARGET_DIR` is the workspace's).
fn polyglot_dir() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("polyglot")
}

/// A runtime with the default limits, which admit both agents, and a
/// compile cache kept across test runs.
fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Runtime::builder()
            .compile_cache(polyglot_dir().join("compiled"))
            .build()
            .unwrap()
    })
}

impl Language {
    /// The environment variable that names the component, and its file name
    /// in the build's output directory.
    fn source(self, kind: Kind) -> (&'static str, &'static str) {
        match (self, kind) {
            (Language::Python, Kind::Example) => {
                ("MANDATE_PYTHON_AGENT", "document_summarizer_py.wasm")
            }
            (Language::Python, Kind::Scripted) => {
                ("MANDATE_PYTHON_SCRIPTED_AGENT", "scripted_agent_py.wasm")
            }
            (Language::JavaScript, Kind::Example) => {
                ("MANDATE_JAVASCRIPT_AGENT", "document_summarizer_js.wasm")
            }
            (Language::JavaScript, Kind::Scripted) => (
                "MANDATE_JAVASCRIPT_SCRIPTED_AGENT",
                "scripted_agent_js.wasm",
            ),
        }
    }

    fn path(self, kind: Kind) -> PathBuf {
        let (variable, file) = self.source(kind);
        match std::env::var_os(variable) {
            Some(path) => PathBuf::from(path),
            None => polyglot_dir().join(file),
        }
    }

    /// The component's bytes; fails saying how to build it when it is missing.
    fn bytes(self, kind: Kind) -> Vec<u8> {
        let path = self.path(kind);
        let (variable, _) = self.source(kind);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the {self:?} agent `{}` ({e}): run scripts/build-agents, or set {variable} to the component",
                path.display()
            )
        })
    }

    /// The agent's component, loaded once per test binary (compiled, or
    /// taken from the compile cache).
    fn load(self, kind: Kind) -> &'static AgentComponent {
        let cell = match (self, kind) {
            (Language::Python, Kind::Example) => &PYTHON,
            (Language::Python, Kind::Scripted) => &PYTHON_SCRIPTED,
            (Language::JavaScript, Kind::Example) => &JAVASCRIPT,
            (Language::JavaScript, Kind::Scripted) => &JAVASCRIPT_SCRIPTED,
        };
        cell.get_or_init(|| {
            runtime()
                .load_agent_bytes(&self.path(kind), &self.bytes(kind))
                .unwrap_or_else(|e| panic!("mandate refuses the {self:?} {kind:?} agent: {e}"))
        })
    }

    /// The example agent.
    fn agent(self) -> &'static AgentComponent {
        self.load(Kind::Example)
    }

    /// The line the agent prints to stdout when it starts on `task`.
    fn greeting(self, task: &str) -> String {
        let name = match self {
            Language::Python => "document-summarizer-py",
            Language::JavaScript => "document-summarizer-js",
        };
        format!("{name}: task: {task}")
    }
}

/// One run of the agent in `language`, in an environment of its own.
struct Run {
    env: Env,
    report: RunReport,
    /// What `run` returned: the agent's report, or why it gave up.
    result: Result<String, String>,
    agent: &'static AgentComponent,
}

/// Runs the agent in `language` on `task` under `session`, in the
/// environment `builder` describes (`prepare` may change it first), then
/// runs the Rust agent the same way in a second such environment and checks
/// that both returned the same, and that the agent's print reached the
/// session's output.
async fn run_like_rust(
    language: Language,
    builder: impl Fn() -> EnvBuilder,
    prepare: impl Fn(&Env),
    session: Session,
    task: &str,
) -> Run {
    let agent = language.agent();
    let env = builder().build();
    prepare(&env);
    let report = agent.run(&env.guard, session.clone(), task).await.unwrap();
    let RunOutcome::Finished(result) = report.outcome.clone() else {
        panic!(
            "the {language:?} agent did not finish: {:?}\noutput: {}",
            report.outcome, report.output
        );
    };
    assert!(
        report.output.contains(&language.greeting(task)),
        "the {language:?} agent's print is not in the session's output: {:?}",
        report.output
    );

    let rust_env = builder().build();
    prepare(&rust_env);
    let rust = common::document_summarizer()
        .run(&rust_env.guard, session, task)
        .await
        .unwrap();
    assert_eq!(
        report.outcome, rust.outcome,
        "the {language:?} agent and the Rust agent disagree"
    );

    for record in &env.records()[1..] {
        assert_eq!(record["agent"]["component_digest"], agent.digest());
    }
    Run {
        env,
        report,
        result,
        agent,
    }
}

/// The example session with its expiry in the past.
fn expired_session() -> Session {
    let mut s = session();
    s.expires_at = "2020-01-01T00:00:00Z".parse().unwrap();
    s
}

/// `policies/session-autonomous.json`: alice's agent without a human, and
/// without the `email:send` scope.
fn autonomous_session() -> Session {
    Session::from_file(&common::policies_dir().join("session-autonomous.json")).unwrap()
}

/// The decision records' tools, effects and deciders, in order.
fn decisions(records: &[Value]) -> Vec<(String, String, String)> {
    records
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&r["action"]["tool"]),
                text(&r["decision"]["effect"]),
                text(&r["decision"]["decided_by"]),
            )
        })
        .collect()
}

fn decision(tool: &str, effect: &str, decided_by: &str) -> (String, String, String) {
    (tool.into(), effect.into(), decided_by.into())
}

/// The summary: the report's last paragraph.
fn summary_of(report: &str) -> &str {
    report
        .rsplit_once("\n\n")
        .map_or("", |(_, summary)| summary)
}

async fn reads_and_writes_but_may_not_email_without_a_reviewer(language: Language) {
    let run = run_like_rust(language, Env::builder, |_| {}, session(), TASK).await;
    let text = run.result.unwrap();
    assert!(
        text.starts_with("read_document doc_88pk3r: allowed\n"),
        "{text}"
    );
    assert!(
        text.contains("\nwrite_summary doc_88pk3r: allowed\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\nsend_email bob@example.com: refused (approval denied: no reviewer is configured; held calls are denied)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\ndone: 2 of 3 tool calls allowed\n\n"),
        "{text}"
    );
    let summary =
        std::fs::read_to_string(run.env.workspace.root().join("summaries/doc_88pk3r.md")).unwrap();
    assert!(summary.starts_with("# Q3 planning notes"), "{summary}");
    assert!(
        summary.ends_with("words in the full document.)"),
        "{summary}"
    );
    assert_eq!(summary_of(&text), summary);
    assert!(run.env.outbox().is_empty());

    let records = run.env.records();
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
    assert_eq!(
        decisions(&records),
        [
            decision("read_document", "allow", "policy"),
            decision("write_summary", "allow", "policy"),
            decision("send_email", "deny", "policy"),
        ]
    );
    assert_eq!(records[3]["outcome"]["status"], "ok");
    assert_eq!(records[5]["outcome"]["status"], "ok");
    let email = &records[7];
    assert_eq!(email["approval"]["required"], true);
    assert_eq!(email["approval"]["outcome"], "denied");
    assert_eq!(email["approval"]["reviewer"], "deny-all");
    assert!(email["action"]["arguments"]["body"]["redacted"].is_string());
    assert_eq!(records[8]["detail"], json!({"status": "completed"}));
    run.env.assert_verifies(9);
}

async fn emails_the_summary_when_a_reviewer_approves(language: Language) {
    let reviewer = || Env::builder().reviewer(FixedReviewer::approves_as("carol"));
    let run = run_like_rust(language, reviewer, |_| {}, session(), TASK).await;
    let text = run.result.unwrap();
    assert!(
        text.contains("\nsend_email bob@example.com: allowed\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndone: 3 of 3 tool calls allowed\n\n"),
        "{text}"
    );

    let outbox = run.env.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["to"], "bob@example.com");
    assert_eq!(outbox[0]["subject"], "Summary of Q3 planning notes");
    assert_eq!(outbox[0]["body"], summary_of(&text));

    let records = run.env.records();
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
            "outcome",
            "session_end",
        ]
    );
    let email = &records[7];
    assert_eq!(email["action"]["tool"], "send_email");
    assert_eq!(email["decision"]["effect"], "allow");
    assert_eq!(
        policy_ids(&email["decision"]["determining_policies"]),
        ["scope-email-send"]
    );
    assert_eq!(email["approval"]["outcome"], "approved");
    assert_eq!(email["approval"]["reviewer"], "carol");
    assert_eq!(records[8]["outcome"]["status"], "ok");
    run.env.assert_verifies(10);
}

async fn is_refused_another_users_document_by_policy(language: Language) {
    let task = "summarize doc_4hq2zt and share it with eve@example.org";
    // The file exists, so only policy stands between the agent and it.
    let with_bobs_document = |env: &Env| {
        std::fs::copy(
            common::example_workspace().join("documents/doc_4hq2zt.md"),
            env.workspace.root().join("documents/doc_4hq2zt.md"),
        )
        .unwrap();
    };
    let run = run_like_rust(
        language,
        Env::builder,
        with_bobs_document,
        autonomous_session(),
        task,
    )
    .await;
    let message = "cannot summarize: read_document doc_4hq2zt: refused (denied by policy forbid-document-not-owned: the document belongs to another user)";
    assert_eq!(run.result, Err(message.to_string()));

    let records = run.env.records();
    assert_eq!(
        kinds(&records),
        ["log_start", "session_start", "decision", "session_end"]
    );
    let read = &records[2];
    assert_eq!(read["action"]["resource"], "Document::\"doc_4hq2zt\"");
    assert_eq!(read["authorization"]["session_type"], "autonomous");
    assert_eq!(read["decision"]["effect"], "deny");
    assert_eq!(
        policy_ids(&read["decision"]["determining_policies"]),
        ["forbid-document-not-owned"]
    );
    assert_eq!(read["approval"]["outcome"], "not_required");
    assert_eq!(records[3]["detail"]["status"], "agent_error");
    assert_eq!(records[3]["detail"]["message"], message);
    run.env.assert_verifies(4);
}

async fn reports_a_tool_the_host_does_not_have(language: Language) {
    let without_email = || {
        Env::builder().registry(|workspace| {
            let mut tools = ToolRegistry::new();
            tools
                .declare_entity_type(document_entity_type())
                .unwrap()
                .register(ReadDocument(workspace.clone()))
                .unwrap()
                .register(WriteSummary(workspace.clone()))
                .unwrap();
            tools
        })
    };
    let run = run_like_rust(language, without_email, |_| {}, session(), TASK).await;
    let text = run.result.unwrap();
    assert!(
        text.contains("\nsend_email bob@example.com: refused (unknown tool: send_email)\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndone: 2 of 3 tool calls allowed\n\n"),
        "{text}"
    );

    let records = run.env.records();
    assert_eq!(
        kinds(&records),
        [
            "log_start",
            "session_start",
            "decision",
            "outcome",
            "decision",
            "outcome",
            "decision",
            "session_end",
        ]
    );
    assert_eq!(
        decisions(&records)[2],
        decision("send_email", "deny", "unknown_tool")
    );
    assert_eq!(
        records[6]["decision"]["message"],
        "unknown tool `send_email`"
    );
    run.env.assert_verifies(8);
}

async fn reports_a_recipient_the_tool_refuses(language: Language) {
    // The agent takes `bob@-bad.example` for an address; send_email's schema
    // does not (a domain label may not start with `-`).
    let task = "summarize doc_88pk3r and share it with bob@-bad.example";
    let run = run_like_rust(language, Env::builder, |_| {}, session(), task).await;
    let text = run.result.unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with("send_email "))
        .unwrap_or_default();
    assert!(
        line.starts_with(
            "send_email bob@-bad.example: refused (invalid arguments: `to` is not one address"
        ),
        "{text}"
    );
    assert!(
        text.contains("\ndone: 2 of 3 tool calls allowed\n\n"),
        "{text}"
    );
    assert!(run.env.outbox().is_empty());

    let records = run.env.records();
    assert_eq!(
        kinds(&records),
        [
            "log_start",
            "session_start",
            "decision",
            "outcome",
            "decision",
            "outcome",
            "decision",
            "session_end",
        ]
    );
    assert_eq!(
        decisions(&records)[2],
        decision("send_email", "deny", "invalid_arguments")
    );
    assert_eq!(records[6]["action"]["arguments"]["to"], "bob@-bad.example");
    run.env.assert_verifies(8);
}

async fn gives_up_when_the_session_has_expired(language: Language) {
    let run = run_like_rust(language, Env::builder, |_| {}, expired_session(), TASK).await;
    let message = "cannot summarize: read_document doc_88pk3r: refused (session expired)";
    assert_eq!(run.result, Err(message.to_string()));

    let records = run.env.records();
    assert_eq!(
        kinds(&records),
        ["log_start", "session_start", "decision", "session_end"]
    );
    assert_eq!(
        decisions(&records),
        [decision("read_document", "deny", "session_expired")]
    );
    assert_eq!(records[3]["detail"]["message"], message);
    run.env.assert_verifies(4);
}

async fn serves_the_next_session_after_one_it_gave_up(language: Language) {
    // Each session gets a fresh instance of the component: what the first
    // printed is not in the second's output.
    let first_task = "please summarize doc_88pk3r";
    let first = run_like_rust(
        language,
        Env::builder,
        |_| {},
        expired_session(),
        first_task,
    )
    .await;
    assert!(first.result.is_err());
    assert!(first.report.output.contains(&language.greeting(first_task)));
    let env = &first.env;
    let report = first.agent.run(&env.guard, session(), TASK).await.unwrap();
    let RunOutcome::Finished(Ok(text)) = &report.outcome else {
        panic!("the second session did not finish: {:?}", report.outcome);
    };
    assert!(
        text.contains("\ndone: 2 of 3 tool calls allowed\n\n"),
        "{text}"
    );
    assert!(report.output.contains(&language.greeting(TASK)));
    assert!(
        !report.output.contains(&language.greeting(first_task)),
        "the second session's output holds the first's: {:?}",
        report.output
    );
    // 4 records for the first session, 8 for the second.
    env.assert_verifies(4 + 8);
}

async fn needs_from_the_pool_what_wasmtime_counts(language: Language) {
    let name = language.path(Kind::Example).display().to_string();
    let cache = polyglot_dir().join("compiled-needs");
    std::fs::create_dir_all(&cache).unwrap();
    common::needs::assert_matches_wasmtime_cached(&language.bytes(Kind::Example), &name, &cache);
}

/// The tool and the result (`ok`) or `tool-error` case (`error.kind`) of
/// each call in a scripted agent's report.
fn call_outcomes(report: &RunReport) -> Vec<(String, Value)> {
    common::report_results(report)
        .into_iter()
        .map(|result| {
            let tool = result["tool"].as_str().unwrap_or_default().to_string();
            let outcome = match result.get("ok") {
                Some(ok) => json!({"ok": ok}),
                None => json!({"error": result["error"]["kind"]}),
            };
            (tool, outcome)
        })
        .collect()
}

async fn raises_each_tool_error_the_rust_agent_sees(language: Language) {
    // The session's user may not read bob's document; the summary cannot
    // be written where a directory stands; the host has no
    // `delete_everything`; `bob@-bad.example` is no address; nobody approves
    // the email (the default reviewer refuses).
    let prepare = |env: &Env| {
        std::fs::copy(
            common::example_workspace().join("documents/doc_4hq2zt.md"),
            env.workspace.root().join("documents/doc_4hq2zt.md"),
        )
        .unwrap();
        std::fs::create_dir_all(env.workspace.root().join("summaries/doc_88pk3r.md")).unwrap();
    };
    let script = json!({"calls": [
        common::read_call("doc_88pk3r"),
        common::read_call("doc_4hq2zt"),
        {"tool": "write_summary", "arguments": {"document_id": "doc_88pk3r", "summary": "s"}},
        {"tool": "delete_everything", "arguments": {}},
        {"tool": "send_email", "arguments": {"to": "bob@-bad.example", "subject": "s", "body": "b"}},
        common::email_call("the summary"),
    ]})
    .to_string();
    let env = Env::builder().build();
    prepare(&env);
    let agent = language.load(Kind::Scripted);
    let report = agent.run(&env.guard, session(), &script).await.unwrap();
    let outcomes = call_outcomes(&report);

    let rust_env = Env::builder().build();
    prepare(&rust_env);
    let rust = common::scripted_agent()
        .run(&rust_env.guard, session(), &script)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        call_outcomes(&rust),
        "the {language:?} and Rust scripted agents disagree"
    );
    let errors: Vec<&Value> = outcomes
        .iter()
        .filter_map(|(_, o)| o.get("error"))
        .collect();
    assert_eq!(
        errors,
        [
            "denied",
            "tool-failed",
            "unknown-tool",
            "invalid-arguments",
            "approval-denied"
        ]
    );
    assert_eq!(outcomes[0].1["ok"]["document_id"], "doc_88pk3r");
    // The messages are the author module's sentences.
    let results = common::report_results(&report);
    assert_eq!(
        results[1]["error"]["message"],
        "denied by policy forbid-document-not-owned: the document belongs to another user"
    );
    assert_eq!(
        results[3]["error"]["message"],
        "unknown tool: delete_everything"
    );
    for record in &env.records()[1..] {
        assert_eq!(record["agent"]["component_digest"], agent.digest());
    }
    env.assert_verifies(env.records().len() as u64);

    // Counted instead of listed, the same calls twice over.
    let tally = json!({"calls": serde_json::from_str::<Value>(&script).unwrap()["calls"], "repeat": 2, "tally": true});
    let report = agent
        .run(&env.guard, session(), &tally.to_string())
        .await
        .unwrap();
    let RunOutcome::Finished(Ok(text)) = &report.outcome else {
        panic!(
            "the {language:?} scripted agent did not finish: {:?}",
            report.outcome
        );
    };
    let counted: Value = serde_json::from_str(text).unwrap();
    assert_eq!(counted["tally"], json!({"ok": 2, "error": 10}));
}

async fn refuses_a_script_it_cannot_read(language: Language) {
    let env = Env::builder().build();
    let agent = language.load(Kind::Scripted);
    for (task, message) in [
        ("not json", "the task is not a JSON script"),
        (
            r#"{"calls": [{"arguments": {}}]}"#,
            r#"the task's calls[0] has no "tool" string"#,
        ),
        (r#"{"calls": {}}"#, r#"the task's "calls" is not a list"#),
        (r#"{"repeat": -1}"#, r#"the task's "repeat" is not a count"#),
    ] {
        let report = agent.run(&env.guard, session(), task).await.unwrap();
        match &report.outcome {
            RunOutcome::Finished(Err(error)) if error.starts_with(message) => {}
            other => panic!("{language:?} on {task}: {other:?}"),
        }
    }
}

/// Declares one test per scenario and language: `python::<scenario>` and
/// `javascript::<scenario>`.
macro_rules! in_each_language {
    ($($scenario:ident),* $(,)?) => {
        mod python {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario(super::Language::Python).await
                }
            )*
        }
        mod javascript {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario(super::Language::JavaScript).await
                }
            )*
        }
    };
}

in_each_language!(
    reads_and_writes_but_may_not_email_without_a_reviewer,
    emails_the_summary_when_a_reviewer_approves,
    is_refused_another_users_document_by_policy,
    reports_a_tool_the_host_does_not_have,
    reports_a_recipient_the_tool_refuses,
    gives_up_when_the_session_has_expired,
    serves_the_next_session_after_one_it_gave_up,
    needs_from_the_pool_what_wasmtime_counts,
    raises_each_tool_error_the_rust_agent_sees,
    refuses_a_script_it_cannot_read,
);
