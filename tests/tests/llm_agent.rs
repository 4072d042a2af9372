//! An agent that plans with a language model, end to end through the
//! `mandate` binary: the JavaScript agent `guest/llm-agent-js` (built by
//! scripts/build-agents) asks an OpenAI-compatible endpoint what to do over
//! `fetch` (the HTTP door) and calls the tools the model picks. The model is
//! `tests/llm/scripted_model.py` on loopback, which answers scripted replies
//! and accepts only requests carrying the key the host holds.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// The key only the host holds.
const KEY: &str = "sk-scripted-7d41b0c9e2";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| repo().join(dir))
        .unwrap_or_else(|| repo().join("target"))
}

fn llm_agent() -> PathBuf {
    let path = target().join("polyglot/llm_agent_js.wasm");
    assert!(
        path.exists(),
        "`{}` is missing: run scripts/build-agents",
        path.display()
    );
    path
}

/// The scripted model, stopped when dropped.
struct Model {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Model {
    fn start(dir: &Path, script: &str) -> Model {
        let log = dir.join("requests.jsonl");
        let mut child = Command::new("python3")
            .arg(repo().join("tests/llm/scripted_model.py"))
            .arg("--script")
            .arg(repo().join("tests/llm").join(script))
            .arg("--key-file")
            .arg(dir.join("model.key"))
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Model { child, port, log }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Policies: the example ones, the model's endpoint on loopback for
/// sessions with `http:request`, and mail only inside the organisation.
const POLICIES: &str = r#"
@id("http-scripted-model")
@reason("the session holds http:request and this is the model's chat-completions endpoint")
permit (principal, action == Action::"http_request", resource == Host::"127.0.0.1")
when {
  context.session.scopes.contains("http:request") &&
  context.arguments.method == "POST" && context.arguments.path == "/v1/chat/completions"
};

@id("email-stays-inside")
@reason("mail goes only to addresses of the organisation")
forbid (principal, action == Action::"send_email", resource)
unless { context.arguments.to like "*@example.com" };
"#;

/// A host set up in `dir`: the manifest (example tools, the model's key),
/// the policies and a session with (or without) `http:request`.
fn host(dir: &Path, http_scope: bool) {
    mandate::audit::write_private(&dir.join("model.key"), format!("{KEY}\n").as_bytes()).unwrap();
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(workspace.join("documents")).unwrap();
    std::fs::copy(
        common::example_workspace().join("documents/doc_88pk3r.md"),
        workspace.join("documents/doc_88pk3r.md"),
    )
    .unwrap();
    std::fs::write(
        dir.join("mandate.toml"),
        r#"
[example_tools]
workspace = "workspace"

[egress.destinations.model]
host = "127.0.0.1"
allow_private = true
credential = { file = "model.key" }
"#,
    )
    .unwrap();
    let policies = dir.join("policies");
    common::copy_policies(&policies);
    std::fs::write(policies.join("llm.cedar"), POLICIES).unwrap();
    let mut session: Value = serde_json::from_str(
        &std::fs::read_to_string(common::policies_dir().join("session.json")).unwrap(),
    )
    .unwrap();
    if http_scope {
        session["scopes"]
            .as_array_mut()
            .unwrap()
            .push(json!("http:request"));
    }
    std::fs::write(dir.join("session.json"), session.to_string()).unwrap();
}

fn run(dir: &Path, task: &Value) -> Output {
    Command::new(common::mandate_binary())
        .current_dir(dir)
        .args(["run", "--tools", "mandate.toml", "--policies", "policies"])
        .args(["--session", "session.json", "--audit", "audit"])
        .arg("--agent")
        .arg(llm_agent())
        .arg("--compile-cache")
        .arg(target().join("polyglot/compiled"))
        .arg(task.to_string())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The agent's report: the JSON after `agent result:`.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("agent| {"))
        .unwrap_or_else(|| panic!("no report: {}", text(output)));
    serde_json::from_str(&format!("{{{line}")).unwrap()
}

fn task(model: &Model) -> Value {
    json!({
        "task": "Summarize doc_88pk3r.",
        "endpoint": format!("http://127.0.0.1:{}/v1", model.port),
        "model": "scripted",
    })
}

#[test]
fn the_agent_plans_with_the_model_and_the_host_holds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), true);
    let model = Model::start(dir.path(), "summarize.json");
    let output = run(dir.path(), &task(&model));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = report(&output);
    assert!(
        report["answer"]
            .as_str()
            .unwrap()
            .starts_with("Q3 planning notes"),
        "{report}"
    );
    assert_eq!(report["turns"], 2);
    assert_eq!(
        report["tool_calls"],
        json!([{"tool": "read_document", "ok": true}])
    );
    // Every request carried the key, which the agent never had.
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests.iter().all(|r| r["authorization_matched"] == true),
        "{requests:?}"
    );
    // The model got the tool's result back.
    let second = requests[1]["body"]["messages"].to_string();
    assert!(second.contains("\"role\":\"tool\""), "{second}");

    let records = common::read_records(&dir.path().join("audit"));
    let requests: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "decision" && r["action"]["type"] == "http_request")
        .collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0]["action"]["arguments"]["path"],
        "/v1/chat/completions"
    );
    assert_eq!(requests[0]["action"]["arguments"]["method"], "POST");
    let log = common::log_text(&dir.path().join("audit"));
    assert!(!log.contains(KEY), "the key is in the log");
    assert!(!text(&output).contains(KEY), "the key was printed");

    // The requests are listed beside the tool call.
    let query = Command::new(common::mandate_binary())
        .current_dir(dir.path())
        .args(["audit", "query", "audit", "--format", "json"])
        .output()
        .unwrap();
    let rows: Vec<Value> = String::from_utf8_lossy(&query.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tools: Vec<&str> = rows.iter().map(|r| r["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        ["http_request", "read_document", "http_request"],
        "{rows:?}"
    );
}

#[test]
fn a_prompt_injected_exfiltration_is_stopped_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), true);
    let model = Model::start(dir.path(), "exfiltrate.json");
    let output = run(dir.path(), &task(&model));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = report(&output);
    assert_eq!(
        report["tool_calls"],
        json!([
            {"tool": "read_document", "ok": true},
            {"tool": "send_email", "ok": false, "error": "denied"},
        ]),
        "{report}"
    );
    // The model was told which policy refused, and nothing was sent.
    let requests = model.requests();
    let last = requests.last().unwrap()["body"]["messages"].to_string();
    assert!(last.contains("email-stays-inside"), "{last}");
    assert!(!dir.path().join("workspace/outbox.jsonl").exists());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("deny  send_email") && stdout.contains("email-stays-inside"),
        "{stdout}"
    );
}

