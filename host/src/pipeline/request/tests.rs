//! The call's request in its three forms agrees with itself: every request
//! this module builds, as Cedar values and as the Cedar JSON its records
//! hold, fits the schema text this module emits, under every approval state
//! a call is evaluated in.

use std::path::Path;

use cedar_policy::{Context, EntityUid, Request, Schema};
use jiff::Timestamp;
use serde_json::{Value as Json, json};

use super::{CallRequest, PreparedSession, approval_json, arguments, uid};
use crate::pipeline::Session;
use crate::pipeline::evaluate::ApprovalState;
use crate::pipeline::schema;
use crate::tools::{Workspace, example_registry};

/// The schema the guard emits for the example tools, with this module's
/// context types, parsed strictly.
fn emitted_schema() -> Schema {
    let tools = example_registry(&Workspace::new("/nonexistent")).unwrap();
    let text = schema::generate(&tools).unwrap();
    Schema::from_cedarschema_str(&text).unwrap().0
}

/// Every call of the example tools, with arguments that fit them.
fn calls() -> Vec<(&'static str, EntityUid, Json)> {
    let doc = uid("Document", "doc_88pk3r").unwrap();
    vec![
        (
            "read_document",
            doc.clone(),
            json!({ "document_id": "doc_88pk3r" }),
        ),
        (
            "write_summary",
            doc,
            json!({ "document_id": "doc_88pk3r", "summary": "short" }),
        ),
        (
            "send_email",
            uid("Tool", "send_email").unwrap(),
            json!({ "to": "bob@example.com", "subject": "hi", "body": "text" }),
        ),
    ]
}

fn session() -> Session {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    Session::from_file(&dir.join("session.json")).unwrap()
}

#[test]
fn every_request_in_every_approval_state_fits_the_emitted_schema_as_values_and_as_json() {
    let schema = emitted_schema();
    let session = session();
    let prepared = PreparedSession::new(&session).unwrap();
    let reviewer = uid("User", "bob").unwrap();
    let states = [
        ApprovalState::NotGranted,
        ApprovalState::Granted,
        ApprovalState::GrantedBy(&reviewer),
        ApprovalState::Standing(&reviewer),
    ];
    let at = Timestamp::from_second(1_790_000_000).unwrap();
    for (tool, resource, args) in calls() {
        let action = uid("Action", tool).unwrap();
        let action_text = action.to_string();
        let request = CallRequest::new(
            &prepared,
            &action,
            &action_text,
            resource.clone(),
            at,
            arguments(&args, "arguments").unwrap(),
        )
        .unwrap();
        for state in states {
            // The values Cedar evaluates.
            let (values, _) = request.unchecked(state).unwrap();
            cedar_policy_core::ast::RequestSchema::validate_request(
                schema.as_ref(),
                &values,
                cedar_policy_core::extensions::Extensions::all_available(),
            )
            .unwrap_or_else(|e| panic!("{tool} {state:?} as values: {e}"));

            // The JSON the decision record holds, as replay reads it back.
            let record = request.record(resource.to_string(), None);
            let Json::Object(mut context) = serde_json::to_value(&record.context).unwrap() else {
                panic!("the recorded context is not an object");
            };
            context.insert("arguments".into(), args.clone());
            context.insert("approval".into(), approval_json(state));
            let context = Context::from_json_value(Json::Object(context), Some((&schema, &action)))
                .unwrap_or_else(|e| panic!("{tool} {state:?} as json: {e}"));
            let principal: EntityUid = record.principal.parse().unwrap();
            assert_eq!(principal, prepared.principal);
            Request::new(
                principal,
                action.clone(),
                resource.clone(),
                context,
                Some(&schema),
            )
            .unwrap_or_else(|e| panic!("{tool} {state:?} as json: {e}"));
        }
    }
}

#[test]
fn a_context_attribute_the_schema_text_lacks_is_refused() {
    // The check above would notice a drift: the same request against the
    // schema text without `standing` fails.
    let tools = example_registry(&Workspace::new("/nonexistent")).unwrap();
    let text = schema::generate(&tools)
        .unwrap()
        .replace(", standing: Bool", "");
    let schema = Schema::from_cedarschema_str(&text).unwrap().0;
    let session = session();
    let prepared = PreparedSession::new(&session).unwrap();
    let action = uid("Action", "read_document").unwrap();
    let action_text = action.to_string();
    let request = CallRequest::new(
        &prepared,
        &action,
        &action_text,
        uid("Document", "doc_88pk3r").unwrap(),
        Timestamp::from_second(1_790_000_000).unwrap(),
        arguments(&json!({ "document_id": "doc_88pk3r" }), "arguments").unwrap(),
    )
    .unwrap();
    let (values, _) = request.unchecked(ApprovalState::NotGranted).unwrap();
    let checked = cedar_policy_core::ast::RequestSchema::validate_request(
        schema.as_ref(),
        &values,
        cedar_policy_core::extensions::Extensions::all_available(),
    );
    assert!(checked.is_err());
}
