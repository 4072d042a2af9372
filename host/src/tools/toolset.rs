//! The tools a manifest declares, started and registered: the registry a
//! guard serves, the servers behind it, and what `mandate tools list` shows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use super::documents::{Workspace, example_registry};
use super::lock::{LockError, PinnedTool, ToolsLock};
use super::manifest::{Manifest, ManifestError};
use super::mcp::{McpError, McpServer, McpTool, ServedTool};
use super::program::ProgramTool;
use crate::pipeline::{
    DEFAULT_TOOL_TIMEOUT, DynamicSpec, RegistryError, ResourceBinding, ToolRegistry, ToolSpec,
};

/// Why the declared tools cannot be served. The host does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolSetError {
    /// The manifest is unreadable or wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An MCP server did not start or list its tools.
    #[error("{path}: {source}")]
    Server {
        /// The manifest.
        path: PathBuf,
        /// What the server did.
        source: McpError,
    },
    /// `include` names a tool the server does not have.
    #[error(
        "{path}: `servers.{server}.include`: the server has no tool `{tool}`; it has {available}"
    )]
    NoSuchTool {
        /// The manifest.
        path: PathBuf,
        /// The server.
        server: String,
        /// The name in `include`.
        tool: String,
        /// What it does have.
        available: String,
    },
    /// The tools lock cannot be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The manifest has MCP servers and no lock pins their tools.
    #[error(
        "{manifest}: no tools lock `{lock}` pins what its MCP servers serve; check the tools with `mandate tools list` and pin them with `mandate tools lock`"
    )]
    Unpinned {
        /// The manifest.
        manifest: PathBuf,
        /// Where the lock would be.
        lock: PathBuf,
    },
    /// The servers describe their tools otherwise than the lock pins.
    #[error(
        "the MCP servers describe their tools differently from the tools lock `{lock}`, so they are not served:\n{}\nif the change is expected, accept it with `mandate tools lock --update`",
        differences.join("\n")
    )]
    Drift {
        /// The lock.
        lock: PathBuf,
        /// One entry per difference.
        differences: Vec<String>,
    },
    /// A tool cannot be registered as declared.
    #[error("{path}: `{field}`: {source}")]
    Registry {
        /// The manifest.
        path: PathBuf,
        /// The manifest entry it came from.
        field: String,
        /// Why.
        source: RegistryError,
    },
}

/// Where a served tool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolSource {
    /// A built-in example tool.
    Example,
    /// An MCP server's tool.
    Mcp {
        /// The server's name in the manifest.
        server: String,
        /// The server's name for the tool.
        tool: String,
    },
    /// A program.
    Program {
        /// The program.
        command: PathBuf,
    },
}

/// A served tool as `mandate tools list` shows it.
#[derive(Debug, Clone)]
pub struct ResolvedTool {
    /// The name agents and policies use.
    pub name: String,
    /// Where it comes from.
    pub source: ToolSource,
    /// The scope a session needs.
    pub scope: String,
    /// What it acts on.
    pub resource: ResourceBinding,
    /// Argument paths recorded only as commitments.
    pub sensitive: Vec<String>,
    /// Other action groups (MCP annotations).
    pub groups: Vec<String>,
    /// How long a call may take.
    pub timeout: Duration,
    /// SHA-256 of what its server says of it (MCP tools), or of its
    /// declared schema (programs).
    pub digest: Option<String>,
}

/// The started tools of a manifest.
pub struct ToolSet {
    /// The registry to give the guard.
    pub registry: ToolRegistry,
    /// Every tool, by name.
    pub tools: Vec<ResolvedTool>,
    /// The servers, kept running while the set lives.
    pub servers: Vec<Arc<McpServer>>,
    /// What each MCP tool's server says of it, by served name.
    pins: BTreeMap<String, PinnedTool>,
}

impl ToolSet {
    /// Starts every server the manifest declares, lists their tools,
    /// checks them against the tools lock beside the manifest and registers
    /// what the manifest serves. A server that cannot start, a manifest with
    /// servers and no lock, and a server whose tools differ from the lock
    /// stop everything here, before any agent runs.
    pub async fn start(manifest: &Manifest) -> Result<ToolSet, ToolSetError> {
        let set = ToolSet::start_unpinned(manifest).await?;
        let lock = ToolsLock::path_for(&manifest.path);
        let refused = match ToolsLock::load(&lock) {
            Err(e) => Some(ToolSetError::Lock(e)),
            Ok(Some(pinned)) => {
                let differences = pinned.differences(&set.lock());
                (!differences.is_empty()).then_some(ToolSetError::Drift {
                    lock: lock.clone(),
                    differences,
                })
            }
            Ok(None) if !manifest.servers.is_empty() => Some(ToolSetError::Unpinned {
                manifest: manifest.path.clone(),
                lock: lock.clone(),
            }),
            Ok(None) => None,
        };
        match refused {
            Some(error) => {
                set.shutdown().await;
                Err(error)
            }
            None => Ok(set),
        }
    }

    /// What the servers say of their tools now, as a lock.
    pub fn lock(&self) -> ToolsLock {
        ToolsLock::new(self.pins.clone())
    }

