//! The Cedar request of a call, built from values evaluated ahead of time.
//!
//! Cedar's public `Context::from_pairs` evaluates every part of the context
//! on every call (the session's datetime is parsed again each time), and
//! `Request::new` with a schema converts the whole context back to
//! expressions to type-check it: together more than twice a whole
//! authorization. So the parts that are the same for the session
//! (`session`, `user`, `delegation`) are evaluated once at session start,
//! and a call adds only its own values (`approval`, `now`, `arguments`) to a
//! copy of them, with `cedar-policy-core`, the crate `cedar-policy` is built
//! on. Whether a context fits the action's schema depends only on its shape
//! (attribute names and value types, not values), so Cedar's check runs once
//! per shape and action and is remembered by the policy set
//! ([`crate::policy::Policies::check_request`]).

use std::fmt::Write;
use std::sync::{Arc, LazyLock, Mutex};

use cedar_policy::{EntityUid, Request};
use cedar_policy_core::ast::{
    self, EntityUIDEntry, Literal, Name, RestrictedExpr, Value, ValueKind,
};
use cedar_policy_core::entities::json::ContextJsonParser;
use cedar_policy_core::evaluator::RestrictedEvaluator;
use cedar_policy_core::extensions::Extensions;
use cedar_policy_core::parser::err::ParseErrors;
use jiff::Timestamp;
use ref_cast::RefCast;
use serde_json::{Map, Value as Json};

use super::RequestError;
use super::cedar_json::{datetime_json_text, datetime_text};
use super::prepared::PreparedSession;
use super::shape::approval_value;
use crate::pipeline::evaluate::ApprovalState;
use crate::pipeline::record::{RequestContext, RequestRecord};
use crate::policy::Policies;

/// `session`, `user` and `delegation`, evaluated at session start.
#[derive(Debug, Clone)]
pub(crate) struct SessionContext {
    context: ast::Context,
    shape: String,
}

impl SessionContext {
    /// Evaluates the session's parts from their Cedar JSON.
    pub(crate) fn from_json(parts: &Map<String, Json>) -> Result<Self, RequestError> {
        let parser: ContextJsonParser<'_, '_> =
            ContextJsonParser::new(None, Extensions::all_available());
        let context = parser
            .from_json_value(Json::Object(parts.clone()))
            .map_err(|e| RequestError::SessionContext(Box::new(e)))?;
        let mut shape = String::new();
        for (key, value) in values(&context)? {
            shape_of_pair(key, value, &mut shape);
        }
        Ok(SessionContext { context, shape })
    }
}

/// The attributes of an evaluated context.
fn values(context: &ast::Context) -> Result<impl Iterator<Item = (&str, &Value)>, RequestError> {
    match context {
        ast::Context::Value(map) => Ok(map.iter().map(|(k, v)| (k.as_str(), v))),
        ast::Context::RestrictedResidual(_) => Err(RequestError::SessionUnknowns),
    }
}

/// The name of Cedar's datetime constructor, parsed once: parsing a name
/// runs Cedar's grammar and costs more than the datetime itself.
static DATETIME: LazyLock<Result<Name, Box<ParseErrors>>> =
    LazyLock::new(|| Name::parse_unqualified_name("datetime").map_err(Box::new));

/// `now` as a Cedar datetime, with exactly millisecond precision in UTC.
fn datetime(text: &str) -> Result<Value, RequestError> {
    let name = DATETIME
        .as_ref()
        .map_err(|e| RequestError::DatetimeName(e.clone()))?
        .clone();
    let expr = RestrictedExpr::call_extension_fn(name, vec![RestrictedExpr::val(text)]);
    RestrictedEvaluator::new(Extensions::all_available())
        .interpret(expr.as_borrowed())
        .map_err(|cause| RequestError::Datetime {
            text: text.to_string(),
            cause: Box::new(cause),
        })
}

/// The last call time evaluated, by millisecond: calls in the same
/// millisecond (frequent under load) reuse it instead of parsing it again.
static LAST_NOW: Mutex<Option<(i64, Value)>> = Mutex::new(None);

