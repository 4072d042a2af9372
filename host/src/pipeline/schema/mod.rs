//! The Cedar schema of a tool registry: one action per tool, with the typed
//! `context.arguments` derived from the tool's JSON Schema, grouped in its
//! scope, next to the session, user and agent types the guard puts in every
//! request. Policies are validated against exactly what the call path sends.
//!
//! Only JSON that [`crate::policy::to_cedar`] converts exactly has a Cedar
//! type here; anything else (fractions, maps, tuples, untyped values) is a
//! [`SchemaError`] naming the tool and the path, so a schema is never looser
//! or stricter than the conversion.

mod arguments;
mod stale;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::request::{COMMON_TYPES, CONTEXT_FIELDS};
use super::tools::{RegisteredTool, ResourceBinding, ToolRegistry};
pub(super) use arguments::{Reading, argument_type_read};
pub(super) use stale::check_arguments;

/// The entity and common types every request uses. `Tool` is the resource
/// of tools that act on nothing else.
const BUILT_IN_TYPES: &[&str] = &[
    "Group",
    "User",
    "Agent",
    "Tool",
    "Host",
    "Session",
    "Delegation",
    "Approval",
];

const HEADER: &str = "\
// Cedar schema for Mandate's tools, generated from the tool registry by
// `mandate policy schema > policies/schema.cedarschema`: change the tools,
// then regenerate, rather than editing this file.
//
// The principal of every request is the agent; the human is `context.user`.
// Each tool is one action, grouped under the scope it needs, so policies can
// speak in scopes (`action in Action::\"documents:read\"`).

entity Group;
entity User in [Group] = { email: String };
entity Agent = { name: String, version: String };
entity Tool;

// The destination of an outgoing HTTP request (`Action::\"http_request\"`): its
// host name or address; scheme and port are in `context.arguments`.
entity Host;
";

/// Lines are kept to this width where a record can be broken.
const WIDTH: usize = 100;

/// A Cedar attribute type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CedarType {
    /// `String`.
    String,
    /// `Long`: a 64-bit signed integer.
    Long,
    /// `Bool`.
    Bool,
    /// `datetime`.
    Datetime,
    /// A reference to an entity of this type, e.g. `User`.
    Entity(String),
    /// `Set<T>`.
    Set(Box<CedarType>),
    /// A record with these attributes.
    Record(Vec<Attribute>),
}

impl CedarType {
    /// A reference to an entity of type `name`.
    pub fn entity(name: impl Into<String>) -> Self {
        CedarType::Entity(name.into())
    }

    /// `Set<item>`.
    pub fn set(item: CedarType) -> Self {
        CedarType::Set(Box::new(item))
    }
}

/// One attribute of a record or entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: CedarType,
    /// Whether it is always present; policies must test `has` otherwise.
    pub required: bool,
}

/// A resource entity type that tools act on, such as `Document`. Its
/// attributes come from the application's data, not from any tool's
/// arguments, so the registry declares them (see
/// [`ToolRegistry::declare_entity_type`]).
///
/// ```
/// use mandate::pipeline::{CedarType, EntityTypeDecl};
///
/// let document = EntityTypeDecl::new("Document")
///     .doc("A document; its owner is the only user whose agents may touch it.")
///     .attribute("owner", CedarType::entity("User"))
///     .attribute("title", CedarType::String)
///     .optional_attribute("labels", CedarType::set(CedarType::String));
/// assert_eq!(document.name(), "Document");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTypeDecl {
    name: String,
    doc: Option<String>,
    parents: Vec<String>,
    attributes: Vec<Attribute>,
}

