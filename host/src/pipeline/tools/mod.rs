//! The tool registry: native Rust tools, each declaring what Cedar needs to
//! decide about it. Everything per tool (schema, entity ids) is computed at
//! registration, not per call.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::redact::SensitivePaths;
use super::schema::{self, CedarType, EntityTypeDecl, Reading, SchemaError};

mod check;
mod http_action;

pub use http_action::{Door, HOST_ENTITY, HTTP_ACTION, HTTP_SCOPE, HttpRequestArgs};

/// How long a tool may run when its registration sets no timeout. A tool
/// that takes longer fails (`tool-failed`) and the outcome says so.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// A boxed future, as returned by object-safe async traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a tool acts on, as a Cedar resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceBinding {
    /// The tool entity itself, `Tool::"<name>"`: for tools with no natural resource.
    Tool,
    /// An entity whose id is a string argument, e.g. `Document` from `document_id`.
    Argument {
        /// The Cedar entity type, e.g. `Document`.
        entity_type: String,
        /// The top-level argument holding the entity id.
        argument: String,
    },
}

/// How a tool presents itself to policies, agents and records.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Name the agent calls it by, and its Cedar action id.
    pub name: String,
    /// What it does, for the agent.
    pub description: String,
    /// The scope (Cedar action group) it belongs to, e.g. `documents:read`.
    pub scope: String,
    /// What it acts on.
    pub resource: ResourceBinding,
    /// Paths into the arguments whose values are never written in clear to
    /// the log or shown to reviewers: each is replaced by a salted SHA-256
    /// commitment (see [`SensitivePaths`]). `body` is a field, `meta.token`
    /// a nested field, `recipients[]` every item of an array and
    /// `attachments[].content` a field of every item. Checked at
    /// registration.
    pub sensitive: Vec<String>,
}

/// What a running tool knows about the call it serves.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The session.
    pub session_id: String,
    /// The call, as in the audit records.
    pub call_id: String,
    /// The user the agent acts for.
    pub user_id: String,
    /// Sequence number of the call's decision record, already durable.
    pub decision_seq: u64,
    /// The audit log the decision was written to.
    pub audit_path: PathBuf,
}

/// A tool that ran and failed; the message goes back to the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolFailure(pub String);

/// A native tool. Its arguments are a typed struct: the JSON Schema shown to
/// agents is derived from it, and parsing it is the argument check.
pub trait Tool: Send + Sync + 'static {
    /// The arguments: a struct with `#[serde(deny_unknown_fields)]`, as
    /// are the structs inside it. An argument type that accepts fields it
    /// does not declare is refused at registration.
    type Args: DeserializeOwned + JsonSchema + Send + 'static;

    /// The tool's declaration.
    fn spec(&self) -> ToolSpec;

    /// Runs the tool. Called only after the decision record is durable.
    fn run(
        &self,
        ctx: ToolContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Value, ToolFailure>> + Send;
}

/// A tool whose arguments are described by a JSON Schema known only when
/// the host starts (an MCP server's tool, a program): the arguments it runs
/// with have passed the check against the Cedar type derived from that
/// schema.
pub trait DynamicTool: Send + Sync + 'static {
    /// Runs the tool. Called only after the decision record is durable.
    fn run(&self, ctx: ToolContext, args: Value) -> BoxFuture<'_, Result<Value, ToolFailure>>;
}

impl DynamicTool for Box<dyn DynamicTool> {
    fn run(&self, ctx: ToolContext, args: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
        (**self).run(ctx, args)
    }
}

/// How a [`DynamicTool`] is registered.
#[derive(Debug, Clone)]
pub struct DynamicSpec {
    /// Name, description, scope, resource and sensitive paths.
    pub spec: ToolSpec,
    /// The JSON Schema of its arguments. Objects in it are closed by the
    /// guard (an agent may send only the fields it declares) and a
    /// `number` is a Cedar `Long`.
    pub input_schema: Value,
    /// Action groups its action belongs to besides its scope, e.g.
    /// `mcp:read_only` for an MCP tool that says it only reads.
    pub groups: Vec<String>,
    /// How long a call may run; [`DEFAULT_TOOL_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
}

