//! The tool manifest: one TOML file declaring every tool a host serves (the
//! built-in example tools, MCP servers, programs), read by every command
//! that needs tools so that `run`, `policy schema`, `policy explain` and
//! `policy test` describe the same tools.
//!
//! ```toml
//! [example_tools]
//! workspace = "workspace"            # read_document, write_summary, send_email
//!
//! [entity_types.File]
//! doc = "A file the filesystem server serves."
//!
//! [servers.files]                    # an MCP server over stdio
//! command = "npx"
//! args = ["mcp-server-filesystem", "/srv/shared"]
//! env = ["NPM_CONFIG_CACHE"]         # passed on besides PATH, HOME, LANG, LC_ALL, TZ, TMPDIR
//! scope = "files:read"               # every tool's scope unless the tool says otherwise
//! include = ["read_text_file", "write_file"]
//! prefix = "files."                  # files.read_text_file, files.write_file
//! timeout = "30s"
//!
//! [servers.search]                  # an MCP server over Streamable HTTP
//! url = "https://mcp.example.com/mcp"
//! credential = { env = "SEARCH_TOKEN" }   # sent as a bearer token; never shown to agents
//! scope = "web:search"
//!
//! [servers.files.tools.write_file]
//! scope = "files:write"
//! resource = { entity_type = "File", argument = "path" }
//! sensitive = ["content"]
//!
//! [programs.word_count]              # a program: JSON in on stdin, JSON out on stdout
//! command = "bin/word-count"
//! description = "Counts the words of a text."
//! scope = "text:read"
//! input_schema = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }
//!
//! [egress]                           # the agent's own HTTP requests (wasi:http)
//! max_response_bytes = 4194304       # limits: see `crate::limits::HttpLimits`
//! total_timeout = "60s"
//!
//! [egress.destinations.model]        # the host adds the key; the agent never sees it
//! host = "api.openai.com"
//! credential = { env = "OPENAI_API_KEY" }   # sent as `Authorization: Bearer <key>`
//!
//! [egress.destinations.local-model]
//! host = "127.0.0.1"
//! allow_private = true               # loopback, private and link-local are refused otherwise
//! ```
//!
//! Relative paths (a command with a `/`, the workspace) are the manifest's
//! directory's. Nothing here starts a process: [`Manifest::load`] reads and
//! checks the file; starting servers is [`super::ToolSet::start`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::egress::{Destination, DestinationCredential, Egress, EgressError};
use crate::limits::HttpLimits;
use crate::pipeline::{CedarType, EntityTypeDecl, ResourceBinding};

/// Largest result an MCP tool or a program may return unless its entry says
/// otherwise: a bigger one fails the call instead of reaching the agent.
pub const DEFAULT_RESULT_BYTES: usize = 1024 * 1024;

/// Variables every server and program gets from the host's environment,
/// besides those its entry names: never the host's credentials.
pub const BASE_ENV: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Why a manifest cannot be used. Each names the file, and the line or the
/// field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read the tool manifest `{path}`: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the manifest's shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// A field has a value the manifest cannot use.
    #[error("{path}: `{field}`: {message}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The field, as a TOML path (`servers.files.timeout`).
        field: String,
        /// What is wrong, with a hint where one helps.
        message: String,
    },
}

/// Gives `command` only [`BASE_ENV`] and the variables `extra` names from the
/// host's environment: a server or program never inherits the host's
/// credentials.
pub(crate) fn minimal_environment(command: &mut tokio::process::Command, extra: &[String]) {
    command.env_clear();
    for variable in BASE_ENV
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(variable) {
            command.env(variable, value);
        }
    }
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// The built-in example tools' workspace, when they are served.
    pub example_workspace: Option<PathBuf>,
    /// Resource entity types tools act on, besides the example tools' own.
    pub entity_types: Vec<EntityTypeDecl>,
    /// MCP servers, by name.
    pub servers: BTreeMap<String, ServerEntry>,
    /// Programs, by tool name.
    pub programs: BTreeMap<String, ProgramEntry>,
    /// Where the agent's HTTP requests may go with a key or to a private
    /// address, and their limits.
    pub egress: EgressEntry,
}