impl EntityTypeDecl {
    /// An entity type called `name` (a plain Cedar identifier) with no
    /// attributes yet.
    pub fn new(name: impl Into<String>) -> Self {
        EntityTypeDecl {
            name: name.into(),
            doc: None,
            parents: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// A comment written above the declaration.
    pub fn doc(mut self, text: impl Into<String>) -> Self {
        self.doc = Some(text.into());
        self
    }

    /// Entities of this type may be members of entities of type `parent`
    /// (`entity Document in [Folder]`).
    pub fn member_of(mut self, parent: impl Into<String>) -> Self {
        self.parents.push(parent.into());
        self
    }

    /// An attribute every entity has.
    pub fn attribute(mut self, name: impl Into<String>, ty: CedarType) -> Self {
        self.attributes.push(Attribute {
            name: name.into(),
            ty,
            required: true,
        });
        self
    }

    /// An attribute some entities lack.
    pub fn optional_attribute(mut self, name: impl Into<String>, ty: CedarType) -> Self {
        self.attributes.push(Attribute {
            name: name.into(),
            ty,
            required: false,
        });
        self
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its attributes, in declaration order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    pub(super) fn is_built_in(name: &str) -> bool {
        BUILT_IN_TYPES.contains(&name)
    }
}

/// Why a tool's arguments have no exact Cedar type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unrepresentable {
    /// `f32`, `f64`: `to_cedar` refuses fractions.
    #[error("is a fractional number, which cedar cannot hold; use an integer or a string")]
    Fractional,
    /// A map with arbitrary keys.
    #[error("is a map with arbitrary keys; cedar records have fixed attributes, so use a struct")]
    Map,
    /// A tuple: Cedar sets are unordered.
    #[error("is a tuple; cedar sets are unordered, so use a struct")]
    Tuple,
    /// Any JSON value.
    #[error("has no declared type; give it a concrete one")]
    Untyped,
    /// One of several types.
    #[error("may be any of {0}; a cedar attribute has one type")]
    Union(String),
    /// Always `null`, or an array whose items may be `null`: `to_cedar`
    /// refuses null.
    #[error("may be null where cedar cannot leave it out")]
    Null,
    /// A type that contains itself.
    #[error("refers to itself through `{0}`; cedar types cannot be recursive")]
    Recursive(String),
    /// A `$ref` that points nowhere.
    #[error("refers to `{0}`, which the argument schema does not define")]
    MissingRef(String),
    /// A struct that accepts fields it does not declare.
    #[error(
        "accepts fields it does not declare; add `#[serde(deny_unknown_fields)]` to its type (`additionalProperties: false`)"
    )]
    Open,
    /// A JSON Schema construct with no Cedar counterpart.
    #[error("uses {0}, which has no cedar type")]
    Unsupported(String),
}

/// Why a registry's Cedar schema cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A tool argument has no exact Cedar type.
    #[error("tool `{tool}`: `{path}` {why}")]
    Argument {
        /// The tool.
        tool: String,
        /// Where in the arguments, e.g. `arguments.ratio` or `arguments.tags[]`.
        path: String,
        /// What is wrong with it.
        why: Unrepresentable,
    },
    /// The argument schema is not JSON.
    #[error("tool `{tool}`: cannot read its argument schema: {message}")]
    ArgumentSchema {
        /// The tool.
        tool: String,
        /// The parser's message.
        message: String,
    },
    /// A tool acts on an entity type nobody declared.
    #[error(
        "tool `{tool}` acts on `{entity_type}`, which is not declared; declare it with `ToolRegistry::declare_entity_type`"
    )]
    UndeclaredResource {
        /// The tool.
        tool: String,
        /// Its resource type.
        entity_type: String,
    },
    /// The argument naming a tool's resource is not a required string.
    #[error("tool `{tool}`: its resource argument `{argument}` must be a required string")]
    ResourceArgument {
        /// The tool.
        tool: String,
        /// The argument.
        argument: String,
    },
    /// A declared entity type refers to an entity type nobody declared.
    #[error("entity type `{entity_type}` refers to `{target}`, which is not declared")]
    UndeclaredEntityType {
        /// The declaration.
        entity_type: String,
        /// The unknown type it names (as a parent or an attribute type).
        target: String,
    },
    /// The schema's type of a tool's arguments is not the tool's own: the
    /// schema was written for another version of the tool.
    #[error(
        "tool `{tool}`: the schema does not match its arguments: `{path}` {why}; regenerate schema.cedarschema from the tools (`mandate policy schema`, or `ToolRegistry::cedar_schema`)"
    )]
    Stale {
        /// The tool.
        tool: String,
        /// Where in the arguments, e.g. `arguments.summary`.
        path: String,
        /// How the schema differs.
        why: String,
    },
    /// Cedar refused the generated text; a bug in this module.
    #[error("the generated schema is not valid cedar: {0}")]
    Invalid(String),
}

