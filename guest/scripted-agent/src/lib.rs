//! A test agent for end-to-end tests: its task is a JSON script of tool calls
//! to make, and its report is a JSON record of what each call returned.
//!
//! Task (every key optional):
//!
//! ```json
//! {
//!   "calls": [
//!     {"tool": "read_document", "arguments": {"document_id": "doc_88pk3r"}},
//!     {"tool": "read_document", "raw": "{not json"}
//!   ],
//!   "list_tools": true,
//!   "session": true,
//!   "print": "to stdout and stderr",
//!   "repeat": 1,
//!   "tally": false,
//!   "big_call": {"tool": "read_document", "bytes": 104857600},
//!   "http": [{"method": "GET", "url": "http://127.0.0.1:8080/x", "headers": [["accept", "*/*"]]}],
//!   "http_repeat": 1,
//!   "compute": 1000000,
//!   "allocate_bytes": 1048576,
//!   "recurse": false,
//!   "recurse_in_memory": false,
//!   "spin": false,
//!   "trap": false
//! }
//! ```
//!
//! `arguments` (any JSON value, `{}` when absent) is serialized and passed to
//! `tools::call`; `raw` (alias `raw_arguments`) is passed verbatim instead.
//! `print` is written to stdout and to stderr first. After the calls, the `http` requests
//! (see the `http` module) are sent `http_repeat` times; with `tally` only their statuses are
//! counted (`"http_tally": {"200": n, "error": m}`), else each is listed under `"http"`. The calls are made `repeat` times (a flood, for the call limit);
//! with `tally`, their results are only counted (`"tally": {"ok": n, "error": m}` in the report)
//! instead of parsed and listed, so that a benchmark measures the calls, not the report. Then, in
//! this order and each only when asked: one call to `big_call.tool` with
//! arguments padded to `big_call.bytes` bytes (for the argument limit);
//! `compute` rounds of integer hashing, reported as `compute` (a CPU-bound
//! workload); an allocation of `allocate_bytes`; unbounded recursion on the
//! engine's stack if `recurse`, or on the guest's own stack in linear memory
//! if `recurse_in_memory`; an endless loop if `spin`; a trap (wasm `unreachable`) if
//! `trap`. Hostile behaviours for the host's limits to stop.
//!
//! Report:
//!
//! ```json
//! {
//!   "results": [
//!     {"tool": "read_document", "ok": {"title": "..."}},
//!     {"tool": "send_email", "error": {"kind": "denied", "policies": ["p"], "reasons": ["r"]}},
//!     {"tool": "x", "error": {"kind": "unknown-tool", "message": "x"}}
//!   ],
//!   "tools": [{"name": "...", "description": "...", "argument_schema": "...", "scope": "..."}],
//!   "session": {"session_id": "...", "user_id": "...", "agent_id": "...", "scopes": [], "expires_at": "..."},
//!   "allocation": {"bytes": 1048576, "ok": true}
//! }
//! ```
//!
//! `ok` holds the tool's result parsed as JSON, or as a string if it is not
//! JSON. `tools`, `session` and `allocation` are present only when asked for.

wit_bindgen::generate!({
    path: "../../wit",
    world: "agent",
});

use mandate::guard::{
    session,
    tools::{self, ToolError},
};
use serde_json::{Map, Value, json};

mod http;

struct ScriptedAgent;