/// The manifest's `[egress]` table.
#[derive(Debug, Clone, Default)]
pub struct EgressEntry {
    /// The destinations, in name order.
    pub destinations: Vec<Destination>,
    /// The limits of each request and session.
    pub limits: HttpLimits,
}

impl EgressEntry {
    /// Reads the destinations' keys and builds the HTTP door.
    pub fn build(&self) -> Result<Egress, EgressError> {
        Egress::new(self.destinations.clone(), self.limits.clone())
    }
}

/// How the host reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerTransport {
    /// A process the host starts, speaking MCP on its stdin and stdout.
    Stdio {
        /// The program to start, resolved (a path with a `/` is the
        /// manifest directory's; a bare name is looked up on `PATH`).
        command: PathBuf,
        /// Its arguments, as given.
        args: Vec<String>,
        /// Host variables passed on besides [`BASE_ENV`].
        env: Vec<String>,
        /// The directory it runs in: the manifest's.
        dir: PathBuf,
    },
    /// A server at a URL, over MCP's Streamable HTTP.
    Http {
        /// Its endpoint, e.g. `https://mcp.example.com/mcp`.
        url: String,
        /// Where the host reads the bearer token it sends, if any.
        credential: Option<Credential>,
    },
}

/// Where the host reads a secret it sends: never written into the manifest,
/// never shown to an agent, never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A variable of the host's environment.
    Env(String),
    /// A file (the manifest directory's when relative) only its owner may
    /// write; its content, trimmed, is the token.
    File(PathBuf),
}

impl Credential {
    /// The token. A file must be its owner's alone to write; the error
    /// never quotes the token.
    pub(crate) fn read(&self) -> Result<String, String> {
        let token = match self {
            Credential::Env(variable) => std::env::var(variable).map_err(|_| {
                format!("its credential variable `{variable}` is not set in the host's environment")
            })?,
            Credential::File(path) => {
                super::lock::check_owned(path)
                    .map_err(|why| format!("its credential file `{}` {why}", path.display()))?;
                std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read its credential file `{}`: {e}", path.display())
                })?
            }
        };
        let token = token.trim();
        if token.is_empty() {
            return Err("its credential is empty".to_string());
        }
        Ok(token.to_string())
    }
}

/// An MCP server.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    /// How it is reached.
    pub transport: ServerTransport,
    /// Scope of its tools unless an override says otherwise.
    pub scope: String,
    /// Only these of its tools are served, when given.
    pub include: Option<Vec<String>>,
    /// These of its tools are never served.
    pub exclude: Vec<String>,
    /// Put before each tool's name (`files.` makes `files.read_text_file`).
    pub prefix: String,
    /// How long one call may take.
    pub timeout: Option<Duration>,
    /// Largest result, in bytes (as JSON).
    pub max_result_bytes: usize,
    /// Per-tool settings, by the server's name for the tool.
    pub tools: BTreeMap<String, ToolOverride>,
}

/// What the manifest says of one of a server's tools.
#[derive(Debug, Clone, Default)]
pub struct ToolOverride {
    /// The name agents and policies use instead of prefix + the server's.
    pub name: Option<String>,
    /// Its scope instead of the server's.
    pub scope: Option<String>,
    /// What it acts on (default: the tool itself).
    pub resource: Option<ResourceBinding>,
    /// Argument paths recorded only as salted commitments.
    pub sensitive: Vec<String>,
    /// Its timeout instead of the server's.
    pub timeout: Option<Duration>,
}