/// Writes the `.cedarschema` text for `tools`. Deterministic: tools, scopes,
/// entity types and argument attributes come out in name order.
pub(super) fn generate(tools: &ToolRegistry) -> Result<String, SchemaError> {
    let declared: BTreeSet<&str> = tools
        .entity_types()
        .map(EntityTypeDecl::name)
        .chain(BUILT_IN_TYPES.iter().copied())
        .collect();
    let mut out = String::from(HEADER);
    for decl in tools.entity_types() {
        check_declared(decl, &declared)?;
        out.push('\n');
        if let Some(doc) = &decl.doc {
            comment(&mut out, doc);
        }
        write_entity(&mut out, decl);
    }
    out.push('\n');
    out.push_str(COMMON_TYPES);

    let scopes: BTreeSet<&str> = tools.iter().map(|t| t.spec().scope.as_str()).collect();
    if !scopes.is_empty() {
        out.push_str("\n// The scopes: each is an action group that policies can name.\n");
        let names: Vec<String> = scopes.iter().map(|s| quoted(s)).collect();
        let _ = writeln!(out, "action {};", names.join(", "));
    }
    let groups: BTreeSet<&str> = tools
        .iter()
        .flat_map(|t| t.groups().iter().map(String::as_str))
        .filter(|g| !scopes.contains(g))
        .collect();
    if !groups.is_empty() {
        out.push_str(
            "\n// Other action groups tools belong to, such as what an MCP server says of its\n\
             // tools (`mcp:read_only`, `mcp:destructive`): claims of the server, pinned by\n\
             // the tools lock, fit for making policies stricter.\n",
        );
        let names: Vec<String> = groups.iter().map(|s| quoted(s)).collect();
        let _ = writeln!(out, "action {};", names.join(", "));
    }
    for tool in tools.iter() {
        out.push('\n');
        write_action(&mut out, tool, &declared)?;
    }
    // Cedar's warnings (shadowed names and the like) cannot arise from the
    // fixed parts, and declared names are checked at declaration.
    let (_schema, _warnings) = cedar_policy::Schema::from_cedarschema_str(&out)
        .map_err(|e| SchemaError::Invalid(e.to_string()))?;
    Ok(out)
}

fn check_declared(decl: &EntityTypeDecl, declared: &BTreeSet<&str>) -> Result<(), SchemaError> {
    let undeclared = |target: &str| SchemaError::UndeclaredEntityType {
        entity_type: decl.name.clone(),
        target: target.to_string(),
    };
    if let Some(parent) = decl.parents.iter().find(|p| !declared.contains(p.as_str())) {
        return Err(undeclared(parent));
    }
    let mut entities = Vec::new();
    for attribute in &decl.attributes {
        entity_refs(&attribute.ty, &mut entities);
    }
    match entities.into_iter().find(|e| !declared.contains(e)) {
        Some(target) => Err(undeclared(target)),
        None => Ok(()),
    }
}

fn entity_refs<'a>(ty: &'a CedarType, out: &mut Vec<&'a str>) {
    match ty {
        CedarType::Entity(name) => out.push(name),
        CedarType::Set(item) => entity_refs(item, out),
        CedarType::Record(attributes) => {
            for a in attributes {
                entity_refs(&a.ty, out);
            }
        }
        CedarType::String | CedarType::Long | CedarType::Bool | CedarType::Datetime => {}
    }
}

fn write_entity(out: &mut String, decl: &EntityTypeDecl) {
    let mut head = format!("entity {}", decl.name);
    if !decl.parents.is_empty() {
        let _ = write!(head, " in [{}]", decl.parents.join(", "));
    }
    if decl.attributes.is_empty() {
        let _ = writeln!(out, "{head};");
        return;
    }
    head.push_str(" = ");
    let record = CedarType::Record(decl.attributes.clone());
    let body = render(&record, 0, head.len() + 1);
    let _ = writeln!(out, "{head}{body};");
}

