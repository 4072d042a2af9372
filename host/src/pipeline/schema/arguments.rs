//! JSON Schema, as schemars writes it for a tool's argument type, to Cedar
//! types. Exact or refused: a JSON value `to_cedar` would refuse (null,
//! fractions) has no type here either, and a shape Cedar cannot describe
//! (maps, tuples, unions, recursion, untyped values) is an error naming its
//! path in the arguments. Every struct must be closed (`additionalProperties:
//! false`, which serde's `deny_unknown_fields` gives): a field the type does
//! not declare would reach Cedar, which the schema does not allow.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Attribute, CedarType, SchemaError, Unrepresentable, render_inline};

/// How a schema's objects and numbers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// As schemars writes a Rust type: every object must be closed and a
    /// `number` is a fraction, which Cedar cannot hold.
    Exact,
    /// As a server describes a tool it runs (MCP, programs): JSON Schema's
    /// objects are open unless they say otherwise, so the guard closes them
    /// (an agent may send only the fields the schema declares, which the
    /// argument check enforces); a `number` is a Cedar `Long`, and a
    /// fractional value is refused by the argument check.
    Declared,
}

/// The record type of arguments described by the JSON Schema `schema`,
/// written by schemars for a Rust type.
#[cfg(test)]
pub(crate) fn argument_type_of(tool: &str, schema: &Value) -> Result<CedarType, SchemaError> {
    argument_type_read(tool, schema, Reading::Exact)
}

/// The record type of arguments described by the JSON Schema `schema`,
/// read as `reading` says.
pub(crate) fn argument_type_read(
    tool: &str,
    schema: &Value,
    reading: Reading,
) -> Result<CedarType, SchemaError> {
    let mut mapper = Mapper {
        root: schema,
        // schemars refers to the arguments type itself as `#`.
        refs: vec!["#".to_string()],
        reading,
    };
    let path = "arguments";
    let fail = |why| SchemaError::Argument {
        tool: tool.to_string(),
        path: path.to_string(),
        why,
    };
    match mapper.map(schema, path) {
        Ok(Mapped {
            ty: ty @ CedarType::Record(_),
            nullable: false,
        }) => Ok(ty),
        Ok(Mapped { nullable: true, .. }) => Err(fail(Unrepresentable::Null)),
        Ok(_) => Err(fail(Unrepresentable::Unsupported(
            "a type other than a struct with named fields".into(),
        ))),
        Err((path, why)) => Err(SchemaError::Argument {
            tool: tool.to_string(),
            path,
            why,
        }),
    }
}

/// A Cedar type, and whether JSON may also hold `null` there (which Cedar
/// can express only by leaving an optional attribute out).
struct Mapped {
    ty: CedarType,
    nullable: bool,
}

impl Mapped {
    fn plain(ty: CedarType) -> Self {
        Mapped {
            ty,
            nullable: false,
        }
    }
}

type MapResult = Result<Mapped, (String, Unrepresentable)>;

/// Maps JSON Schema (as written by schemars) to Cedar types.
struct Mapper<'a> {
    root: &'a Value,
    /// The `$ref`s being expanded, to catch recursive types.
    refs: Vec<String>,
    reading: Reading,
}

