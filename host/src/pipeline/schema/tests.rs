//! The JSON Schema to Cedar mapping, and schemas of whole registries.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::arguments::argument_type_of;
use super::*;
use crate::pipeline::{RegistryError, Tool, ToolContext, ToolFailure, ToolSpec};
use serde_json::Value;

fn arguments_of<T: JsonSchema>() -> Result<CedarType, SchemaError> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    argument_type_of("t", &schema)
}

fn attr(name: &str, ty: CedarType, required: bool) -> Attribute {
    Attribute {
        name: name.into(),
        ty,
        required,
    }
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Priority {
    /// Whenever.
    Low,
    /// Now.
    High,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Colour {
    Red,
    Green,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Attachment {
    name: String,
    size: u32,
    inline: Option<bool>,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Email {
    to: Vec<String>,
    subject: String,
    priority: Priority,
    colour: Option<Colour>,
    attachments: Vec<Attachment>,
    reply_to: Option<Attachment>,
    #[serde(default)]
    draft: bool,
}

#[test]
fn nested_records_sets_enums_and_optionals_map_to_cedar_types() {
    let attachment = CedarType::Record(vec![
        attr("inline", CedarType::Bool, false),
        attr("name", CedarType::String, true),
        attr("size", CedarType::Long, true),
    ]);
    assert_eq!(
        arguments_of::<Email>().unwrap(),
        CedarType::Record(vec![
            attr("attachments", CedarType::set(attachment.clone()), true),
            attr("colour", CedarType::String, false),
            attr("draft", CedarType::Bool, false),
            attr("priority", CedarType::String, true),
            attr("reply_to", attachment, false),
            attr("subject", CedarType::String, true),
            attr("to", CedarType::set(CedarType::String), true),
        ])
    );
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Measure {
    label: String,
    readings: Vec<Reading>,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Reading {
    at: i64,
    value: f64,
}

#[test]
fn a_float_is_refused_with_its_path() {
    let err = arguments_of::<Measure>().unwrap_err();
    assert_eq!(
        err,
        SchemaError::Argument {
            tool: "t".into(),
            path: "arguments.readings[].value".into(),
            why: Unrepresentable::Fractional,
        }
    );
    assert_eq!(
        err.to_string(),
        "tool `t`: `arguments.readings[].value` is a fractional number, which cedar cannot hold; use an integer or a string"
    );
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WithMap {
    labels: HashMap<String, String>,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WithTuple {
    pair: (String, i32),
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WithAny {
    extra: serde_json::Value,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Node {
    children: Vec<Node>,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WithNullableItems {
    cc: Vec<Option<String>>,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
enum Shape {
    Circle { radius: i64 },
    Label(String),
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WithShape {
    shape: Shape,
}

fn why<T: JsonSchema>() -> (String, Unrepresentable) {
    match arguments_of::<T>() {
        Err(SchemaError::Argument { path, why, .. }) => (path, why),
        other => panic!("expected an argument error, got {other:?}"),
    }
}

#[test]
fn values_without_an_exact_cedar_type_are_refused_with_their_path() {
    assert_eq!(
        why::<WithMap>(),
        ("arguments.labels".into(), Unrepresentable::Map)
    );
    assert_eq!(
        why::<WithTuple>(),
        ("arguments.pair".into(), Unrepresentable::Tuple)
    );
    assert_eq!(
        why::<WithAny>(),
        ("arguments.extra".into(), Unrepresentable::Untyped)
    );
    assert_eq!(
        why::<Node>(),
        (
            "arguments.children[]".into(),
            Unrepresentable::Recursive("Node".into())
        )
    );
    assert_eq!(
        why::<WithNullableItems>(),
        ("arguments.cc[]".into(), Unrepresentable::Null)
    );
    let (path, shape) = why::<WithShape>();
    assert_eq!(path, "arguments.shape");
    assert!(matches!(shape, Unrepresentable::Union(_)), "{shape:?}");
}

#[test]
fn refs_resolve_and_type_lists_with_null_are_optional() {
    let schema = json!({
        "type": "object",
        "properties": {
            "who": { "$ref": "#/$defs/Who" },
            "note": { "type": ["string", "null"] },
            "tag": { "enum": ["a", "b", null] },
        },
        "required": ["who", "note", "tag"],
        "additionalProperties": false,
        "$defs": { "Who": {
            "type": "object",
            "properties": { "id": { "type": "string" } },
            "required": ["id"],
            "additionalProperties": false,
        } },
    });
    assert_eq!(
        argument_type_of("t", &schema).unwrap(),
        CedarType::Record(vec![
            attr("note", CedarType::String, false),
            attr("tag", CedarType::String, false),
            attr(
                "who",
                CedarType::Record(vec![attr("id", CedarType::String, true)]),
                true
            ),
        ])
    );
    let missing = json!({
        "type": "object",
        "properties": { "x": { "$ref": "#/$defs/X" } },
        "additionalProperties": false,
    });
    assert_eq!(
        argument_type_of("t", &missing).unwrap_err().to_string(),
        "tool `t`: `arguments.x` refers to `#/$defs/X`, which the argument schema does not define"
    );
}

#[test]
fn long_records_break_one_attribute_per_line() {
    let record = CedarType::Record(
        (0..8)
            .map(|i| attr(&format!("field_number_{i}"), CedarType::String, i % 2 == 0))
            .collect(),
    );
    let text = render(&record, 4, 16);
    assert!(
        text.starts_with("{\n      field_number_0: String,\n      field_number_1?: String,\n"),
        "{text}"
    );
    assert!(text.ends_with(",\n    }"), "{text}");
    assert_eq!(identifier("has"), "\"has\"");
    assert_eq!(identifier("x-y"), "\"x-y\"");
    assert_eq!(identifier("document_id"), "document_id");
}

struct Echo(&'static str, ResourceBinding);

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    item_id: String,
    count: Option<u8>,
    r#type: Vec<String>,
}

impl Tool for Echo {
    type Args = EchoArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.0.into(),
            description: "Echoes.\nTwice.".into(),
            scope: "items:echo".into(),
            resource: self.1.clone(),
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _: ToolContext, _: EchoArgs) -> Result<Value, ToolFailure> {
        Ok(Value::Null)
    }
}

fn item_binding() -> ResourceBinding {
    ResourceBinding::Argument {
        entity_type: "Item".into(),
        argument: "item_id".into(),
    }
}

#[test]
fn a_registry_with_declared_resource_types_makes_a_valid_schema() {
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(
            EntityTypeDecl::new("Item")
                .doc("An item.")
                .member_of("Group")
                .attribute("owner", CedarType::entity("User"))
                .optional_attribute("tags", CedarType::set(CedarType::String)),
        )
        .unwrap()
        .register(Echo("echo", item_binding()))
        .unwrap();
    let text = tools.cedar_schema().unwrap();
    assert!(
        text.contains(
            "// An item.\nentity Item in [Group] = { owner: User, tags?: Set<String> };\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "// Echoes.\n// Twice.\n// Resource: the `Item` whose id is `context.arguments.item_id`.\naction echo in [\"items:echo\"] appliesTo {\n  principal: [Agent],\n  resource: [Item],\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("    arguments: { count?: Long, item_id: String, type: Set<String> },\n"),
        "{text}"
    );
    assert_eq!(tools.cedar_schema().unwrap(), text, "deterministic");
}

#[test]
fn a_resource_type_must_be_declared_and_named_by_a_required_string() {
    let mut tools = ToolRegistry::new();
    tools.register(Echo("echo", item_binding())).unwrap();
    assert_eq!(
        tools.cedar_schema().unwrap_err(),
        SchemaError::UndeclaredResource {
            tool: "echo".into(),
            entity_type: "Item".into()
        }
    );
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(EntityTypeDecl::new("Item"))
        .unwrap()
        .register(Echo(
            "echo",
            ResourceBinding::Argument {
                entity_type: "Item".into(),
                argument: "count".into(),
            },
        ))
        .unwrap();
    assert!(matches!(
        tools.cedar_schema().unwrap_err(),
        SchemaError::ResourceArgument { .. }
    ));
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(
            EntityTypeDecl::new("Item").attribute("folder", CedarType::entity("Folder")),
        )
        .unwrap();
    assert_eq!(
        tools.cedar_schema().unwrap_err().to_string(),
        "entity type `Item` refers to `Folder`, which is not declared"
    );
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

struct Ping;

impl Tool for Ping {
    type Args = NoArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "ping".into(),
            description: String::new(),
            scope: "health:check".into(),
            resource: ResourceBinding::Tool,
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _: ToolContext, _: NoArgs) -> Result<Value, ToolFailure> {
        Ok(Value::Null)
    }
}

#[test]
fn a_tool_without_arguments_gets_an_empty_record() {
    let mut tools = ToolRegistry::new();
    tools.register(Ping).unwrap();
    let text = tools.cedar_schema().unwrap();
    assert!(
        text.contains(
            "// Resource: `Tool::\"ping\"`.\naction ping in [\"health:check\"] appliesTo {"
        ),
        "{text}"
    );
    assert!(text.contains("    arguments: {},\n"), "{text}");
}

#[test]
fn entity_types_are_declared_once_with_plain_names_that_are_not_built_in() {
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(EntityTypeDecl::new("Item"))
        .unwrap();
    let err = |decl| ToolRegistry::new().declare_entity_type(decl).err();
    assert!(matches!(
        tools.declare_entity_type(EntityTypeDecl::new("Item")),
        Err(RegistryError::DuplicateEntityType(_))
    ));
    assert!(matches!(
        err(EntityTypeDecl::new("User")),
        Some(RegistryError::BuiltInEntityType(_))
    ));
    for bad in ["Acme::Item", "", "9lives", "has space"] {
        assert!(
            matches!(
                err(EntityTypeDecl::new(bad)),
                Some(RegistryError::BadEntityTypeName(_))
            ),
            "{bad}"
        );
    }
}

/// Arguments that accept fields they do not declare, at the top and nested.
#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
struct OpenArgs {
    to: String,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NestedOpenArgs {
    to: String,
    attachment: OpenAttachment,
}

#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
struct OpenAttachment {
    name: String,
}

struct Open<A>(std::marker::PhantomData<A>);

impl<A: serde::de::DeserializeOwned + JsonSchema + Send + Sync + 'static> Tool for Open<A> {
    type Args = A;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "open_tool".into(),
            description: String::new(),
            scope: "items:echo".into(),
            resource: ResourceBinding::Tool,
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _: ToolContext, _: A) -> Result<Value, ToolFailure> {
        Ok(Value::Null)
    }
}

#[test]
fn an_argument_struct_that_accepts_unknown_fields_is_refused_at_registration() {
    for (err, path) in [
        (
            ToolRegistry::new()
                .register(Open::<OpenArgs>(std::marker::PhantomData))
                .err(),
            "`arguments`",
        ),
        (
            ToolRegistry::new()
                .register(Open::<NestedOpenArgs>(std::marker::PhantomData))
                .err(),
            "`arguments.attachment`",
        ),
        (
            ToolRegistry::new()
                .register(Open::<Value>(std::marker::PhantomData))
                .err(),
            "`arguments`",
        ),
    ] {
        let Some(err) = err else {
            panic!("an open argument struct was registered")
        };
        let text = err.to_string();
        assert!(text.starts_with("tool `open_tool`: "), "{text}");
        assert!(text.contains(path), "{text}");
    }
    let text = ToolRegistry::new()
        .register(Open::<OpenArgs>(std::marker::PhantomData))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("deny_unknown_fields"), "{text}");
}

/// A server's schema, as MCP servers write them: open objects, `number`,
/// an optional field that may be null.
#[test]
fn a_declared_schema_is_closed_by_the_guard_and_its_numbers_are_longs() {
    use super::arguments::{Reading, argument_type_read};
    let schema = json!({
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "where"},
            "head": {"type": "number"},
            "mode": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
        },
        "required": ["path"],
    });
    assert_eq!(
        render_inline(&argument_type_read("t", &schema, Reading::Declared).unwrap()),
        "{ head?: Long, mode?: String, path: String }"
    );
    // Read as a Rust type's schema, the same object is refused as open.
    let exact = argument_type_read("t", &schema, Reading::Exact)
        .unwrap_err()
        .to_string();
    assert!(
        exact.contains("accepts fields it does not declare"),
        "{exact}"
    );
}

/// A server writes tool descriptions; one that tries to end its comment
/// line (a lone carriage return, a Unicode line separator) to declare schema
/// of its own stays inside the comment.
#[test]
fn a_description_cannot_break_out_of_its_comment() {
    use crate::pipeline::{BoxFuture, DynamicSpec, DynamicTool, ResourceBinding};

    struct Nothing;
    impl DynamicTool for Nothing {
        fn run(&self, _: ToolContext, _: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }
    let mut tools = ToolRegistry::new();
    for (name, description) in [
        (
            "cr",
            "Reads.\raction evil_cr appliesTo { principal: [Agent], resource: [Tool] };",
        ),
        (
            "ls",
            "Reads.\u{2028}action evil_ls appliesTo { principal: [Agent], resource: [Tool] };",
        ),
    ] {
        tools
            .register_dynamic(
                DynamicSpec {
                    spec: ToolSpec {
                        name: name.into(),
                        description: description.into(),
                        scope: "s".into(),
                        resource: ResourceBinding::Tool,
                        sensitive: Vec::new(),
                    },
                    input_schema: json!({"type": "object"}),
                    groups: Vec::new(),
                    timeout: None,
                },
                Nothing,
            )
            .unwrap();
    }
    let schema = tools.cedar_schema().unwrap();
    let parsed = cedar_policy::Schema::from_cedarschema_str(&schema)
        .unwrap()
        .0;
    let actions: Vec<String> = parsed
        .actions()
        .map(|a| a.id().escaped().to_string())
        .collect();
    assert!(
        !actions.iter().any(|a| a.contains("evil")),
        "{actions:?}\n{schema}"
    );
    assert!(schema.contains("// Reads.\\raction evil_cr"), "{schema}");
}