fn write_action(
    out: &mut String,
    tool: &RegisteredTool,
    declared: &BTreeSet<&str>,
) -> Result<(), SchemaError> {
    let spec = tool.spec();
    let arguments = tool.argument_type().clone();
    let resource = match &spec.resource {
        ResourceBinding::Tool => "Tool".to_string(),
        ResourceBinding::Argument {
            entity_type,
            argument,
        } => {
            if !declared.contains(entity_type.as_str()) {
                return Err(SchemaError::UndeclaredResource {
                    tool: spec.name.clone(),
                    entity_type: entity_type.clone(),
                });
            }
            let names_it =
                |a: &Attribute| a.name == *argument && a.required && a.ty == CedarType::String;
            if !matches!(&arguments, CedarType::Record(attrs) if attrs.iter().any(names_it)) {
                return Err(SchemaError::ResourceArgument {
                    tool: spec.name.clone(),
                    argument: argument.clone(),
                });
            }
            entity_type.clone()
        }
    };
    if !spec.description.trim().is_empty() {
        comment(out, &spec.description);
    }
    match &spec.resource {
        ResourceBinding::Tool => {
            let _ = writeln!(out, "// Resource: `Tool::{}`.", quoted(&spec.name));
        }
        ResourceBinding::Argument { argument, .. } => {
            let _ = writeln!(
                out,
                "// Resource: the `{resource}` whose id is `context.arguments.{argument}`."
            );
        }
    }
    let mut groups = vec![quoted(&spec.scope)];
    groups.extend(tool.groups().iter().map(|g| quoted(g)));
    let _ = writeln!(
        out,
        "action {} in [{}] appliesTo {{",
        identifier(&spec.name),
        groups.join(", ")
    );
    let _ = writeln!(out, "  principal: [Agent],");
    let _ = writeln!(out, "  resource: [{resource}],");
    let _ = writeln!(out, "  context: {{");
    let _ = writeln!(out, "    {CONTEXT_FIELDS}");
    let prefix = "    arguments: ";
    let _ = writeln!(out, "{prefix}{},", render(&arguments, 4, prefix.len() + 1));
    let _ = writeln!(out, "  }},");
    let _ = writeln!(out, "}};");
    Ok(())
}

/// `// ` before every line of `text`.
///
/// The text may be a server's (an MCP tool's description): control
/// characters and Unicode line breaks are escaped, so that nothing in it can
/// end the comment and be read as schema.
fn comment(out: &mut String, text: &str) {
    for line in text.trim().lines() {
        let line = crate::terminal::escape(line.trim_end());
        if line.is_empty() {
            out.push_str("//\n");
        } else {
            let _ = writeln!(out, "// {line}");
        }
    }
}

/// `ty` as Cedar schema text: on one line when it fits in [`WIDTH`] from
/// column `column` (which counts the closing `,` or `;` after it), else with
/// each attribute of a record on its own line, indented from `indent`.
fn render(ty: &CedarType, indent: usize, column: usize) -> String {
    let inline = render_inline(ty);
    if column + inline.len() <= WIDTH {
        return inline;
    }
    match ty {
        CedarType::Set(item) => format!("Set<{}>", render(item, indent, column + 5)),
        CedarType::Record(attributes) if !attributes.is_empty() => {
            let pad = " ".repeat(indent + 2);
            let mut out = String::from("{\n");
            for a in attributes {
                let head = format!("{pad}{}{}: ", identifier(&a.name), optional(a));
                let body = render(&a.ty, indent + 2, head.len() + 1);
                let _ = writeln!(out, "{head}{body},");
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
            out
        }
        _ => inline,
    }
}

fn render_inline(ty: &CedarType) -> String {
    match ty {
        CedarType::String => "String".into(),
        CedarType::Long => "Long".into(),
        CedarType::Bool => "Bool".into(),
        CedarType::Datetime => "datetime".into(),
        CedarType::Entity(name) => name.clone(),
        CedarType::Set(item) => format!("Set<{}>", render_inline(item)),
        CedarType::Record(attributes) if attributes.is_empty() => "{}".into(),
        CedarType::Record(attributes) => {
            let fields: Vec<String> = attributes
                .iter()
                .map(|a| {
                    format!(
                        "{}{}: {}",
                        identifier(&a.name),
                        optional(a),
                        render_inline(&a.ty)
                    )
                })
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

fn optional(a: &Attribute) -> &'static str {
    if a.required { "" } else { "?" }
}

/// `name` as is when it is a plain identifier, else quoted.
fn identifier(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name,
            "in" | "true" | "false" | "if" | "then" | "else" | "is" | "like" | "has"
        );
    if plain {
        name.to_string()
    } else {
        quoted(name)
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