impl Mapper<'_> {
    fn map(&mut self, schema: &Value, path: &str) -> MapResult {
        let fail = |why| Err((path.to_string(), why));
        let object = match schema {
            Value::Object(object) => object,
            Value::Bool(true) => return fail(Unrepresentable::Untyped),
            _ => {
                return fail(Unrepresentable::Unsupported(
                    "a schema no value matches".into(),
                ));
            }
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return self.map_ref(reference, path);
        }
        if let Some(all) = object.get("allOf").and_then(Value::as_array) {
            return match all.as_slice() {
                [only] => self.map(only, path),
                _ => fail(Unrepresentable::Unsupported(
                    "`allOf` of several schemas".into(),
                )),
            };
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alternatives) = object.get(key).and_then(Value::as_array) {
                return self.map_alternatives(alternatives, path);
            }
        }
        if let Some(value) = object.get("const") {
            return self.map_values(std::slice::from_ref(value), path);
        }
        if let Some(Value::Array(values)) = object.get("enum") {
            return self.map_values(values, path);
        }
        match object.get("type") {
            Some(Value::String(ty)) => self.map_typed(ty, object, path),
            Some(Value::Array(types)) => {
                let mut nullable = false;
                let mut others = Vec::new();
                for ty in types.iter().filter_map(Value::as_str) {
                    if ty == "null" {
                        nullable = true;
                    } else {
                        others.push(ty);
                    }
                }
                match others.as_slice() {
                    [only] => {
                        let mapped = self.map_typed(only, object, path)?;
                        Ok(Mapped {
                            ty: mapped.ty,
                            nullable: nullable || mapped.nullable,
                        })
                    }
                    [] => fail(Unrepresentable::Null),
                    _ => fail(Unrepresentable::Union(backticked(&others))),
                }
            }
            Some(_) => fail(Unrepresentable::Unsupported("a malformed `type`".into())),
            None if object.contains_key("properties") => self.map_typed("object", object, path),
            None => fail(Unrepresentable::Untyped),
        }
    }

    fn map_ref(&mut self, reference: &str, path: &str) -> MapResult {
        let fail = |why| Err((path.to_string(), why));
        let name = match reference {
            "#" => self
                .root
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("#"),
            _ => reference.rsplit('/').next().unwrap_or(reference),
        }
        .to_string();
        if self.refs.iter().any(|r| r == reference) {
            return fail(Unrepresentable::Recursive(name));
        }
        let root = self.root;
        let Some(target) = reference.strip_prefix('#').and_then(|p| root.pointer(p)) else {
            return fail(Unrepresentable::MissingRef(reference.to_string()));
        };
        self.refs.push(reference.to_string());
        let mapped = self.map(target, path);
        self.refs.pop();
        mapped
    }

    /// `anyOf`/`oneOf`: `null` alternatives make it nullable; the rest must
    /// all map to one Cedar type (as the variants of a string enum do).
    fn map_alternatives(&mut self, alternatives: &[Value], path: &str) -> MapResult {
        let mut nullable = false;
        let mut types: Vec<CedarType> = Vec::new();
        for alternative in alternatives {
            let is_null = alternative.get("type").and_then(Value::as_str) == Some("null")
                || alternative.get("const") == Some(&Value::Null);
            if is_null {
                nullable = true;
                continue;
            }
            let mapped = self.map(alternative, path)?;
            nullable |= mapped.nullable;
            if !types.contains(&mapped.ty) {
                types.push(mapped.ty);
            }
        }
        match types.as_slice() {
            [only] => Ok(Mapped {
                ty: only.clone(),
                nullable,
            }),
            [] => Err((path.to_string(), Unrepresentable::Null)),
            several => {
                let names: Vec<String> = several.iter().map(render_inline).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Err((path.to_string(), Unrepresentable::Union(backticked(&names))))
            }
        }
    }

    /// `const` and `enum`: the type of the values, which must agree.
    fn map_values(&mut self, values: &[Value], path: &str) -> MapResult {
        let fail = |why| Err((path.to_string(), why));
        let mut nullable = false;
        let mut types: Vec<&str> = Vec::new();
        for value in values {
            let ty = match value {
                Value::Null => {
                    nullable = true;
                    continue;
                }
                Value::String(_) => "String",
                Value::Bool(_) => "Bool",
                Value::Number(n) if n.is_i64() => "Long",
                Value::Number(_) => return fail(Unrepresentable::Fractional),
                Value::Array(_) | Value::Object(_) => {
                    return fail(Unrepresentable::Unsupported(
                        "constant arrays or objects".into(),
                    ));
                }
            };
            if !types.contains(&ty) {
                types.push(ty);
            }
        }
        let ty = match types.as_slice() {
            ["String"] => CedarType::String,
            ["Bool"] => CedarType::Bool,
            ["Long"] => CedarType::Long,
            [] => return fail(Unrepresentable::Null),
            several => return fail(Unrepresentable::Union(backticked(several))),
        };
        Ok(Mapped { ty, nullable })
    }

    fn map_typed(&mut self, ty: &str, object: &Map<String, Value>, path: &str) -> MapResult {
        let fail = |why| Err((path.to_string(), why));
        match ty {
            "string" => Ok(Mapped::plain(CedarType::String)),
            "integer" => Ok(Mapped::plain(CedarType::Long)),
            "boolean" => Ok(Mapped::plain(CedarType::Bool)),
            "number" if self.reading == Reading::Declared => Ok(Mapped::plain(CedarType::Long)),
            "number" => fail(Unrepresentable::Fractional),
            "null" => fail(Unrepresentable::Null),
            "array" => {
                let item_path = format!("{path}[]");
                if object.contains_key("prefixItems") {
                    return fail(Unrepresentable::Tuple);
                }
                match object.get("items") {
                    Some(Value::Array(_)) => fail(Unrepresentable::Tuple),
                    Some(items) => {
                        let item = self.map(items, &item_path)?;
                        if item.nullable {
                            return Err((item_path, Unrepresentable::Null));
                        }
                        Ok(Mapped::plain(CedarType::set(item.ty)))
                    }
                    None => Err((item_path, Unrepresentable::Untyped)),
                }
            }
            "object" => self.map_object(object, path),
            other => fail(Unrepresentable::Unsupported(format!("type `{other}`"))),
        }
    }

    fn map_object(&mut self, object: &Map<String, Value>, path: &str) -> MapResult {
        let fail = |why| Err((path.to_string(), why));
        let closed = object.get("additionalProperties") == Some(&Value::Bool(false));
        let extra_schema = matches!(
            object.get("additionalProperties"),
            Some(Value::Object(_) | Value::Bool(true))
        ) || object.contains_key("patternProperties");
        let properties = match object.get("properties") {
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => {
                return fail(Unrepresentable::Unsupported(
                    "malformed `properties`".into(),
                ));
            }
            None => None,
        };
        if extra_schema {
            return fail(Unrepresentable::Map);
        }
        // A struct that accepts fields it does not declare lets an agent
        // pass what neither the schema nor the policies know about.
        if !closed && self.reading == Reading::Exact {
            return fail(Unrepresentable::Open);
        }
        let empty = Map::new();
        let properties = match properties {
            Some(properties) => properties,
            // `struct Empty {}` with `deny_unknown_fields`: the record `{}`.
            None => &empty,
        };
        let required: BTreeSet<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort();
        let mut attributes = Vec::with_capacity(names.len());
        for name in names {
            let Some(schema) = properties.get(name) else {
                continue;
            };
            let mapped = self.map(schema, &format!("{path}.{name}"))?;
            attributes.push(Attribute {
                name: name.clone(),
                ty: mapped.ty,
                required: required.contains(name.as_str()) && !mapped.nullable,
            });
        }
        Ok(Mapped::plain(CedarType::Record(attributes)))
    }
}

fn backticked(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    names.join(", ")
}