impl Guest for ScriptedAgent {
    fn run(task: String) -> Result<String, String> {
        let script = Script::parse(&task)?;
        let mut report = Map::new();

        if let Some(text) = &script.print {
            println!("stdout: {text}");
            eprintln!("stderr: {text}");
        }
        let mut results = Vec::new();
        let (mut ok, mut failed) = (0u64, 0u64);
        for _ in 0..script.repeat {
            for call in &script.calls {
                let outcome = tools::call(&call.tool, &call.arguments);
                if script.tally {
                    match outcome {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                } else {
                    results.push(call_result(&call.tool, outcome));
                }
            }
        }
        if script.tally {
            report.insert("tally".into(), json!({ "ok": ok, "error": failed }));
        }
        if let Some((tool, bytes)) = &script.big_call {
            let outcome = tools::call(tool, &padded_arguments(*bytes));
            results.push(call_result(tool, outcome));
        }
        report.insert("results".into(), Value::Array(results));
        if !script.http.is_empty() {
            let mut sent = Vec::new();
            let mut tally = Map::new();
            for _ in 0..script.http_repeat {
                for step in &script.http {
                    let answer = step.send();
                    if script.tally {
                        let key = match answer.get("status") {
                            Some(status) => status.to_string(),
                            None => "error".to_string(),
                        };
                        let count = tally.entry(key).or_insert(json!(0));
                        *count = json!(count.as_u64().unwrap_or(0) + 1);
                    } else {
                        sent.push(answer);
                    }
                }
            }
            if script.tally {
                report.insert("http_tally".into(), Value::Object(tally));
            } else {
                report.insert("http".into(), Value::Array(sent));
            }
        }
        if let Some(rounds) = script.compute {
            report.insert("compute".into(), json!(compute(rounds)));
        }

        if script.list_tools {
            let listed = tools::list_tools()
                .into_iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "argument_schema": tool.argument_schema,
                        "scope": tool.scope,
                    })
                })
                .collect();
            report.insert("tools".into(), Value::Array(listed));
        }

        if script.session {
            report.insert(
                "session".into(),
                json!({
                    "session_id": session::session_id(),
                    "user_id": session::user_id(),
                    "agent_id": session::agent_id(),
                    "scopes": session::scopes(),
                    "expires_at": session::expires_at(),
                }),
            );
        }

        if let Some(bytes) = script.allocate_bytes {
            report.insert("allocation".into(), allocate(bytes));
        }
        if script.recurse {
            report.insert("recursion".into(), json!(recurse(0, 1)));
        }
        if script.recurse_in_memory {
            report.insert("recursion".into(), json!(recurse_in_memory(0)));
        }
        if script.spin {
            spin();
        }
        if script.trap {
            trap();
        }

        Ok(Value::Object(report).to_string())
    }
}

export!(ScriptedAgent);

/// One call of the script: the tool and the exact arguments string to pass.
#[derive(Debug, PartialEq)]
struct Call {
    tool: String,
    arguments: String,
}

/// A parsed task.
#[derive(Debug, PartialEq)]
struct Script {
    calls: Vec<Call>,
    http: Vec<http::Step>,
    http_repeat: u64,
    print: Option<String>,
    repeat: u64,
    big_call: Option<(String, u64)>,
    compute: Option<u64>,
    list_tools: bool,
    session: bool,
    tally: bool,
    allocate_bytes: Option<u64>,
    recurse: bool,
    recurse_in_memory: bool,
    spin: bool,
    trap: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            calls: Vec::new(),
            http: Vec::new(),
            http_repeat: 1,
            print: None,
            repeat: 1,
            big_call: None,
            compute: None,
            list_tools: false,
            session: false,
            tally: false,
            allocate_bytes: None,
            recurse: false,
            recurse_in_memory: false,
            spin: false,
            trap: false,
        }
    }
}

impl Script {
    fn parse(task: &str) -> Result<Script, String> {
        let task: Value = serde_json::from_str(task)
            .map_err(|error| format!("task is not valid json: {error}"))?;
        let Value::Object(task) = task else {
            return Err("task must be a JSON object".to_string());
        };
        let flag = |key: &str| match task.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(other) => Err(format!("task field {key:?} must be a boolean, not {other}")),
        };
        let calls = match task.get("calls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(calls)) => calls
                .iter()
                .enumerate()
                .map(|(index, call)| Call::parse(call).map_err(|e| format!("calls[{index}]: {e}")))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "task field \"calls\" must be an array, not {other}"
                ));
            }
        };
        let count = |key: &str| match task.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                format!("task field {key:?} must be a non-negative integer, not {value}")
            }),
        };
        let big_call = match task.get("big_call") {
            None | Some(Value::Null) => None,
            Some(call) => {
                let tool = call.get("tool").and_then(Value::as_str);
                let bytes = call.get("bytes").and_then(Value::as_u64);
                match (tool, bytes) {
                    (Some(tool), Some(bytes)) => Some((tool.to_string(), bytes)),
                    _ => {
                        return Err(format!(
                            "task field \"big_call\" needs a string \"tool\" and an integer \"bytes\", not {call}"
                        ));
                    }
                }
            }
        };
        let http = match task.get("http") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(steps)) => steps
                .iter()
                .enumerate()
                .map(|(index, step)| {
                    http::Step::parse(step).map_err(|e| format!("http[{index}]: {e}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!("task field \"http\" must be an array, not {other}"));
            }
        };
        Ok(Script {
            calls,
            http,
            http_repeat: count("http_repeat")?.unwrap_or(1),
            print: match task.get("print") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text.clone()),
                Some(other) => {
                    return Err(format!(
                        "task field \"print\" must be a string, not {other}"
                    ));
                }
            },
            repeat: count("repeat")?.unwrap_or(1),
            big_call,
            compute: count("compute")?,
            list_tools: flag("list_tools")?,
            session: flag("session")?,
            tally: flag("tally")?,
            allocate_bytes: count("allocate_bytes")?,
            recurse: flag("recurse")?,
            recurse_in_memory: flag("recurse_in_memory")?,
            spin: flag("spin")?,
            trap: flag("trap")?,
        })
    }
}

