//! Tool arguments arrive as JSON from the guest; this is the way they take to Cedar.
//!
//! Any bytes that parse as JSON go through `mandate_policy::to_cedar`, into a Cedar
//! `Context`, and through `mandate::pipeline::explain` for the example tools, policies and
//! session, exactly as `mandate policy explain` does. None of it may panic: every input ends
//! in a value or a typed error.
//!
//! A JSON object with a `session_id` key is taken as a session file instead, and the example
//! calls are explained in it. Two keys of an arguments object steer the call and are removed
//! from the arguments: `__reviewer` (a string: the reviewer who approves) and `__now` (an
//! integer: the call's time in Unix seconds).

#![no_main]

use std::sync::OnceLock;

use cedar_policy::{Context, Entities};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use mandate::pipeline::{HypotheticalCall, Session, ToolRegistry, explain};
use mandate_policy::{Policies, to_cedar};
use mandate::tools::{Workspace, example_registry};
use serde_json::{Map, Value, json};

struct Fixture {
    policies: Policies,
    tools: ToolRegistry,
    session: Session,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let policies_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let policies = Policies::load_dir(&policies_dir).expect("the example policies load");
        let session =
            Session::from_file(&policies_dir.join("session.json")).expect("the example session");
        // The tools only declare their action, resource and argument shape here; nothing runs.
        let tools = example_registry(&Workspace::new("/nonexistent")).expect("example registry");
        Fixture {
            policies,
            tools,
            session,
        }
    })
}

/// The example arguments of each tool, which fuzzed fields override.
fn base_arguments(tool: &str) -> Map<String, Value> {
    let base = match tool {
        "send_email" => json!({"to": "bob@example.com", "subject": "Q3", "body": "hello"}),
        "write_summary" => json!({"document_id": "doc_88pk3r", "summary": "short"}),
        _ => json!({"document_id": "doc_88pk3r"}),
    };
    match base {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

const TOOLS: [&str; 3] = ["send_email", "read_document", "write_summary"];

fn explain_all(
    fixture: &Fixture,
    session: &Session,
    arguments: &[(&str, Value)],
    reviewer: Option<&str>,
    now: Timestamp,
) {
    for (tool, arguments) in arguments {
        let call = HypotheticalCall {
            session,
            tool,
            arguments,
            reviewer,
            now,
        };
        // Ok or a typed error; a panic is the bug.
        let _ = explain(
            &fixture.policies,
            &fixture.tools,
            fixture.policies.entities(),
            &call,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    // 1. The conversion itself, and a Cedar context built from what it gives.
    if let Ok(expr) = to_cedar(&value, "arguments") {
        let context = Context::from_pairs([("arguments".to_string(), expr)]);
        if let Ok(context) = context {
            // Printing and walking the context must not panic either.
            let _ = context.to_string();
            let _ = context.into_iter().count();
        }
    }

    let fixture = fixture();
    let default_now = Timestamp::from_second(1_796_119_200).unwrap_or(Timestamp::UNIX_EPOCH);

    // 2. A session document: explain the example calls in it.
    if let Value::Object(map) = &value
        && map.contains_key("session_id")
    {
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(session) = Session::from_json(text, "fuzz")
        {
            let arguments: Vec<(&str, Value)> = TOOLS
                .iter()
                .map(|tool| (*tool, Value::Object(base_arguments(tool))))
                .collect();
            explain_all(fixture, &session, &arguments, Some("carol"), default_now);
        }
        return;
    }

    // 3. Arguments: as they are, and laid over each tool's example arguments so that they
    //    get past the tools' own argument checks into Cedar.
    let mut raw = value;
    let (mut reviewer, mut now) = (None, default_now);
    if let Value::Object(map) = &mut raw {
        if let Some(Value::String(r)) = map.remove("__reviewer") {
            reviewer = Some(r);
        }
        if let Some(n) = map.remove("__now").and_then(|n| n.as_i64())
            && let Ok(t) = Timestamp::from_second(n)
        {
            now = t;
        }
    }
    let mut arguments: Vec<(&str, Value)> = Vec::with_capacity(6);
    for tool in TOOLS {
        arguments.push((tool, raw.clone()));
        if let Value::Object(fields) = &raw {
            let mut merged = base_arguments(tool);
            for (k, v) in fields {
                merged.insert(k.clone(), v.clone());
            }
            arguments.push((tool, Value::Object(merged)));
        }
    }
    explain_all(
        fixture,
        &fixture.session,
        &arguments,
        reviewer.as_deref(),
        now,
    );
    // Entities are loaded once; make sure an empty store works as well (no panic when an
    // entity the policies mention is missing).
    let empty = Entities::empty();
    if let Some((tool, arguments)) = arguments.last() {
        let call = HypotheticalCall {
            session: &fixture.session,
            tool,
            arguments,
            reviewer: reviewer.as_deref(),
            now,
        };
        let _ = explain(&fixture.policies, &fixture.tools, &empty, &call);
    }
});