/// A program run once per call.
#[derive(Debug, Clone)]
pub struct ProgramEntry {
    /// The program, resolved as for servers.
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Host variables passed on besides [`BASE_ENV`].
    pub env: Vec<String>,
    /// The directory it runs in: the manifest's.
    pub dir: PathBuf,
    /// What it does, for agents and the schema.
    pub description: String,
    /// Its scope.
    pub scope: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// What it acts on.
    pub resource: ResourceBinding,
    /// Argument paths recorded only as salted commitments.
    pub sensitive: Vec<String>,
    /// How long one run may take.
    pub timeout: Option<Duration>,
    /// Largest output, in bytes.
    pub max_output_bytes: usize,
}

// --- The file's shape --------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    example_tools: Option<ExampleToolsFile>,
    #[serde(default)]
    entity_types: BTreeMap<String, EntityTypeFile>,
    #[serde(default)]
    servers: BTreeMap<String, ServerFile>,
    #[serde(default)]
    programs: BTreeMap<String, ProgramFile>,
    egress: Option<EgressFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressFile {
    max_request_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
    first_byte_timeout: Option<String>,
    total_timeout: Option<String>,
    concurrent_requests: Option<usize>,
    requests_per_session: Option<u64>,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFile {
    host: String,
    credential: Option<CredentialFile>,
    credential_header: Option<String>,
    #[serde(default)]
    allow_private: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleToolsFile {
    workspace: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityTypeFile {
    doc: Option<String>,
    #[serde(default)]
    member_of: Vec<String>,
    /// Attribute name to type (`String`, `Long`, `Bool`, `datetime`,
    /// `Set<T>`, or an entity type such as `User`); a trailing `?` makes it
    /// optional.
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    command: Option<String>,
    url: Option<String>,
    credential: Option<CredentialFile>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    scope: String,
    include: Option<Vec<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    prefix: String,
    timeout: Option<String>,
    max_result_bytes: Option<usize>,
    #[serde(default)]
    tools: BTreeMap<String, ToolFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialFile {
    env: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolFile {
    name: Option<String>,
    scope: Option<String>,
    resource: Option<ResourceFile>,
    #[serde(default)]
    sensitive: Vec<String>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceFile {
    entity_type: String,
    argument: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramFile {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    description: String,
    scope: String,
    input_schema: toml::Value,
    resource: Option<ResourceFile>,
    #[serde(default)]
    sensitive: Vec<String>,
    timeout: Option<String>,
    max_output_bytes: Option<usize>,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(path, &text)
    }

    /// Checks `text`, read from `path` (relative paths in it are that
    /// file's directory's).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_and_column(text, span.start));
            ManifestError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let invalid = |field: String, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };

        let mut entity_types = Vec::new();
        for (name, entry) in file.entity_types {
            let mut decl = EntityTypeDecl::new(&name);
            if let Some(doc) = entry.doc {
                decl = decl.doc(doc);
            }
            for parent in entry.member_of {
                decl = decl.member_of(parent);
            }
            for (attribute, ty) in entry.attributes {
                let field = format!("entity_types.{name}.attributes.{attribute}");
                let (ty, required) = match ty.strip_suffix('?') {
                    Some(ty) => (ty, false),
                    None => (ty.as_str(), true),
                };
                let ty = cedar_type(ty.trim()).ok_or_else(|| {
                    invalid(
                        field,
                        format!(
                            "`{ty}` is not a type: use String, Long, Bool, datetime, Set<T> or an entity type such as User"
                        ),
                    )
                })?;
                decl = if required {
                    decl.attribute(attribute, ty)
                } else {
                    decl.optional_attribute(attribute, ty)
                };
            }
            entity_types.push(decl);
        }

        let mut servers = BTreeMap::new();
        for (name, entry) in file.servers {
            let at = |field: &str| format!("servers.{name}.{field}");
            let transport = match (entry.command, entry.url) {
                (Some(command), None) => {
                    if command.trim().is_empty() {
                        return Err(invalid(at("command"), "is empty".into()));
                    }
                    if entry.credential.is_some() {
                        return Err(invalid(
                            at("credential"),
                            "is for a server at a `url`; give a stdio server its secret through `env`".into(),
                        ));
                    }
                    ServerTransport::Stdio {
                        command: command_path(&dir, &command),
                        args: entry.args,
                        env: entry.env,
                        dir: dir.clone(),
                    }
                }
                (None, Some(url)) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return Err(invalid(
                            at("url"),
                            format!("`{url}` is not an http:// or https:// URL"),
                        ));
                    }
                    if !entry.args.is_empty() || !entry.env.is_empty() {
                        return Err(invalid(
                            at("args"),
                            "`args` and `env` are for a server the host starts (`command`), not one at a `url`".into(),
                        ));
                    }
                    let credential = entry
                        .credential
                        .map(|c| credential(c, &dir))
                        .transpose()
                        .map_err(|m| invalid(at("credential"), m))?;
                    ServerTransport::Http { url, credential }
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        at("url"),
                        "a server has a `command` (stdio) or a `url` (Streamable HTTP), not both"
                            .into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        at("command"),
                        "is missing: give a `command` to start (stdio) or the `url` of a running server".into(),
                    ));
                }
            };
            check_scope(&entry.scope).map_err(|m| invalid(at("scope"), m))?;
            let mut tools = BTreeMap::new();
            for (tool, over) in entry.tools {
                let field = |f: &str| format!("servers.{name}.tools.{tool}.{f}");
                if let Some(scope) = &over.scope {
                    check_scope(scope).map_err(|m| invalid(field("scope"), m))?;
                }
                let timeout = over
                    .timeout
                    .as_deref()
                    .map(duration)
                    .transpose()
                    .map_err(|m| invalid(field("timeout"), m))?;
                tools.insert(
                    tool.clone(),
                    ToolOverride {
                        name: over.name,
                        scope: over.scope,
                        resource: over.resource.map(resource),
                        sensitive: over.sensitive,
                        timeout,
                    },
                );
            }
            let timeout = entry
                .timeout
                .as_deref()
                .map(duration)
                .transpose()
                .map_err(|m| invalid(at("timeout"), m))?;
            servers.insert(
                name.clone(),
                ServerEntry {
                    transport,
                    scope: entry.scope,
                    include: entry.include,
                    exclude: entry.exclude,
                    prefix: entry.prefix,
                    timeout,
                    max_result_bytes: entry.max_result_bytes.unwrap_or(DEFAULT_RESULT_BYTES),
                    tools,
                },
            );
        }

        let mut programs = BTreeMap::new();
        for (name, entry) in file.programs {
            let at = |field: &str| format!("programs.{name}.{field}");
            if entry.command.trim().is_empty() {
                return Err(invalid(at("command"), "is empty".into()));
            }
            check_scope(&entry.scope).map_err(|m| invalid(at("scope"), m))?;
            let input_schema = serde_json::to_value(&entry.input_schema)
                .map_err(|e| invalid(at("input_schema"), e.to_string()))?;
            let timeout = entry
                .timeout
                .as_deref()
                .map(duration)
                .transpose()
                .map_err(|m| invalid(at("timeout"), m))?;
            programs.insert(
                name.clone(),
                ProgramEntry {
                    command: command_path(&dir, &entry.command),
                    args: entry.args,
                    env: entry.env,
                    dir: dir.clone(),
                    description: entry.description,
                    scope: entry.scope,
                    input_schema,
                    resource: entry.resource.map_or(ResourceBinding::Tool, resource),
                    sensitive: entry.sensitive,
                    timeout,
                    max_output_bytes: entry.max_output_bytes.unwrap_or(DEFAULT_RESULT_BYTES),
                },
            );
        }

        let egress = match file.egress {
            None => EgressEntry::default(),
            Some(egress) => egress_entry(egress, &dir, &invalid)?,
        };

        Ok(Manifest {
            path: path.to_path_buf(),
            example_workspace: file.example_tools.map(|e| dir.join(e.workspace)),
            entity_types,
            servers,
            programs,
            egress,
        })
    }
}