/// Why a call's arguments do not fit its tool: which field, and what is
/// wrong with it. The text is what the agent and the decision record are
/// told, after `invalid arguments: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentsError {
    /// The argument the tool's resource comes from is absent.
    #[error("missing field `{argument}`")]
    MissingResource {
        /// The top-level argument, e.g. `document_id`.
        argument: String,
    },
    /// The argument the tool's resource comes from is not a non-empty
    /// string.
    #[error("`{argument}` must be a non-empty string")]
    ResourceNotString {
        /// The top-level argument, e.g. `document_id`.
        argument: String,
    },
    /// The tool's argument type refused them: a missing or unknown field, a
    /// wrong type, a value the type's own checks reject.
    #[error("{}", located(.at.as_deref(), .message))]
    Mismatch {
        /// The field at fault, as a path into the arguments (`to`,
        /// `attachments[2].name`), when one is.
        field: Option<String>,
        /// Where the type stopped, when `message` does not already name it:
        /// the text says `field `<at>`: <message>`.
        at: Option<String>,
        /// What serde says is wrong (for a tool with sensitive arguments,
        /// without the values serde quotes).
        message: String,
    },
}

impl ArgumentsError {
    /// The field at fault, as a path into the arguments such as `to` or
    /// `attachments[2].name`, when one field is.
    pub fn field(&self) -> Option<&str> {
        match self {
            ArgumentsError::MissingResource { argument }
            | ArgumentsError::ResourceNotString { argument } => Some(argument),
            ArgumentsError::Mismatch { field, .. } => field.as_deref(),
        }
    }

    /// serde's refusal of the arguments at `path` (as `serde_path_to_error`
    /// writes it: `.` for the arguments themselves, `attachments[2].name`
    /// inside them) with its `message`.
    fn mismatch(path: &str, message: String) -> Self {
        // serde names a missing or unknown field only in its message; the
        // path is that of the object it belongs to.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|m| message.strip_prefix(m))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let at_root = path == ".";
        let field = match (at_root, named) {
            (true, named) => named,
            (false, Some(name)) if message.starts_with("missing field `") => {
                Some(format!("{path}.{name}"))
            }
            (false, _) => Some(path.to_string()),
        };
        let at = (!at_root && !message.contains(&format!("`{path}`"))).then(|| path.to_string());
        ArgumentsError::Mismatch { field, at, message }
    }
}

/// `field `<at>`: <message>`, or the message alone when it names its place.
fn located(at: Option<&str>, message: &str) -> String {
    match at {
        Some(at) => format!("field `{at}`: {message}"),
        None => message.to_string(),
    }
}

/// Object-safe face of a [`Tool`].
trait ErasedTool: Send + Sync {
    fn parse(&self, args: &Value) -> Result<Box<dyn Any + Send>, ArgumentsError>;
    fn run<'a>(
        &'a self,
        ctx: ToolContext,
        args: Box<dyn Any + Send>,
    ) -> BoxFuture<'a, Result<Value, ToolFailure>>;
}

struct Erased<T>(T);

impl<T: Tool> ErasedTool for Erased<T> {
    /// The path names the field even when the error is inside its value.
    fn parse(&self, args: &Value) -> Result<Box<dyn Any + Send>, ArgumentsError> {
        serde_path_to_error::deserialize::<_, T::Args>(args)
            .map(|a| Box::new(a) as Box<dyn Any + Send>)
            .map_err(|e| {
                let path = e.path().to_string();
                ArgumentsError::mismatch(&path, e.into_inner().to_string())
            })
    }

    fn run<'a>(
        &'a self,
        ctx: ToolContext,
        args: Box<dyn Any + Send>,
    ) -> BoxFuture<'a, Result<Value, ToolFailure>> {
        match args.downcast::<T::Args>() {
            Ok(args) => Box::pin(self.0.run(ctx, *args)),
            Err(_) => Box::pin(async {
                Err(ToolFailure(
                    "internal error: arguments of another tool".into(),
                ))
            }),
        }
    }
}

/// A [`DynamicTool`] with the Cedar type its arguments are checked against.
struct Dynamic {
    argument_type: CedarType,
    tool: Box<dyn DynamicTool>,
}

impl ErasedTool for Dynamic {
    fn parse(&self, args: &Value) -> Result<Box<dyn Any + Send>, ArgumentsError> {
        check::arguments(args, &self.argument_type)?;
        Ok(Box::new(args.clone()))
    }

    fn run<'a>(
        &'a self,
        ctx: ToolContext,
        args: Box<dyn Any + Send>,
    ) -> BoxFuture<'a, Result<Value, ToolFailure>> {
        match args.downcast::<Value>() {
            Ok(args) => self.tool.run(ctx, *args),
            Err(_) => Box::pin(async {
                Err(ToolFailure(
                    "internal error: arguments of another tool".into(),
                ))
            }),
        }
    }
}