impl Call {
    fn parse(call: &Value) -> Result<Call, String> {
        let Some(tool) = call.get("tool").and_then(Value::as_str) else {
            return Err("needs a string \"tool\"".to_string());
        };
        let raw = call.get("raw").or_else(|| call.get("raw_arguments"));
        let arguments = match (raw, call.get("arguments")) {
            (Some(_), Some(_)) => return Err("has both \"raw\" and \"arguments\"".to_string()),
            (Some(Value::String(raw)), None) => raw.clone(),
            (Some(other), None) => return Err(format!("\"raw\" must be a string, not {other}")),
            (None, Some(arguments)) => arguments.to_string(),
            (None, None) => "{}".to_string(),
        };
        Ok(Call {
            tool: tool.to_string(),
            arguments,
        })
    }
}

/// The report entry for one call.
fn call_result(tool: &str, outcome: Result<String, ToolError>) -> Value {
    match outcome {
        Ok(result) => {
            let result = serde_json::from_str(&result).unwrap_or(Value::String(result));
            json!({ "tool": tool, "ok": result })
        }
        Err(error) => json!({ "tool": tool, "error": error_value(error) }),
    }
}

/// A tool error as JSON: its WIT case name as `kind`, plus its payload.
fn error_value(error: ToolError) -> Value {
    let (kind, message) = match error {
        ToolError::Denied(denial) => {
            return json!({
                "kind": "denied",
                "policies": denial.policies,
                "reasons": denial.reasons,
            });
        }
        ToolError::ApprovalDenied(reason) => ("approval-denied", Some(reason)),
        ToolError::ApprovalTimedOut => ("approval-timed-out", None),
        ToolError::SessionExpired => ("session-expired", None),
        ToolError::UnknownTool(name) => ("unknown-tool", Some(name)),
        ToolError::InvalidArguments(message) => ("invalid-arguments", Some(message)),
        ToolError::ToolFailed(message) => ("tool-failed", Some(message)),
        ToolError::AuditUnavailable(message) => ("audit-unavailable", Some(message)),
    };
    match message {
        Some(message) => json!({ "kind": kind, "message": message }),
        None => json!({ "kind": kind }),
    }
}

/// Tries to allocate and touch `bytes` bytes, to exercise the host's memory
/// limit; reports whether the allocation succeeded.
fn allocate(bytes: u64) -> Value {
    let mut buffer: Vec<u8> = Vec::new();
    let ok = usize::try_from(bytes)
        .ok()
        .is_some_and(|len| buffer.try_reserve_exact(len).is_ok());
    if ok {
        buffer.resize(buffer.capacity(), 1);
        std::hint::black_box(&buffer);
    }
    json!({ "bytes": bytes, "ok": ok })
}

