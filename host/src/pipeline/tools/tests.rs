//! Arguments a tool refuses name the field at fault as data (a path into
//! the arguments, nested too), and the agent is told exactly the text it
//! was told before the error was typed.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ArgumentsError, ResourceBinding, Tool, ToolContext, ToolFailure, ToolRegistry, ToolSpec,
};
use crate::pipeline::call_error::{ArgumentProblem, ToolCallError};
use crate::tools::{Workspace, example_registry};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportArgs {
    to: String,
    attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Attachment {
    name: String,
    pages: i64,
}

struct SendReport;

impl Tool for SendReport {
    type Args = ReportArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "send_report".into(),
            description: "Sends a report.".into(),
            scope: "email:send".into(),
            resource: ResourceBinding::Tool,
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _: ToolContext, args: ReportArgs) -> Result<Value, ToolFailure> {
        let pages: i64 = args.attachments.iter().map(|a| a.pages).sum();
        let names: Vec<&str> = args.attachments.iter().map(|a| a.name.as_str()).collect();
        Ok(json!({ "to": args.to, "attachments": names, "pages": pages }))
    }
}

/// The refusal of `args` by `send_report`.
fn refused(args: Value) -> ArgumentsError {
    let mut tools = ToolRegistry::new();
    tools.register(SendReport).unwrap();
    let Err(e) = tools.get("send_report").unwrap().parse(&args) else {
        panic!("{args} was accepted");
    };
    e
}

/// The text the agent was told before the error was typed: the message of
/// `serde_path_to_error`, after the path when the message does not name it.
fn told_before(args: &Value) -> String {
    let e = serde_path_to_error::deserialize::<_, ReportArgs>(args).unwrap_err();
    let field = e.path().to_string();
    let what = e.into_inner().to_string();
    if field == "." || what.contains(&format!("`{field}`")) {
        what
    } else {
        format!("field `{field}`: {what}")
    }
}

fn attachment(n: i64) -> Value {
    json!({ "name": format!("part {n}"), "pages": n })
}

#[test]
fn a_missing_unknown_or_wrongly_typed_argument_names_its_field_and_reads_as_before() {
    let cases = [
        // Missing, unknown and wrongly typed at the top.
        (json!({ "attachments": [] }), "to"),
        (json!({ "to": "bob", "attachments": [], "cc": "eve" }), "cc"),
        (json!({ "to": 5, "attachments": [] }), "to"),
        (json!({ "to": "bob", "attachments": {} }), "attachments"),
        // The same inside an item of a list.
        (
            json!({ "to": "bob", "attachments": [attachment(1), attachment(2), { "name": "z", "pages": "three" }] }),
            "attachments[2].pages",
        ),
        (
            json!({ "to": "bob", "attachments": [attachment(1), { "pages": 2 }] }),
            "attachments[1].name",
        ),
        (
            json!({ "to": "bob", "attachments": [{ "name": "x", "pages": 1, "colour": "red" }] }),
            "attachments[0].colour",
        ),
    ];
    for (args, field) in cases {
        let e = refused(args.clone());
        assert_eq!(e.field(), Some(field), "{args}: {e}");
        assert_eq!(e.to_string(), told_before(&args), "{args}");
        // What the agent and the record get.
        let told = ToolCallError::from(ArgumentProblem::Tool(e)).bounded();
        assert_eq!(told.field(), Some(field), "{args}");
        assert_eq!(
            told.to_string(),
            format!("invalid arguments: {}", told_before(&args))
        );
        let ToolCallError::InvalidArguments { problem, .. } = told else {
            panic!("{args}: {told:?}");
        };
        assert_eq!(problem, told_before(&args));
    }
}

#[test]
fn arguments_that_are_not_an_object_name_no_field() {
    let e = refused(json!(["bob"]));
    assert_eq!(e.field(), None, "{e}");
    assert_eq!(e.to_string(), told_before(&json!(["bob"])));
}

#[test]
fn the_resource_argument_is_named_when_missing_or_not_a_string() {
    let tools = example_registry(&Workspace::new("/nonexistent")).unwrap();
    let read = tools.get("read_document").unwrap();
    for (args, text) in [
        (json!({}), "missing field `document_id`"),
        (
            json!({ "document_id": 5 }),
            "`document_id` must be a non-empty string",
        ),
        (
            json!({ "document_id": "" }),
            "`document_id` must be a non-empty string",
        ),
    ] {
        let e = read.resource(&args).unwrap_err();
        assert_eq!(e.field(), Some("document_id"), "{args}");
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn a_value_cedar_cannot_hold_names_its_path_below_the_arguments() {
    let args = json!({ "to": "bob", "meta": { "ratio": 0.5, "tags": ["a", null] } });
    let e = crate::policy::to_value(&args, "arguments").unwrap_err();
    let told = ToolCallError::from(ArgumentProblem::NotCedar(e.clone()));
    assert_eq!(told.field(), Some("meta.ratio"));
    assert_eq!(told.to_string(), format!("invalid arguments: {e}"));
    let nested = crate::policy::to_value(&json!({ "tags": ["a", null] }), "arguments").unwrap_err();
    let told = ToolCallError::from(ArgumentProblem::NotCedar(nested));
    assert_eq!(told.field(), Some("tags[1]"));
    let root = crate::policy::to_value(&Value::Null, "arguments").unwrap_err();
    assert_eq!(
        ToolCallError::from(ArgumentProblem::NotCedar(root)).field(),
        None
    );
}

#[test]
fn refusals_of_the_whole_arguments_name_no_field() {
    let told = ToolCallError::from(ArgumentProblem::TooLarge {
        recorded: 10,
        limit: 5,
    });
    assert_eq!(told.field(), None);
    assert_eq!(
        told.to_string(),
        "invalid arguments: arguments take 10 bytes in the audit record, over the limit of 5; pass less"
    );
    assert_eq!(ToolCallError::SessionExpired.field(), None);
}