/// Arguments parsed by the tool's own type, ready to run.
pub struct ParsedArgs(Box<dyn Any + Send>);

/// A tool in the registry with everything prepared for the call path.
pub struct RegisteredTool {
    spec: ToolSpec,
    argument_schema: String,
    /// The Cedar type of `context.arguments`, derived from
    /// `argument_schema`.
    argument_type: CedarType,
    action: EntityUid,
    /// `action` as text, for every decision record.
    action_text: String,
    tool_entity: EntityUid,
    resource_type: Option<(EntityTypeName, String)>,
    sensitive: SensitivePaths,
    /// Action groups besides the scope.
    groups: Vec<String>,
    timeout: Duration,
    door: Door,
    inner: Box<dyn ErasedTool>,
}

impl RegisteredTool {
    /// The door the agent reaches this action through.
    pub fn door(&self) -> Door {
        self.door
    }

    /// The tool's declaration.
    pub fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    /// JSON Schema of the arguments, as text.
    pub fn argument_schema(&self) -> &str {
        &self.argument_schema
    }

    /// The Cedar type of the arguments (`context.arguments`).
    pub fn argument_type(&self) -> &CedarType {
        &self.argument_type
    }

    /// `Action::"<name>"`.
    pub fn action(&self) -> &EntityUid {
        &self.action
    }

    /// [`RegisteredTool::action`] as text.
    pub fn action_text(&self) -> &str {
        &self.action_text
    }

    /// Action groups the tool's action belongs to besides its scope.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// How long a call may run before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The sensitive paths of [`ToolSpec::sensitive`], parsed.
    pub fn sensitive_paths(&self) -> &SensitivePaths {
        &self.sensitive
    }

    /// Checks `args` against the tool's argument type.
    pub fn parse(&self, args: &Value) -> Result<ParsedArgs, ArgumentsError> {
        self.inner.parse(args).map(ParsedArgs)
    }

    /// The Cedar resource this call acts on.
    pub fn resource(&self, args: &Value) -> Result<EntityUid, ArgumentsError> {
        let Some((ty, arg)) = &self.resource_type else {
            return Ok(self.tool_entity.clone());
        };
        match args.get(arg) {
            Some(Value::String(id)) if !id.is_empty() => Ok(EntityUid::from_type_name_and_id(
                ty.clone(),
                EntityId::new(id),
            )),
            Some(_) => Err(ArgumentsError::ResourceNotString {
                argument: arg.clone(),
            }),
            None => Err(ArgumentsError::MissingResource {
                argument: arg.clone(),
            }),
        }
    }

    /// Runs the tool.
    pub async fn run(&self, ctx: ToolContext, args: ParsedArgs) -> Result<Value, ToolFailure> {
        self.inner.run(ctx, args.0).await
    }
}

/// Why a tool could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two tools with one name.
    #[error("tool `{0}` is registered twice")]
    Duplicate(String),
    /// A tool name outside the registered-name alphabet or too long.
    #[error(
        "tool name `{0}` is not allowed: use 1 to {max} ASCII letters, digits, `_`, `-` or `.`",
        max = crate::limits::TOOL_NAME_BYTES
    )]
    BadToolName(String),
    /// A name Cedar cannot use.
    #[error("tool `{name}`: `{value}` is not a valid cedar {what}")]
    BadName {
        /// The tool.
        name: String,
        /// What it declared.
        value: String,
        /// Entity type or action id.
        what: &'static str,
    },
    /// A sensitive path cannot be used.
    #[error("tool `{name}`: {error}")]
    SensitivePath {
        /// The tool.
        name: String,
        /// The path and what is wrong with it.
        error: super::redact::SensitivePathError,
    },
    /// The argument schema could not be written out.
    #[error("tool `{name}`: cannot render its argument schema: {message}")]
    Schema {
        /// The tool.
        name: String,
        /// serde's message.
        message: String,
    },
    /// The arguments have no exact Cedar type, or accept fields they do
    /// not declare.
    #[error(transparent)]
    Arguments(SchemaError),
    /// Two declarations of one entity type.
    #[error("entity type `{0}` is declared twice")]
    DuplicateEntityType(String),
    /// A declaration of a type the guard already defines.
    #[error("entity type `{0}` is built in; declare only the resource types tools act on")]
    BuiltInEntityType(String),
    /// An entity type name Cedar cannot use here.
    #[error(
        "`{0}` is not a valid entity type name; use a plain cedar identifier such as `Document`"
    )]
    BadEntityTypeName(String),
}