    /// [`ToolSet::start`] without the lock: for pinning the tools, and for
    /// hosts that pin them some other way.
    pub async fn start_unpinned(manifest: &Manifest) -> Result<ToolSet, ToolSetError> {
        let path = manifest.path.clone();
        let registry_error = |field: String, source| ToolSetError::Registry {
            path: path.clone(),
            field,
            source,
        };
        let mut registry = match &manifest.example_workspace {
            Some(workspace) => example_registry(&Workspace::new(workspace))
                .map_err(|e| registry_error("example_tools".into(), e))?,
            None => ToolRegistry::new(),
        };
        let mut tools: Vec<ResolvedTool> = registry
            .iter()
            .map(|tool| ResolvedTool {
                name: tool.spec().name.clone(),
                source: ToolSource::Example,
                scope: tool.spec().scope.clone(),
                resource: tool.spec().resource.clone(),
                sensitive: tool.spec().sensitive.clone(),
                groups: Vec::new(),
                timeout: tool.timeout(),
                digest: None,
            })
            .collect();
        for decl in &manifest.entity_types {
            let field = format!("entity_types.{}", decl.name());
            registry
                .declare_entity_type(decl.clone())
                .map_err(|e| registry_error(field, e))?;
        }

        let mut servers = Vec::new();
        let mut pins = BTreeMap::new();
        for (name, entry) in &manifest.servers {
            let (server, served) =
                McpServer::start(name, entry)
                    .await
                    .map_err(|source| ToolSetError::Server {
                        path: path.clone(),
                        source,
                    })?;
            let available = || {
                let names: Vec<String> = served.iter().map(|t| format!("`{}`", t.name)).collect();
                names.join(", ")
            };
            if let Some(missing) = entry
                .include
                .iter()
                .flatten()
                .find(|n| !served.iter().any(|t| &&t.name == n))
            {
                return Err(ToolSetError::NoSuchTool {
                    path: path.clone(),
                    server: name.clone(),
                    tool: missing.clone(),
                    available: available(),
                });
            }
            for over in entry.tools.keys() {
                if !served.iter().any(|t| &t.name == over) {
                    return Err(ToolSetError::NoSuchTool {
                        path: path.clone(),
                        server: name.clone(),
                        tool: over.clone(),
                        available: available(),
                    });
                }
            }
            for tool in served.iter().filter(|t| serves(entry, t)) {
                let over = entry.tools.get(&tool.name).cloned().unwrap_or_default();
                let tool_name = over
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}{}", entry.prefix, tool.name));
                let scope = over.scope.clone().unwrap_or_else(|| entry.scope.clone());
                let resource = over.resource.clone().unwrap_or(ResourceBinding::Tool);
                let timeout = over.timeout.or(entry.timeout);
                let groups = tool.groups();
                let spec = DynamicSpec {
                    spec: ToolSpec {
                        name: tool_name.clone(),
                        description: tool.description.clone(),
                        scope: scope.clone(),
                        resource: resource.clone(),
                        sensitive: over.sensitive.clone(),
                    },
                    input_schema: tool.input_schema.clone(),
                    groups: groups.clone(),
                    timeout,
                };
                let mcp = McpTool {
                    server: Arc::clone(&server),
                    tool: tool.name.clone(),
                    max_result_bytes: entry.max_result_bytes,
                };
                registry.register_dynamic(spec, mcp).map_err(|e| {
                    registry_error(format!("servers.{name}.tools.{}", tool.name), e)
                })?;
                pins.insert(tool_name.clone(), PinnedTool::of(name, tool));
                tools.push(ResolvedTool {
                    name: tool_name,
                    source: ToolSource::Mcp {
                        server: name.clone(),
                        tool: tool.name.clone(),
                    },
                    scope,
                    resource,
                    sensitive: over.sensitive,
                    groups,
                    timeout: timeout.unwrap_or(DEFAULT_TOOL_TIMEOUT),
                    digest: Some(tool.digest()),
                });
            }
            servers.push(server);
        }

        for (name, entry) in &manifest.programs {
            let digest = ServedTool {
                name: name.clone(),
                description: entry.description.clone(),
                input_schema: entry.input_schema.clone(),
                annotations: serde_json::Value::Null,
            }
            .digest();
            let spec = DynamicSpec {
                spec: ToolSpec {
                    name: name.clone(),
                    description: entry.description.clone(),
                    scope: entry.scope.clone(),
                    resource: entry.resource.clone(),
                    sensitive: entry.sensitive.clone(),
                },
                input_schema: entry.input_schema.clone(),
                groups: Vec::new(),
                timeout: entry.timeout,
            };
            let program = ProgramTool {
                name: name.clone(),
                entry: entry.clone(),
            };
            registry
                .register_dynamic(spec, program)
                .map_err(|e| registry_error(format!("programs.{name}"), e))?;
            tools.push(ResolvedTool {
                name: name.clone(),
                source: ToolSource::Program {
                    command: entry.command.clone(),
                },
                scope: entry.scope.clone(),
                resource: entry.resource.clone(),
                sensitive: entry.sensitive.clone(),
                groups: Vec::new(),
                timeout: entry.timeout.unwrap_or(DEFAULT_TOOL_TIMEOUT),
                digest: Some(digest),
            });
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ToolSet {
            registry,
            tools,
            servers,
            pins,
        })
    }
}

impl ToolSet {
    /// Stops every server; their tools fail from now on. Call it from within
    /// the async runtime the set was started on, before that runtime ends.
    pub async fn shutdown(&self) {
        for server in &self.servers {
            server.shutdown().await;
        }
    }
}

/// Whether the manifest serves the server's `tool`.
fn serves(entry: &super::manifest::ServerEntry, tool: &ServedTool) -> bool {
    let included = entry
        .include
        .as_ref()
        .is_none_or(|names| names.contains(&tool.name));
    included && !entry.exclude.contains(&tool.name)
}
