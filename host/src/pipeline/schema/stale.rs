//! A policy schema checked against the registered tools: each tool's
//! `context.arguments` must be exactly the type derived from its arguments.
//!
//! A schema written for another version of a tool (a field added, removed or
//! retyped since) refuses calls that the tool accepts, or accepts calls it
//! refuses; either way the schema check on the call path, whose message used
//! to quote every argument, becomes reachable by any agent. So a guard is
//! not built, and a reload not applied, over such a schema.

use cedar_policy_core::validator::types::{OpenTag, Type};

use super::{CedarType, SchemaError, render_inline};
use crate::pipeline::tools::ToolRegistry;

/// Checks that `schema` declares each tool's arguments with the tool's own
/// type. Tools whose action the schema lacks are not checked here.
pub(crate) fn check_arguments(
    tools: &ToolRegistry,
    schema: &cedar_policy::Schema,
) -> Result<(), SchemaError> {
    for tool in tools.iter() {
        let Some(context) = schema.as_ref().context_type(tool.action().as_ref()) else {
            continue;
        };
        let stale = |path: String, why: String| SchemaError::Stale {
            tool: tool.spec().name.clone(),
            path,
            why,
        };
        let Type::Record { attrs, .. } = context else {
            return Err(stale("context".into(), "is not a record".into()));
        };
        let Some(declared) = attrs.get_attr("arguments") else {
            return Err(stale(
                "arguments".into(),
                "is missing from the action's context".into(),
            ));
        };
        if let Some((path, why)) =
            difference(tool.argument_type(), &declared.attr_type, "arguments")
        {
            return Err(stale(path, why));
        }
    }
    Ok(())
}

/// The first place where `declared` (the schema's) differs from `expected`
/// (the tool's): its path and how.
fn difference(expected: &CedarType, declared: &Type, path: &str) -> Option<(String, String)> {
    match (expected, declared) {
        (
            CedarType::Record(attributes),
            Type::Record {
                attrs,
                open_attributes,
            },
        ) => {
            if *open_attributes == OpenTag::OpenAttributes {
                return Some((path.into(), "is an open record in the schema".into()));
            }
            for attribute in attributes {
                let here = format!("{path}.{}", attribute.name);
                let Some(declared) = attrs.get_attr(&attribute.name) else {
                    return Some((
                        here,
                        format!(
                            "is missing from the schema; the tool takes `{}`",
                            render_inline(&attribute.ty)
                        ),
                    ));
                };
                if declared.is_required != attribute.required {
                    return Some((
                        here,
                        format!(
                            "is {} in the schema but {} for the tool",
                            presence(declared.is_required),
                            presence(attribute.required)
                        ),
                    ));
                }
                if let Some(found) = difference(&attribute.ty, &declared.attr_type, &here) {
                    return Some(found);
                }
            }
            attrs
                .keys()
                .find(|name| !attributes.iter().any(|a| a.name == name.as_str()))
                .map(|name| {
                    (
                        format!("{path}.{name}"),
                        "is in the schema but not in the tool's arguments".into(),
                    )
                })
        }
        (
            CedarType::Set(item),
            Type::Set {
                element_type: Some(declared),
            },
        ) => difference(item, declared, &format!("{path}[]")),
        _ => {
            let expected = render_inline(expected);
            let declared = declared.to_string();
            (expected != declared).then(|| {
                (
                    path.into(),
                    format!("is `{declared}` in the schema but `{expected}` for the tool"),
                )
            })
        }
    }
}

fn presence(required: bool) -> &'static str {
    if required { "required" } else { "optional" }
}
