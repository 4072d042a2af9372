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
use serde_json::Value;

use super::manifest::ServerEntry;
use crate::pipeline::{
    BoxFuture, DEFAULT_TOOL_TIMEOUT, DynamicSpec, DynamicTool, RegistryError, ResourceBinding,
    ToolContext, ToolFailure, ToolRegistry, ToolSpec,
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
        source: Box<RegistryError>,
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
        let mut builder = Builder::new(manifest)?;
        let mut servers = Vec::new();
        for (name, entry) in &manifest.servers {
            let (server, served) =
                McpServer::start(name, entry)
                    .await
                    .map_err(|source| ToolSetError::Server {
                        path: manifest.path.clone(),
                        source,
                    })?;
            builder.server(name, entry, &served, |tool| {
                Box::new(McpTool {
                    server: Arc::clone(&server),
                    tool: tool.name.clone(),
                    max_result_bytes: entry.max_result_bytes,
                })
            })?;
            servers.push(server);
        }
        builder.programs(manifest)?;
        Ok(builder.finish(servers))
    }

    /// The manifest's tools as declared, for commands that decide but never
    /// run a tool (`policy schema`, `policy test`, `policy explain`): MCP
    /// tools as the tools lock pins them, without starting or reaching any
    /// server. A manifest with servers needs its lock. Calling one of these
    /// MCP tools fails: nothing serves it here.
    pub fn declare(manifest: &Manifest) -> Result<ToolSet, ToolSetError> {
        let mut builder = Builder::new(manifest)?;
        let lock_path = ToolsLock::path_for(&manifest.path);
        let lock = match ToolsLock::load(&lock_path)? {
            Some(lock) => lock,
            None if manifest.servers.is_empty() => ToolsLock::default(),
            None => {
                return Err(ToolSetError::Unpinned {
                    manifest: manifest.path.clone(),
                    lock: lock_path,
                });
            }
        };
        for (name, entry) in &manifest.servers {
            let served: Vec<ServedTool> = lock
                .tools
                .values()
                .filter(|pin| &pin.server == name)
                .map(|pin| ServedTool {
                    name: pin.tool.clone(),
                    description: pin.description.clone(),
                    input_schema: pin.input_schema.clone(),
                    annotations: pin.annotations.clone(),
                })
                .collect();
            builder.server(name, entry, &served, |_| {
                Box::new(NotServed {
                    server: name.clone(),
                })
            })?;
        }
        builder.programs(manifest)?;
        Ok(builder.finish(Vec::new()))
    }
}

/// An MCP tool declared from the lock, with no server behind it.
struct NotServed {
    server: String,
}

impl DynamicTool for NotServed {
    fn run(&self, _: ToolContext, _: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
        let message = format!(
            "MCP server `{}`: declared from the tools lock, not served by this command",
            self.server
        );
        Box::pin(async move { Err(ToolFailure(message)) })
    }
}

/// The registry and the resolved tools of a manifest, as they are built.
struct Builder {
    path: PathBuf,
    registry: ToolRegistry,
    tools: Vec<ResolvedTool>,
    pins: BTreeMap<String, PinnedTool>,
}

impl Builder {
    /// The example tools, if served, and the declared entity types.
    fn new(manifest: &Manifest) -> Result<Builder, ToolSetError> {
        let path = manifest.path.clone();
        let mut registry = match &manifest.example_workspace {
            Some(workspace) => example_registry(&Workspace::new(workspace))
                .map_err(|e| registry_error(&path, "example_tools".into(), e))?,
            None => ToolRegistry::new(),
        };
        let tools: Vec<ResolvedTool> = registry
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
                .map_err(|e| registry_error(&path, field, e))?;
        }
        Ok(Builder {
            path,
            registry,
            tools,
            pins: BTreeMap::new(),
        })
    }

    /// Registers what the manifest serves of `served`, the tools server
    /// `name` describes, each run by what `runner` makes for it.
    fn server(
        &mut self,
        name: &str,
        entry: &ServerEntry,
        served: &[ServedTool],
        runner: impl Fn(&ServedTool) -> Box<dyn DynamicTool>,
    ) -> Result<(), ToolSetError> {
        let available = || {
            let names: Vec<String> = served.iter().map(|t| format!("`{}`", t.name)).collect();
            names.join(", ")
        };
        let named = entry.include.iter().flatten().chain(entry.tools.keys());
        for wanted in named {
            if !served.iter().any(|t| &t.name == wanted) {
                return Err(ToolSetError::NoSuchTool {
                    path: self.path.clone(),
                    server: name.to_string(),
                    tool: wanted.clone(),
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
            self.registry
                .register_dynamic(spec, runner(tool))
                .map_err(|e| {
                    registry_error(&self.path, format!("servers.{name}.tools.{}", tool.name), e)
                })?;
            self.pins
                .insert(tool_name.clone(), PinnedTool::of(name, tool));
            self.tools.push(ResolvedTool {
                name: tool_name,
                source: ToolSource::Mcp {
                    server: name.to_string(),
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
        Ok(())
    }

    /// Registers the manifest's programs.
    fn programs(&mut self, manifest: &Manifest) -> Result<(), ToolSetError> {
        for (name, entry) in &manifest.programs {
            let digest = ServedTool {
                name: name.clone(),
                description: entry.description.clone(),
                input_schema: entry.input_schema.clone(),
                annotations: Value::Null,
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
            self.registry
                .register_dynamic(spec, program)
                .map_err(|e| registry_error(&self.path, format!("programs.{name}"), e))?;
            self.tools.push(ResolvedTool {
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
        Ok(())
    }

    fn finish(mut self, servers: Vec<Arc<McpServer>>) -> ToolSet {
        self.tools.sort_by(|a, b| a.name.cmp(&b.name));
        ToolSet {
            registry: self.registry,
            tools: self.tools,
            servers,
            pins: self.pins,
        }
    }
}

fn registry_error(path: &std::path::Path, field: String, source: RegistryError) -> ToolSetError {
    ToolSetError::Registry {
        path: path.to_path_buf(),
        field,
        source: Box::new(source),
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
fn serves(entry: &ServerEntry, tool: &ServedTool) -> bool {
    let included = entry
        .include
        .as_ref()
        .is_none_or(|names| names.contains(&tool.name));
    included && !entry.exclude.contains(&tool.name)
}