/// [`datetime`] of a call's time `millis` (`text`), from [`LAST_NOW`] when
/// the millisecond is the same.
fn now(millis: i64, text: &str) -> Result<Value, RequestError> {
    if let Ok(last) = LAST_NOW.lock()
        && let Some((at, value)) = last.as_ref()
        && *at == millis
    {
        return Ok(value.clone());
    }
    let value = datetime(text)?;
    if let Ok(mut last) = LAST_NOW.lock() {
        *last = Some((millis, value.clone()));
    }
    Ok(value)
}

/// The tool's JSON arguments as a Cedar value: [`crate::policy::to_cedar`]'s
/// conversion and errors, without an expression to evaluate.
pub(crate) use crate::policy::to_value as arguments;

/// One call's Cedar request, built once per call: only `context.approval`
/// varies between its evaluations. The session's parts are borrowed from
/// the [`PreparedSession`]; the call's own (`resource`, `now`, `arguments`)
/// are owned, so the request lives as long as the call.
pub(crate) struct CallRequest<'a> {
    session: &'a PreparedSession,
    action: &'a EntityUid,
    /// `action` as text (Cedar's `Display` escapes, which costs).
    action_text: &'a str,
    resource: EntityUid,
    /// The time of the evaluation, `context.now`.
    at: Timestamp,
    /// `at` as Cedar's datetime text, as the record writes it.
    at_text: String,
    /// [`datetime`] of `at`.
    now: Value,
    /// [`arguments`] of the call.
    arguments: Value,
}

impl<'a> CallRequest<'a> {
    /// The request of a call of `action` on `resource` at `at` with the
    /// Cedar `arguments`, in the session `session`.
    pub(crate) fn new(
        session: &'a PreparedSession,
        action: &'a EntityUid,
        action_text: &'a str,
        resource: EntityUid,
        at: Timestamp,
        arguments: Value,
    ) -> Result<Self, RequestError> {
        let at_text = datetime_text(at);
        let now = now(at.as_millisecond(), &at_text)?;
        Ok(CallRequest {
            session,
            action,
            action_text,
            resource,
            at,
            at_text,
            now,
            arguments,
        })
    }

    /// The same request at a later time (a reviewer's answer is decided at
    /// the time it arrives).
    pub(crate) fn at(&self, at: Timestamp) -> Result<Self, RequestError> {
        let at_text = datetime_text(at);
        let now = now(at.as_millisecond(), &at_text)?;
        Ok(CallRequest {
            at,
            at_text,
            now,
            resource: self.resource.clone(),
            arguments: self.arguments.clone(),
            ..*self
        })
    }

    /// The resource.
    pub(crate) fn resource(&self) -> &EntityUid {
        &self.resource
    }

    /// When the request is evaluated.
    pub(crate) fn time(&self) -> Timestamp {
        self.at
    }

    /// The request as the decision record writes it (without `approval`
    /// and `arguments`, which the record holds elsewhere), so that replay
    /// can decide it again with the same `now`: `evaluated_at` when a
    /// reviewer's answer was decided later than the screening.
    pub(crate) fn record(
        &self,
        resource_text: String,
        evaluated_at: Option<Timestamp>,
    ) -> RequestRecord {
        let now = match evaluated_at {
            Some(at) => datetime_json_text(&datetime_text(at)),
            None => datetime_json_text(&self.at_text),
        };
        RequestRecord {
            principal: self.session.principal_text.clone(),
            action: self.action_text.to_string(),
            resource: resource_text,
            context: RequestContext {
                session: Arc::clone(&self.session.parts_json),
                now,
            },
        }
    }
}