/// A tool checked for registration, before it is inserted.
struct Prepared {
    spec: ToolSpec,
    argument_schema: String,
    argument_type: CedarType,
    action: EntityUid,
    tool_entity: EntityUid,
    resource_type: Option<(EntityTypeName, String)>,
    sensitive: SensitivePaths,
    groups: Vec<String>,
}

/// The tools of a guard, by name, and the resource entity types they act on.
/// Every registry also holds the action of the HTTP door, [`HTTP_ACTION`].
#[derive(Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<RegisteredTool>>,
    entity_types: BTreeMap<String, EntityTypeDecl>,
}

impl Default for ToolRegistry {
    fn default() -> Self {
        let mut registry = ToolRegistry {
            tools: BTreeMap::new(),
            entity_types: BTreeMap::new(),
        };
        // A fixed struct with a fixed name: it cannot fail to register, and
        // if a change ever made it, every test building a guard would say.
        if let Ok(prepared) = registry.prepare(
            http_action::HttpAction::spec(),
            &http_action_schema(),
            Reading::Exact,
            Vec::new(),
        ) {
            let _ = registry.insert(
                prepared,
                DEFAULT_TOOL_TIMEOUT,
                Door::Http,
                Box::new(Erased(http_action::HttpAction)),
            );
        }
        registry
    }
}

/// The JSON Schema of [`HttpRequestArgs`].
fn http_action_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(HttpRequestArgs)).unwrap_or(Value::Null)
}

impl ToolRegistry {
    /// A registry with no tools yet (and the HTTP door's action).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tool`, preparing its schema and Cedar ids.
    pub fn register<T: Tool>(&mut self, tool: T) -> Result<&mut Self, RegistryError> {
        let spec = tool.spec();
        let schema = schemars::schema_for!(T::Args);
        let schema = serde_json::to_value(&schema).map_err(|e| RegistryError::Schema {
            name: spec.name.clone(),
            message: e.to_string(),
        })?;
        let prepared = self.prepare(spec, &schema, Reading::Exact, Vec::new())?;
        self.insert(
            prepared,
            DEFAULT_TOOL_TIMEOUT,
            Door::Tool,
            Box::new(Erased(tool)),
        )
    }

    /// Adds a tool whose argument schema is data (an MCP server's tool, a
    /// program), preparing its Cedar type and ids; the arguments of every
    /// call are checked against that type before policy sees them.
    pub fn register_dynamic(
        &mut self,
        dynamic: DynamicSpec,
        tool: impl DynamicTool,
    ) -> Result<&mut Self, RegistryError> {
        let DynamicSpec {
            spec,
            input_schema,
            groups,
            timeout,
        } = dynamic;
        for group in &groups {
            if group.is_empty() || group == &spec.scope {
                return Err(RegistryError::BadName {
                    name: spec.name.clone(),
                    value: group.clone(),
                    what: "action group",
                });
            }
        }
        let prepared = self.prepare(spec, &input_schema, Reading::Declared, groups)?;
        let argument_type = prepared.argument_type.clone();
        self.insert(
            prepared,
            timeout.unwrap_or(DEFAULT_TOOL_TIMEOUT),
            Door::Tool,
            Box::new(Dynamic {
                argument_type,
                tool: Box::new(tool),
            }),
        )
    }

