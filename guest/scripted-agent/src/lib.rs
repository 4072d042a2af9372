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
//!   "allocate_bytes": 1048576,
//!   "spin": false,
//!   "trap": false
//! }
//! ```
//!
//! `arguments` (any JSON value, `{}` when absent) is serialized and passed to
//! `tools::call`; `raw` (alias `raw_arguments`) is passed verbatim instead.
//! After the calls the agent optionally tries to allocate `allocate_bytes`,
//! then loops forever if `spin`, then traps (wasm `unreachable`) if `trap`.
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

struct ScriptedAgent;

impl Guest for ScriptedAgent {
    fn run(task: String) -> Result<String, String> {
        let script = Script::parse(&task)?;
        let mut report = Map::new();

        let results = script
            .calls
            .iter()
            .map(|call| {
                let outcome = tools::call(&call.tool, &call.arguments);
                call_result(&call.tool, outcome)
            })
            .collect();
        report.insert("results".into(), Value::Array(results));

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
#[derive(Debug, Default, PartialEq)]
struct Script {
    calls: Vec<Call>,
    list_tools: bool,
    session: bool,
    allocate_bytes: Option<u64>,
    spin: bool,
    trap: bool,
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
        let allocate_bytes = match task.get("allocate_bytes") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().ok_or_else(|| {
                format!("task field \"allocate_bytes\" must be a non-negative integer, not {value}")
            })?),
        };
        Ok(Script {
            calls,
            list_tools: flag("list_tools")?,
            session: flag("session")?,
            allocate_bytes,
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
    fn allocates() {
        assert_eq!(allocate(16), json!({"bytes": 16, "ok": true}));
        assert_eq!(allocate(u64::MAX)["ok"], false);
    }
}
