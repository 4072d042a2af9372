//! Why a request does not fit the schema, told without any of its values.
//!
//! Cedar's own message for a context that does not fit quotes the whole
//! context: the agent's arguments (secrets among them) and the session's
//! values, in clear. That message would reach the decision record, the
//! agent and the operator's terminal. So the context is walked against the
//! action's declared type here, and the first difference is named by its
//! path and types only (`context.arguments.extra` is not declared; a `Long`
//! where the schema declares `String`). Cedar's other messages name only
//! types and the action, and are kept.

use cedar_policy_core::ast::{self, Literal, Value, ValueKind};
use cedar_policy_core::validator::types::{OpenTag, Type};
use cedar_policy_core::validator::{RequestValidationError, ValidatorSchema};

/// A value-free description of `error`, Cedar's refusal of `request`.
pub(crate) fn describe(
    error: &RequestValidationError,
    schema: &ValidatorSchema,
    request: &ast::Request,
) -> String {
    match error {
        RequestValidationError::UndeclaredAction(_)
        | RequestValidationError::ExternalAction(_)
        | RequestValidationError::UndeclaredPrincipalType(_)
        | RequestValidationError::UndeclaredResourceType(_)
        | RequestValidationError::InvalidPrincipalType(_)
        | RequestValidationError::InvalidResourceType(_) => error.to_string(),
        _ => context_mismatch(schema, request).unwrap_or_else(|| {
            // Every other refusal (an entity id outside an enumerated type,
            // an unknown extension) could quote a value: say only what.
            "the request does not match the schema (its values are withheld)".to_string()
        }),
    }
}

/// The first place where the request's context differs from the type its
/// action declares, if one is found.
fn context_mismatch(schema: &ValidatorSchema, request: &ast::Request) -> Option<String> {
    let action = request.action().uid()?;
    let expected = schema.context_type(action)?;
    let ast::Context::Value(attributes) = request.context()? else {
        return Some("`context` is not a value".to_string());
    };
    let context = Value::record(attributes.iter().map(|(k, v)| (k.clone(), v.clone())), None);
    mismatch(&context, expected, "context")
}

/// Where `value` (at `path`) does not have type `ty`, naming only attribute
/// names and types.
fn mismatch(value: &Value, ty: &Type, path: &str) -> Option<String> {
    match (value.value_kind(), ty) {
        (
            ValueKind::Record(record),
            Type::Record {
                attrs,
                open_attributes,
            },
        ) => {
            for (name, item) in record.iter() {
                let here = format!("{path}.{name}");
                match attrs.get_attr(name) {
                    Some(declared) => {
                        if let Some(why) = mismatch(item, &declared.attr_type, &here) {
                            return Some(why);
                        }
                    }
                    None if *open_attributes == OpenTag::OpenAttributes => {}
                    None => {
                        return Some(format!(
                            "`{here}` ({}) is not declared in the schema",
                            kind(item)
                        ));
                    }
                }
            }
            attrs
                .iter()
                .find(|(name, declared)| declared.is_required && record.get(*name).is_none())
                .map(|(name, declared)| {
                    format!(
                        "`{path}.{name}` is missing; the schema requires `{}`",
                        declared.attr_type
                    )
                })
        }
        (ValueKind::Set(set), Type::Set { element_type }) => {
            let element_type = element_type.as_ref()?;
            let here = format!("{path}[]");
            set.iter()
                .find_map(|item| mismatch(item, element_type, &here))
        }
        (ValueKind::Lit(Literal::Bool(_)), Type::Bool(_))
        | (ValueKind::Lit(Literal::Long(_)), Type::Long)
        | (ValueKind::Lit(Literal::String(_)), Type::String) => None,
        (ValueKind::Lit(Literal::EntityUID(uid)), Type::Entity(_))
            if ty.to_string() == uid.entity_type().to_string() =>
        {
            None
        }
        (ValueKind::ExtensionValue(x), Type::ExtensionType { name })
            if x.typename().to_string() == name.to_string() =>
        {
            None
        }
        _ => Some(format!(
            "`{path}` is {} where the schema declares `{ty}`",
            kind(value)
        )),
    }
}

/// The type of `value` as a phrase, without the value.
fn kind(value: &Value) -> String {
    match value.value_kind() {
        ValueKind::Lit(Literal::Bool(_)) => "a `Bool`".into(),
        ValueKind::Lit(Literal::Long(_)) => "a `Long`".into(),
        ValueKind::Lit(Literal::String(_)) => "a `String`".into(),
        ValueKind::Lit(Literal::EntityUID(uid)) => {
            format!("an entity of type `{}`", uid.entity_type())
        }
        ValueKind::Set(_) => "a set".into(),
        ValueKind::Record(_) => "a record".into(),
        ValueKind::ExtensionValue(x) => format!("a `{}`", x.typename()),
    }
}