impl CallRequest<'_> {
    /// The request under `approval`, checked against the schema of
    /// `policies`: arguments that do not fit the action's context are an
    /// error here, not a silent non-match.
    fn request(
        &self,
        policies: &Policies,
        approval: ApprovalState<'_>,
    ) -> Result<ast::Request, RequestError> {
        let (request, shape) = self.unchecked(approval)?;
        policies
            .check_request(&request, shape)
            .map_err(RequestError::Schema)?;
        Ok(request)
    }

    /// The request under `approval`, not yet checked against a schema,
    /// and the shape that check depends on.
    pub(super) fn unchecked(
        &self,
        approval: ApprovalState<'_>,
    ) -> Result<(ast::Request, String), RequestError> {
        let approval = approval_value(approval);
        let session = &self.session.context;
        let principal = &self.session.principal;
        let mut shape = String::with_capacity(session.shape.len() + 64);
        write!(
            shape,
            "{}|{}|{}|",
            self.action_text,
            principal.type_name(),
            self.resource.type_name()
        )?;
        shape.push_str(&session.shape);
        shape_of_pair("approval", &approval, &mut shape);
        shape_of_pair("now", &self.now, &mut shape);
        shape_of_pair("arguments", &self.arguments, &mut shape);
        let mut map = match &session.context {
            ast::Context::Value(map) => (**map).clone(),
            ast::Context::RestrictedResidual(_) => return Err(RequestError::SessionUnknowns),
        };
        map.insert("approval".into(), approval);
        map.insert("now".into(), self.now.clone());
        map.insert("arguments".into(), self.arguments.clone());
        let request = ast::Request::new_unchecked(
            EntityUIDEntry::known(principal.as_ref().clone(), None),
            EntityUIDEntry::known(self.action.as_ref().clone(), None),
            EntityUIDEntry::known(self.resource.as_ref().clone(), None),
            Some(ast::Context::Value(Arc::new(map))),
        );
        Ok((request, shape))
    }

    /// One evaluation under `approval`.
    pub(crate) fn decide(
        &self,
        policies: &Policies,
        entities: &cedar_policy::Entities,
        approval: ApprovalState<'_>,
    ) -> Result<crate::policy::Decision, RequestError> {
        let request = self.request(policies, approval)?;
        Ok(policies.decide(Request::ref_cast(&request), entities))
    }
}

/// Appends `"key":<shape>,` for a context attribute.
fn shape_of_pair(key: &str, value: &Value, out: &mut String) {
    quoted(key, out);
    out.push(':');
    shape_of(value, out);
    out.push(',');
}

/// What Cedar's schema check of a value depends on: its type, the names of
/// a record's attributes, the types of a set's elements. Not its values.
fn shape_of(value: &Value, out: &mut String) {
    match value.value_kind() {
        ValueKind::Lit(Literal::Bool(_)) => out.push('b'),
        ValueKind::Lit(Literal::Long(_)) => out.push('l'),
        ValueKind::Lit(Literal::String(_)) => out.push('s'),
        ValueKind::Lit(Literal::EntityUID(uid)) => {
            out.push('e');
            quoted(&uid.entity_type().to_string(), out);
        }
        ValueKind::Set(set) => {
            let mut elements: Vec<String> = set
                .iter()
                .map(|v| {
                    let mut s = String::new();
                    shape_of(v, &mut s);
                    s
                })
                .collect();
            elements.sort_unstable();
            elements.dedup();
            out.push('[');
            for e in elements {
                out.push_str(&e);
                out.push(',');
            }
            out.push(']');
        }
        ValueKind::Record(map) => {
            out.push('{');
            for (k, v) in map.iter() {
                shape_of_pair(k, v, out);
            }
            out.push('}');
        }
        ValueKind::ExtensionValue(x) => {
            out.push('x');
            quoted(&x.typename().to_string(), out);
        }
    }
}