/// Where a credential is read from, as the manifest gives it.
fn credential(file: CredentialFile, dir: &Path) -> Result<Credential, String> {
    match file {
        CredentialFile {
            env: Some(variable),
            file: None,
        } => Ok(Credential::Env(variable)),
        CredentialFile {
            env: None,
            file: Some(file),
        } => Ok(Credential::File(dir.join(file))),
        _ => Err("give exactly one of `env` (a variable of the host) or `file`".into()),
    }
}

/// The `[egress]` table, checked; keys are read only when the door is built.
fn egress_entry(
    file: EgressFile,
    dir: &Path,
    invalid: &dyn Fn(String, String) -> ManifestError,
) -> Result<EgressEntry, ManifestError> {
    let at = |field: &str| format!("egress.{field}");
    let positive = |field: &str, value: Option<usize>, default: usize| match value {
        Some(0) => Err(invalid(at(field), "must be at least 1".into())),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let defaults = HttpLimits::default();
    let time = |field: &str, value: Option<String>, default: Duration| match value {
        Some(text) => duration(&text).map_err(|m| invalid(at(field), m)),
        None => Ok(default),
    };
    let limits = HttpLimits {
        request_bytes: file.max_request_bytes.unwrap_or(defaults.request_bytes),
        response_bytes: positive(
            "max_response_bytes",
            file.max_response_bytes,
            defaults.response_bytes,
        )?,
        first_byte: time(
            "first_byte_timeout",
            file.first_byte_timeout,
            defaults.first_byte,
        )?,
        total: time("total_timeout", file.total_timeout, defaults.total)?,
        concurrent: positive(
            "concurrent_requests",
            file.concurrent_requests,
            defaults.concurrent,
        )?,
        requests: match file.requests_per_session {
            Some(0) => {
                return Err(invalid(
                    at("requests_per_session"),
                    "must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => defaults.requests,
        },
    };
    let mut destinations = Vec::new();
    let mut hosts = BTreeMap::new();
    for (name, entry) in file.destinations {
        let at = |field: &str| format!("egress.destinations.{name}.{field}");
        let host = entry.host.trim().to_ascii_lowercase();
        let plain = !host.is_empty()
            && host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            });
        if !plain {
            return Err(invalid(
                at("host"),
                format!(
                    "`{}` is not a host name or address; write the host alone, as in `api.openai.com`, without scheme, port or path",
                    crate::terminal::escape(&entry.host)
                ),
            ));
        }
        if let Some(other) = hosts.insert(host.clone(), name.clone()) {
            return Err(invalid(
                at("host"),
                format!("`{host}` is also the host of destination `{other}`"),
            ));
        }
        let credential_source = entry
            .credential
            .map(|c| credential(c, dir))
            .transpose()
            .map_err(|m| invalid(at("credential"), m))?;
        let header = match entry.credential_header {
            None => http::header::AUTHORIZATION,
            Some(name) => http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                invalid(
                    at("credential_header"),
                    format!("`{}` is not a header name", crate::terminal::escape(&name)),
                )
            })?,
        };
        let credential = match credential_source {
            Some(source) => Some(DestinationCredential { header, source }),
            None if !matches!(header, ref h if h == http::header::AUTHORIZATION) => {
                return Err(invalid(
                    at("credential_header"),
                    "names where a credential goes, but the destination has no `credential`".into(),
                ));
            }
            None => None,
        };
        destinations.push(Destination {
            host,
            credential,
            allow_private: entry.allow_private,
        });
    }
    Ok(EgressEntry {
        destinations,
        limits,
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A command as written: a path with a `/` is the manifest directory's.
fn command_path(dir: &Path, command: &str) -> PathBuf {
    if command.contains('/') {
        dir.join(command.strip_prefix("./").unwrap_or(command))
    } else {
        PathBuf::from(command)
    }
}

fn resource(file: ResourceFile) -> ResourceBinding {
    ResourceBinding::Argument {
        entity_type: file.entity_type,
        argument: file.argument,
    }
}

fn check_scope(scope: &str) -> Result<(), String> {
    if scope.trim().is_empty() {
        return Err("is empty; name the scope a session needs, e.g. `files:read`".into());
    }
    Ok(())
}

/// `30s`, `1m 30s`, `500ms`: a positive duration.
fn duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. `30s`, `2m` or `500ms`"))?;
    if parsed.is_negative() || parsed.is_zero() {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Duration::try_from(parsed).map_err(|e| format!("`{text}`: {e}"))
}

/// A Cedar type as an entity type's attribute is written in the manifest.
fn cedar_type(text: &str) -> Option<CedarType> {
    match text {
        "String" => Some(CedarType::String),
        "Long" => Some(CedarType::Long),
        "Bool" => Some(CedarType::Bool),
        "datetime" => Some(CedarType::Datetime),
        _ => {
            if let Some(inner) = text.strip_prefix("Set<").and_then(|t| t.strip_suffix('>')) {
                return cedar_type(inner.trim()).map(CedarType::set);
            }
            let mut chars = text.chars();
            let identifier = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            identifier.then(|| CedarType::entity(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("conf/mandate.toml"), text)
    }

    #[test]
    fn a_full_manifest_is_read_with_paths_from_its_directory() {
        let manifest = parse(
            r#"
[example_tools]
workspace = "ws"

[entity_types.File]
doc = "a file"
attributes = { owner = "User", size = "Long?", tags = "Set<String>" }

[servers.files]
command = "bin/server"
args = ["/srv"]
scope = "files:read"
prefix = "files."
timeout = "30s"

[servers.files.tools.write_file]
scope = "files:write"
resource = { entity_type = "File", argument = "path" }
sensitive = ["content"]
timeout = "1m 30s"

[servers.web]
url = "https://mcp.example.com/mcp"
credential = { file = "secrets/web-token" }
scope = "web:read"

[programs.word_count]
command = "wc-json"
description = "Counts words."
scope = "text:read"
input_schema = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }
"#,
        )
        .unwrap();
        assert_eq!(manifest.example_workspace, Some(PathBuf::from("conf/ws")));
        let files = &manifest.servers["files"];
        assert_eq!(
            files.transport,
            ServerTransport::Stdio {
                command: PathBuf::from("conf/bin/server"),
                args: vec!["/srv".into()],
                env: Vec::new(),
                dir: PathBuf::from("conf"),
            }
        );
        assert_eq!(files.timeout, Some(Duration::from_secs(30)));
        assert_eq!(files.max_result_bytes, DEFAULT_RESULT_BYTES);
        let write = &files.tools["write_file"];
        assert_eq!(write.timeout, Some(Duration::from_secs(90)));
        assert_eq!(
            write.resource,
            Some(ResourceBinding::Argument {
                entity_type: "File".into(),
                argument: "path".into()
            })
        );
        assert_eq!(
            manifest.servers["web"].transport,
            ServerTransport::Http {
                url: "https://mcp.example.com/mcp".into(),
                credential: Some(Credential::File(PathBuf::from("conf/secrets/web-token"))),
            }
        );
        let program = &manifest.programs["word_count"];
        assert_eq!(program.command, PathBuf::from("wc-json"));
        assert_eq!(program.input_schema["required"][0], "text");
        let file = &manifest.entity_types[0];
        assert_eq!(file.name(), "File");
        assert_eq!(file.attributes().len(), 3);
    }

    #[test]
    fn errors_name_the_file_and_the_line_or_the_field() {
        let text = "[servers.files]\ncommand = \"x\"\nscope = \"s\"\ntimeout = \"soon\"\n";
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            "conf/mandate.toml: `servers.files.timeout`: `soon` is not a duration; write e.g. `30s`, `2m` or `500ms`"
        );
        let text = "[servers.files]\ncommand = \"x\"\nscope = \"s\"\ncomand = \"y\"\n";
        let error = parse(text).unwrap_err().to_string();
        assert!(
            error.starts_with("conf/mandate.toml:4:1: unknown field `comand`"),
            "{error}"
        );
        let text = "[servers.files]\ncommand = \"x\"\n";
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains("missing field `scope`"), "{error}");
        let text = "[entity_types.File]\nattributes = { owner = \"Map<String>\" }\n";
        let error = parse(text).unwrap_err().to_string();
        assert!(
            error.starts_with("conf/mandate.toml: `entity_types.File.attributes.owner`: `Map<String>` is not a type"),
            "{error}"
        );
    }

    #[test]
    fn the_egress_table_declares_destinations_keys_and_limits() {
        let manifest = parse(
            r#"
[egress]
max_response_bytes = 4096
total_timeout = "10s"

[egress.destinations.model]
host = "API.OpenAI.com"
credential = { env = "OPENAI_API_KEY" }

[egress.destinations.claude]
host = "api.anthropic.com"
credential = { file = "keys/anthropic" }
credential_header = "x-api-key"

[egress.destinations.local]
host = "127.0.0.1"
allow_private = true
"#,
        )
        .unwrap();
        let egress = &manifest.egress;
        assert_eq!(egress.limits.response_bytes, 4096);
        assert_eq!(egress.limits.total, Duration::from_secs(10));
        assert_eq!(egress.limits.concurrent, HttpLimits::default().concurrent);
        let hosts: Vec<&str> = egress
            .destinations
            .iter()
            .map(|d| d.host.as_str())
            .collect();
        // In name order; hosts are compared without case.
        assert_eq!(hosts, ["api.anthropic.com", "127.0.0.1", "api.openai.com"]);
        let claude = egress.destinations[0].credential.as_ref().unwrap();
        assert_eq!(claude.header, "x-api-key");
        assert_eq!(
            claude.source,
            Credential::File(PathBuf::from("conf/keys/anthropic"))
        );
        assert!(egress.destinations[1].allow_private);
        assert!(!egress.destinations[2].allow_private);
        assert_eq!(
            egress.destinations[2].credential.as_ref().unwrap().header,
            http::header::AUTHORIZATION
        );
    }

    #[test]
    fn egress_errors_name_the_field() {
        for (text, expected) in [
            (
                "[egress.destinations.m]\nhost = \"https://api.openai.com/v1\"\n",
                "conf/mandate.toml: `egress.destinations.m.host`: `https://api.openai.com/v1` is not a host name or address; write the host alone",
            ),
            (
                "[egress.destinations.m]\nhost = \"a.example\"\ncredential = { env = \"K\", file = \"f\" }\n",
                "conf/mandate.toml: `egress.destinations.m.credential`: give exactly one of `env`",
            ),
            (
                "[egress.destinations.m]\nhost = \"a.example\"\ncredential_header = \"x-api-key\"\n",
                "conf/mandate.toml: `egress.destinations.m.credential_header`: names where a credential goes, but the destination has no `credential`",
            ),
            (
                "[egress.destinations.a]\nhost = \"a.example\"\n[egress.destinations.b]\nhost = \"A.example\"\n",
                "conf/mandate.toml: `egress.destinations.b.host`: `a.example` is also the host of destination `a`",
            ),
            (
                "[egress]\nconcurrent_requests = 0\n",
                "conf/mandate.toml: `egress.concurrent_requests`: must be at least 1",
            ),
            (
                "[egress]\nfirst_byte_timeout = \"soon\"\n",
                "conf/mandate.toml: `egress.first_byte_timeout`: `soon` is not a duration",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
        let error = parse("[egress]\nmax_reponse_bytes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("conf/mandate.toml:2:1: unknown field `max_reponse_bytes`"),
            "{error}"
        );
    }
}
