//! `--tools <manifest>` for every command that needs tools, and
//! `mandate tools list`: the tools a manifest declares, resolved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use mandate::audit::AuditLog;
use mandate::egress::Egress;
use mandate::pipeline::{ResourceBinding, ToolRegistry};
use mandate::terminal;
use mandate::tools::{
    Manifest, ToolSet, ToolSource, ToolsLock, ToolsLockRecord, Workspace, example_registry,
};
use serde_json::json;

/// The option every command that needs tools takes.
#[derive(Args, Clone, Default)]
pub struct ToolsArg {
    /// Tool manifest (TOML) declaring the tools the host serves: the built-in example tools,
    /// MCP servers and programs. Without it, the built-in example tools are served.
    #[arg(long = "tools", value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,
}

/// Tools ready for a guard, and what keeps them served: the MCP servers and
/// the async runtime they run on.
pub struct Served {
    /// The registry.
    pub registry: ToolRegistry,
    /// The started tools of the manifest, when there is one.
    pub set: Option<ToolSet>,
    /// The manifest's HTTP door (destinations, keys, limits), when there is one.
    pub egress: Option<Egress>,
}

impl ToolsArg {
    /// The tools, started on `tokio`: the manifest's, or the example tools
    /// over `workspace`. A server that cannot start is an error here.
    pub fn serve(
        &self,
        workspace: &Path,
        tokio: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Served> {
        match &self.manifest {
            None => Ok(Served {
                registry: example_registry(&Workspace::new(workspace))
                    .context("cannot register the example tools")?,
                set: None,
                egress: None,
            }),
            Some(path) => {
                let manifest = Manifest::load(path)?;
                // Keys are read now: one that cannot be stops the run
                // before a server starts or the log is touched.
                let egress = manifest
                    .egress
                    .build()
                    .with_context(|| format!("{}: `egress`", path.display()))?;
                let set = tokio.block_on(ToolSet::start(&manifest))?;
                Ok(Served {
                    registry: set.registry.clone(),
                    set: Some(set),
                    egress: Some(egress),
                })
            }
        }
    }

    /// The tools' declarations, for commands that decide but never run a
    /// tool (schema, explain, test): MCP tools as the tools lock pins them,
    /// with no server started or reached.
    pub fn declarations(&self) -> anyhow::Result<ToolRegistry> {
        match &self.manifest {
            // The declarations do not depend on the folder the tools work in.
            None => {
                example_registry(&Workspace::new(".")).context("cannot register the example tools")
            }
            Some(path) => Ok(ToolSet::declare(&Manifest::load(path)?)?.registry),
        }
    }
}

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Show the tools a manifest serves: source, scope, resource, sensitive arguments,
    /// action groups and the digest of what each server says of its tool.
    List(ListArgs),
    /// Pin what the manifest's MCP servers say of their tools (description, argument schema,
    /// annotations) in the lock beside it (`mandate.toml` -> `mandate.lock`). Hosts refuse
    /// servers that later say something else until a change is accepted with --update.
    Lock(LockArgs),
}

#[derive(Args)]
pub struct LockArgs {
    #[command(flatten)]
    tools: ToolsArg,
    /// Accept what the servers say now in place of the pinned descriptions, after showing
    /// the differences.
    #[arg(long)]
    update: bool,
    /// Audit log directory to record the pinning or the accepted change in (a `tools_lock`
    /// record).
    #[arg(long, value_name = "DIR")]
    audit: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    tools: ToolsArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum Format {
    #[default]
    Text,
    Json,
}

pub fn run(command: ToolsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ToolsCommand::List(args) => list(args),
        ToolsCommand::Lock(args) => lock(args),
    }
}