/// A name in quotes, with quotes and backslashes escaped, so that no
/// attribute name can pass for a different structure.
fn quoted(name: &str, out: &mut String) {
    out.push('"');
    for c in name.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::str::FromStr;

    use cedar_policy::EntityUid;
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::pipeline::Session;
    use crate::pipeline::request::PreparedSession;
    use crate::policy::Effect;

    fn example() -> (Policies, PreparedSession) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let policies = Policies::load_dir(&dir).unwrap();
        let session = Session::from_file(&dir.join("session.json")).unwrap();
        (policies, PreparedSession::new(&session).unwrap())
    }

    fn decide(
        policies: &Policies,
        prepared: &PreparedSession,
        args: Json,
    ) -> Result<Effect, String> {
        let action = EntityUid::from_str(r#"Action::"read_document""#).unwrap();
        let resource = EntityUid::from_str(r#"Document::"doc_88pk3r""#).unwrap();
        let request = CallRequest::new(
            prepared,
            &action,
            r#"Action::"read_document""#,
            resource,
            Timestamp::from_second(1_790_000_000).unwrap(),
            arguments(&args, "arguments").unwrap(),
        )
        .unwrap();
        request
            .decide(policies, policies.entities(), ApprovalState::NotGranted)
            .map(|d| d.effect)
            .map_err(|e| e.to_string())
    }

    fn checked_shapes(policies: &Policies) -> usize {
        policies.checked_shapes()
    }

    #[test]
    fn a_shape_checked_once_still_refuses_arguments_of_another_shape() {
        let (policies, prepared) = example();
        let ok = json!({ "document_id": "doc_88pk3r" });
        assert_eq!(decide(&policies, &prepared, ok.clone()), Ok(Effect::Allow));
        assert_eq!(checked_shapes(&policies), 1);
        // The same shape with another value is not checked again.
        let other = json!({ "document_id": "doc_4hq2zt" });
        assert_eq!(decide(&policies, &prepared, other), Ok(Effect::Allow));
        assert_eq!(checked_shapes(&policies), 1);
        // A wrong type, or an attribute the schema does not have, is still
        // refused after the right shape passed, and is not remembered.
        for wrong in [
            json!({ "document_id": 5 }),
            json!({ "document_id": "doc_88pk3r", "extra": "x" }),
            json!({}),
        ] {
            let err = decide(&policies, &prepared, wrong.clone()).unwrap_err();
            assert!(err.contains("context"), "{wrong}: {err}");
        }
        assert_eq!(checked_shapes(&policies), 1);
        assert_eq!(decide(&policies, &prepared, ok), Ok(Effect::Allow));
    }

    #[test]
    fn a_schema_error_names_attributes_and_types_but_never_a_value() {
        let (policies, prepared) = example();
        let secret = "hunter2-7f3a9c";
        for (wrong, path) in [
            (
                json!({ "document_id": "doc_88pk3r", "extra": secret }),
                "`context.arguments.extra`",
            ),
            (
                json!({ "document_id": 5, "note": [secret] }),
                "`context.arguments.document_id`",
            ),
            (json!({ "note": secret }), "`context.arguments."),
        ] {
            let err = decide(&policies, &prepared, wrong.clone()).unwrap_err();
            assert!(!err.contains(secret), "{wrong}: {err}");
            assert!(!err.contains("doc_88pk3r"), "{wrong}: {err}");
            // Nor the session's values.
            assert!(!err.contains("alice"), "{wrong}: {err}");
            assert!(err.contains(path), "{wrong}: {err}");
        }
    }

    #[test]
    fn attribute_names_cannot_pass_for_another_structure() {
        let shape = |v: Json| {
            let mut s = String::new();
            shape_of(&arguments(&v, "arguments").unwrap(), &mut s);
            s
        };
        assert_ne!(
            shape(json!({ "a\":s,\"b": "x" })),
            shape(json!({ "a": "x", "b": "x" }))
        );
        assert_ne!(shape(json!(["x", 1])), shape(json!(["x"])));
        assert_eq!(shape(json!(["x", "y"])), shape(json!(["z"])));
        assert_eq!(shape(json!({ "n": 1 })), shape(json!({ "n": 2 })));
    }

    #[test]
    fn a_datetime_reused_within_its_millisecond_is_the_same_value() {
        let text = "2026-11-26T12:00:00.123Z";
        let first = now(1_795_000_000_123, text).unwrap();
        let again = now(1_795_000_000_123, text).unwrap();
        assert_eq!(first, again);
        assert_eq!(first, datetime(text).unwrap());
        let later = now(1_795_000_000_124, "2026-11-26T12:00:00.124Z").unwrap();
        assert_ne!(first, later);
    }
}