#[test]
fn without_the_http_scope_the_model_is_out_of_reach_and_the_agent_says_so() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), false);
    let model = Model::start(dir.path(), "summarize.json");
    let output = run(dir.path(), &task(&model));
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    let all = text(&output);
    assert!(
        all.contains("deny  http_request Host::\"127.0.0.1\""),
        "{all}"
    );
    assert!(all.contains("answered 403"), "{all}");
    assert!(model.requests().is_empty());
}

#[test]
fn inspect_shows_the_http_door_guarded_and_explain_decides_a_request() {
    let inspect = Command::new(common::mandate_binary())
        .arg("inspect")
        .arg(llm_agent())
        .output()
        .unwrap();
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect));
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    let door = stdout
        .lines()
        .find(|l| l.contains("wasi:http/outgoing-handler"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        door.contains("allowed") && door.contains("guarded"),
        "{door}"
    );

    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), true);
    let request = json!({
        "method": "POST", "scheme": "http", "host": "127.0.0.1", "port": 8080,
        "path": "/v1/chat/completions", "query_keys": [], "header_names": ["content-type"],
        "body_bytes": 512, "body_sha256": "",
    });
    let explain = |request: &Value| {
        Command::new(common::mandate_binary())
            .current_dir(dir.path())
            .args(["policy", "explain", "--policies", "policies"])
            .args([
                "--session",
                "session.json",
                "--tool",
                "http_request",
                "--args",
            ])
            .arg(request.to_string())
            .output()
            .unwrap()
    };
    let allowed = explain(&request);
    let all = text(&allowed);
    assert!(
        all.contains("allow") && all.contains("http-scripted-model"),
        "{all}"
    );
    let mut upload = request.clone();
    upload["path"] = json!("/upload");
    let denied = explain(&upload);
    let all = text(&denied);
    assert!(
        all.contains("deny") && !all.contains("http-scripted-model"),
        "{all}"
    );
}