/// Arguments of about `bytes` bytes: a document id and a long padding field.
fn padded_arguments(bytes: u64) -> String {
    let head = r#"{"document_id":"doc_88pk3r","padding":""#;
    let pad = usize::try_from(bytes)
        .unwrap_or(usize::MAX)
        .saturating_sub(head.len() + 2);
    let mut text = String::with_capacity(head.len() + pad + 2);
    text.push_str(head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    text
}

/// `rounds` rounds of a 64-bit integer hash (splitmix64): pure computation
/// with no calls and no memory traffic, the workload of the epoch benchmark.
fn compute(rounds: u64) -> u64 {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut acc: u64 = 0;
    for _ in 0..rounds {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        acc ^= z ^ (z >> 31);
    }
    std::hint::black_box(acc)
}

/// Recurses without end, to exercise the host's wasm stack limit. Every
/// value lives in wasm locals, so the frames grow the engine's stack, not the
/// guest's own stack in linear memory; the value used after the call keeps
/// the compiler from turning the recursion into a loop.
#[inline(never)]
fn recurse(depth: u64, salt: u64) -> u64 {
    if depth == u64::MAX {
        return salt;
    }
    let mixed = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(7);
    let deeper = recurse(depth + 1, mixed);
    deeper.wrapping_mul(mixed | 1) ^ depth
}

/// Recurses without end with a buffer in every frame: the guest's own stack
/// in linear memory runs out first, a fault inside the guest's memory.
#[inline(never)]
fn recurse_in_memory(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 16]);
    recurse_in_memory(depth + 1).wrapping_add(frame[(depth % 16) as usize])
}

/// Runs forever, to exercise the host's CPU limit.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Traps: the wasm `unreachable` instruction (an abort when built natively).
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::unreachable()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::process::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate::guard::tools::Denial;

    #[test]
    fn parses_a_script() {
        let script = Script::parse(
            r#"{"calls": [
                {"tool": "a", "arguments": {"x": 1}},
                {"tool": "b", "raw": "{oops"},
                {"tool": "c"}
            ], "list_tools": true, "trap": false}"#,
        );
        assert_eq!(
            script,
            Ok(Script {
                calls: vec![
                    Call {
                        tool: "a".into(),
                        arguments: r#"{"x":1}"#.into()
                    },
                    Call {
                        tool: "b".into(),
                        arguments: "{oops".into()
                    },
                    Call {
                        tool: "c".into(),
                        arguments: "{}".into()
                    },
                ],
                list_tools: true,
                ..Script::default()
            })
        );
    }

    #[test]
    fn rejects_bad_tasks() {
        let err = Script::parse("nope").err().unwrap_or_default();
        assert!(err.starts_with("task is not valid json: "), "{err}");
        assert!(Script::parse("[]").is_err());
        assert!(Script::parse(r#"{"calls": [{"arguments": {}}]}"#).is_err());
        assert!(Script::parse(r#"{"trap": "yes"}"#).is_err());
        assert!(Script::parse(r#"{"repeat": -1}"#).is_err());
        assert!(Script::parse(r#"{"big_call": {"tool": "t"}}"#).is_err());
        assert_eq!(Script::parse("{}"), Ok(Script::default()));
    }

    #[test]
    fn reports_results_and_errors() {
        assert_eq!(
            call_result("t", Ok(r#"{"a":1}"#.into())),
            json!({"tool": "t", "ok": {"a": 1}})
        );
        assert_eq!(
            call_result("t", Ok("plain".into())),
            json!({"tool": "t", "ok": "plain"})
        );
        assert_eq!(
            call_result(
                "t",
                Err(ToolError::Denied(Denial {
                    policies: vec!["p".into()],
                    reasons: vec!["r".into()],
                }))
            ),
            json!({"tool": "t", "error": {"kind": "denied", "policies": ["p"], "reasons": ["r"]}})
        );
        assert_eq!(
            call_result("t", Err(ToolError::ApprovalTimedOut)),
            json!({"tool": "t", "error": {"kind": "approval-timed-out"}})
        );
        assert_eq!(
            call_result("t", Err(ToolError::InvalidArguments("bad".into()))),
            json!({"tool": "t", "error": {"kind": "invalid-arguments", "message": "bad"}})
        );
    }

    #[test]
    fn pads_arguments_to_the_asked_size() {
        let text = padded_arguments(1000);
        assert_eq!(text.len(), 1000);
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["document_id"], "doc_88pk3r");
        assert_eq!(compute(10), compute(10));
    }

    #[test]
    fn allocates() {
        assert_eq!(allocate(16), json!({"bytes": 16, "ok": true}));
        assert_eq!(allocate(u64::MAX)["ok"], false);
    }
}