    /// Everything a tool needs for the call path, checked: its name, Cedar
    /// ids, resource binding, sensitive paths and argument type.
    fn prepare(
        &self,
        spec: ToolSpec,
        schema: &Value,
        reading: Reading,
        groups: Vec<String>,
    ) -> Result<Prepared, RegistryError> {
        // Agents' names are checked against the same rule, so that a name
        // that is no tool's can be recorded bounded, never whole.
        if !super::bounded::is_tool_name(&spec.name) {
            return Err(RegistryError::BadToolName(
                super::bounded::tool_name(&spec.name).0,
            ));
        }
        if self.tools.contains_key(&spec.name) {
            return Err(RegistryError::Duplicate(spec.name));
        }
        let bad = |value: &str, what| RegistryError::BadName {
            name: spec.name.clone(),
            value: value.to_string(),
            what,
        };
        let action = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Action").map_err(|_| bad("Action", "entity type"))?,
            EntityId::new(&spec.name),
        );
        let tool_entity = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Tool").map_err(|_| bad("Tool", "entity type"))?,
            EntityId::new(&spec.name),
        );
        let resource_type = match &spec.resource {
            ResourceBinding::Tool => None,
            ResourceBinding::Argument {
                entity_type,
                argument,
            } => Some((
                EntityTypeName::from_str(entity_type)
                    .map_err(|_| bad(entity_type, "entity type"))?,
                argument.clone(),
            )),
        };
        let sensitive = SensitivePaths::parse(&spec.sensitive).map_err(|error| {
            RegistryError::SensitivePath {
                name: spec.name.clone(),
                error,
            }
        })?;
        let argument_schema = serde_json::to_string(schema).map_err(|e| RegistryError::Schema {
            name: spec.name.clone(),
            message: e.to_string(),
        })?;
        // Checked here, once: an open struct or a type Cedar cannot hold is
        // the tool author's mistake, refused before any agent can use it.
        let argument_type = schema::argument_type_read(&spec.name, schema, reading)
            .map_err(RegistryError::Arguments)?;
        Ok(Prepared {
            spec,
            argument_schema,
            argument_type,
            action,
            tool_entity,
            resource_type,
            sensitive,
            groups,
        })
    }

    fn insert(
        &mut self,
        prepared: Prepared,
        timeout: Duration,
        door: Door,
        inner: Box<dyn ErasedTool>,
    ) -> Result<&mut Self, RegistryError> {
        let Prepared {
            spec,
            argument_schema,
            argument_type,
            action,
            tool_entity,
            resource_type,
            sensitive,
            groups,
        } = prepared;
        self.tools.insert(
            spec.name.clone(),
            Arc::new(RegisteredTool {
                spec,
                argument_schema,
                argument_type,
                action_text: action.to_string(),
                action,
                tool_entity,
                resource_type,
                sensitive,
                groups,
                timeout,
                door,
                inner,
            }),
        );
        Ok(self)
    }

    /// Declares a resource entity type that tools act on (the entity type
    /// of a [`ResourceBinding::Argument`]), with the attributes its entities
    /// carry, for the Cedar schema written by [`ToolRegistry::cedar_schema`].
    /// Argument types are derived from the tools; resource attributes come
    /// from the application's data, so they are declared here.
    ///
    /// ```
    /// use mandate::pipeline::{CedarType, EntityTypeDecl, ToolRegistry};
    ///
    /// let mut tools = ToolRegistry::new();
    /// tools.declare_entity_type(
    ///     EntityTypeDecl::new("Document")
    ///         .attribute("owner", CedarType::entity("User"))
    ///         .attribute("title", CedarType::String),
    /// )?;
    /// assert!(tools.cedar_schema()?.contains("entity Document = { owner: User, title: String };"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn declare_entity_type(
        &mut self,
        decl: EntityTypeDecl,
    ) -> Result<&mut Self, RegistryError> {
        let name = decl.name().to_string();
        let mut chars = name.chars();
        let identifier = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier || EntityTypeName::from_str(&name).is_err() {
            return Err(RegistryError::BadEntityTypeName(name));
        }
        if EntityTypeDecl::is_built_in(&name) {
            return Err(RegistryError::BuiltInEntityType(name));
        }
        if self.entity_types.contains_key(&name) {
            return Err(RegistryError::DuplicateEntityType(name));
        }
        self.entity_types.insert(name, decl);
        Ok(self)
    }

    /// The declared resource entity types, by name.
    pub fn entity_types(&self) -> impl Iterator<Item = &EntityTypeDecl> {
        self.entity_types.values()
    }

    /// The Cedar schema (`.cedarschema` text) for these tools: each tool's
    /// action with its typed `context.arguments` in its scope group, the
    /// declared entity types, and the session, user, agent and approval
    /// types the guard puts in every request. Deterministic, so it can be
    /// checked in and compared.
    pub fn cedar_schema(&self) -> Result<String, SchemaError> {
        schema::generate(self)
    }

    /// The tool or action called `name`, through whichever door (the
    /// call path's tool door checks [`RegisteredTool::door`]).
    pub fn get(&self, name: &str) -> Option<&Arc<RegisteredTool>> {
        self.tools.get(name)
    }

    /// Every action, by name: the tools and the HTTP door's action.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<RegisteredTool>> {
        self.tools.values()
    }

    /// The tools an agent can call through `tools.call`, by name.
    pub fn callable(&self) -> impl Iterator<Item = &Arc<RegisteredTool>> {
        self.tools.values().filter(|t| t.door == Door::Tool)
    }
}

#[cfg(test)]
mod tests;