fn lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.tools.manifest else {
        anyhow::bail!("no manifest: pass --tools <manifest>");
    };
    let lock_path = ToolsLock::path_for(path);
    let previous = ToolsLock::load(&lock_path)?;
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let manifest = Manifest::load(path)?;
    let set = tokio.block_on(ToolSet::start_unpinned(&manifest))?;
    tokio.block_on(set.shutdown());
    let current = set.lock();
    let changes = previous
        .as_ref()
        .map(|p| p.differences(&current))
        .unwrap_or_default();
    if previous.is_some() && changes.is_empty() {
        println!(
            "up to date: {} pins the {} tools the servers serve",
            lock_path.display(),
            current.tools.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Descriptions come from the servers: escaped.
    for change in &changes {
        println!("{}", terminal::escape_lines(change, ""));
    }
    if previous.is_some() && !args.update {
        anyhow::bail!(
            "the servers describe their tools differently from `{}` (above); read the changes, then accept them with --update",
            lock_path.display()
        );
    }
    // Recorded before the lock is written: a change the log cannot hold is
    // not accepted.
    if let Some(dir) = &args.audit {
        let record = ToolsLockRecord::new(path, &lock_path, &current, previous.as_ref(), &changes);
        let log = AuditLog::open(dir)
            .with_context(|| format!("cannot open the audit log `{}`", dir.display()))?;
        let appended = log.append(&record)?;
        log.shutdown()?;
        println!("recorded: record {} of {}", appended.seq, dir.display());
    }
    current.write(&lock_path)?;
    println!(
        "{}: {} tools of {} servers pinned in {}",
        if previous.is_some() {
            "accepted"
        } else {
            "pinned"
        },
        current.tools.len(),
        manifest.servers.len(),
        lock_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.tools.manifest else {
        anyhow::bail!("no manifest: pass --tools <manifest>");
    };
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let manifest = Manifest::load(path)?;
    // Listed whether or not the lock pins them: this is how an operator
    // sees what a server serves before pinning it.
    let set = tokio.block_on(ToolSet::start_unpinned(&manifest))?;
    tokio.block_on(set.shutdown());
    let tools = set.tools.clone();
    let pinned = ToolsLock::load(&ToolsLock::path_for(path))?;
    let served = set.lock();
    let pin_state = |name: &str| -> Option<&'static str> {
        let now = served.tools.get(name)?;
        Some(
            match pinned.as_ref().and_then(|lock| lock.tools.get(name)) {
                None => "not pinned",
                Some(pin) if pin.digest == now.digest => "pinned",
                Some(_) => "differs from the lock",
            },
        )
    };
    match args.format {
        Format::Json => {
            let listed: Vec<_> = tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "source": source_json(&t.source),
                        "scope": t.scope,
                        "resource": resource_text(&t.resource),
                        "sensitive": t.sensitive,
                        "groups": t.groups,
                        "timeout_ms": u64::try_from(t.timeout.as_millis()).unwrap_or(u64::MAX),
                        "digest": t.digest,
                        "lock": pin_state(&t.name),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&listed)?);
        }
        Format::Text => {
            for t in &tools {
                // Names, descriptions and digests come from servers: escaped.
                println!("{}", terminal::escape(&t.name));
                println!("  source     {}", terminal::escape(&source_text(&t.source)));
                println!("  scope      {}", terminal::escape(&t.scope));
                println!(
                    "  resource   {}",
                    terminal::escape(&resource_text(&t.resource))
                );
                if !t.sensitive.is_empty() {
                    println!("  sensitive  {}", terminal::escape(&t.sensitive.join(", ")));
                }
                if !t.groups.is_empty() {
                    println!("  groups     {}", t.groups.join(", "));
                }
                println!("  timeout    {} ms", t.timeout.as_millis());
                if let Some(digest) = &t.digest {
                    println!("  digest     {}", terminal::escape(digest));
                }
                if let Some(state) = pin_state(&t.name) {
                    println!("  lock       {state}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn source_text(source: &ToolSource) -> String {
    match source {
        ToolSource::Example => "built-in example tool".into(),
        ToolSource::Mcp { server, tool } => format!("MCP server `{server}`, tool `{tool}`"),
        ToolSource::Program { command } => format!("program `{}`", command.display()),
        _ => "other".into(),
    }
}

fn source_json(source: &ToolSource) -> serde_json::Value {
    match source {
        ToolSource::Example => json!({"kind": "example"}),
        ToolSource::Mcp { server, tool } => json!({"kind": "mcp", "server": server, "tool": tool}),
        ToolSource::Program { command } => {
            json!({"kind": "program", "command": command.display().to_string()})
        }
        _ => json!({"kind": "other"}),
    }
}

fn resource_text(resource: &ResourceBinding) -> String {
    match resource {
        ResourceBinding::Tool => "the tool itself (Tool::\"<name>\")".into(),
        ResourceBinding::Argument {
            entity_type,
            argument,
        } => format!("{entity_type} named by `{argument}`"),
    }
}
