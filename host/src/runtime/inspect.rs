//! What a component imports and exports, and whether Mandate will run it:
//! the checks [`Runtime::load_agent`] makes, as a report `mandate inspect`
//! prints.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings::AgentPre;
use super::lockdown::{self, Verdict};
use super::{ComponentNeeds, Runtime, RuntimeError, SessionState};

/// The signature the `agent` world asks `run` to have.
const RUN_SIGNATURE: &str = "`run: func(task: string) -> result<string, string>`";

/// A component's imports and exports and whether Mandate will run it, from
/// [`Runtime::inspect`].
///
/// `Display` gives the text `mandate inspect` prints; serializing gives its
/// `--format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    path: PathBuf,
    digest: String,
    runnable: bool,
    needs: ComponentNeeds,
    imports: Vec<ImportReport>,
    exports: Vec<ExportReport>,
    problems: Vec<String>,
}

/// One import and whether the host links it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Its full name, e.g. `wasi:cli/stdout@0.2.6`.
    pub name: String,
    /// `instance` for an interface; `func`, `type`, ... for a bare item.
    pub kind: &'static str,
    /// Whether the host links it.
    pub allowed: bool,
    /// What it grants if allowed, why it is refused if not.
    pub reason: String,
}

/// One export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Its name, e.g. `run`.
    pub name: String,
    /// `func`, `instance`, ...
    pub kind: &'static str,
}

impl Inspection {
    /// Where the component was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the component (hex), as written in its sessions' records.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether [`Runtime::load_agent`] accepts it.
    pub fn runnable(&self) -> bool {
        self.runnable
    }

    /// What each session of it takes from the instance pool.
    pub fn needs(&self) -> ComponentNeeds {
        self.needs
    }

    /// Every import, in the component's order.
    pub fn imports(&self) -> &[ImportReport] {
        &self.imports
    }

    /// The imports the host refuses to link.
    pub fn refused_imports(&self) -> impl Iterator<Item = &ImportReport> {
        self.imports.iter().filter(|i| !i.allowed)
    }

    /// Every export, in the component's order.
    pub fn exports(&self) -> &[ExportReport] {
        &self.exports
    }

    /// Why Mandate will not run it; empty when it will.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "component  {}", self.path.display())?;
        writeln!(f, "sha256     {}", self.digest)?;
        writeln!(
            f,
            "needs      {} core instances, {} memories, {} tables per session",
            self.needs.core_instances, self.needs.memories, self.needs.tables
        )?;
        writeln!(f, "imports    {}", self.imports.len())?;
        let width = self.imports.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for import in &self.imports {
            let verdict = if import.allowed { "allowed" } else { "refused" };
            let name = if import.kind == "instance" {
                import.name.clone()
            } else {
                format!("{} ({})", import.name, import.kind)
            };
            writeln!(f, "  {verdict}  {name:<width$}  {}", import.reason)?;
        }
        writeln!(f, "exports    {}", self.exports.len())?;
        for export in &self.exports {
            writeln!(f, "  {} ({})", export.name, export.kind)?;
        }
        if self.runnable {
            write!(f, "mandate will run this agent")
        } else {
            write!(
                f,
                "mandate will not run this agent: {}",
                self.problems.join("; ")
            )
        }
    }
}

impl Runtime {
    /// Reads a component's imports and exports and says whether
    /// [`Runtime::load_agent_bytes`] would accept it and, if not, every
    /// reason why. `path` names the bytes in the report.
    ///
    /// Errors only when the bytes are not a component at all (not wasm, a
    /// core module, or a component that does not compile). A component over
    /// a session limit is not compiled (the pool refuses it): its report
    /// says which limit and lists no imports or exports.
    pub fn inspect(&self, path: &Path, bytes: &[u8]) -> Result<Inspection, RuntimeError> {
        check_header(path, bytes)?;
        let needs = ComponentNeeds::of(bytes).map_err(|reason| RuntimeError::NotAnAgent {
            path: path.to_path_buf(),
            reason: format!("it is not a well-formed component: {reason}"),
        })?;
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(over) = super::over_limit(&needs, &self.sessions.limits) {
            let problem = match over.at(path) {
                RuntimeError::OverLimit {
                    what,
                    needs,
                    limit,
                    flag,
                    ..
                } => format!("it needs {needs} {what}, over the limit of {limit} (`{flag}`)"),
                other => other.to_string(),
            };
            return Ok(Inspection {
                path: path.to_path_buf(),
                digest,
                runnable: false,
                needs,
                imports: Vec::new(),
                exports: Vec::new(),
                problems: vec![problem],
            });
        }
        let component = self.compile(path, bytes)?;
        let ty = component.component_type();
        let imports: Vec<ImportReport> = ty
            .imports(&self.engine)
            .map(|(name, import)| {
                let kind = lockdown::item_kind(&import.ty);
                let (allowed, reason) = match lockdown::check_import(name, kind) {
                    Verdict::Allowed(grants) => (true, grants.to_string()),
                    Verdict::Refused(reason) => (false, reason),
                };
                ImportReport {
                    name: name.to_string(),
                    kind,
                    allowed,
                    reason,
                }
            })
            .collect();
        let exports: Vec<ExportReport> = ty
            .exports(&self.engine)
            .map(|(name, export)| ExportReport {
                name: name.to_string(),
                kind: lockdown::item_kind(&export.ty),
            })
            .collect();

        let mut problems = Vec::new();
        let refused = forbidden(&component, &self.engine);
        if !refused.is_empty() {
            problems.push(format!(
                "it imports what mandate does not provide: {}",
                quoted(&refused)
            ));
        }
        if !exports_run(&component, &self.engine) {
            problems.push(format!(
                "it does not export `run`; an agent exports {RUN_SIGNATURE}"
            ));
        }
        // The names are right: let the linker and the world's bindings check
        // the types, exactly as loading does.
        if problems.is_empty()
            && let Err(e) = self.prepare(path, &component)
        {
            problems.push(match e {
                RuntimeError::NotAnAgent { reason, .. } => reason,
                other => other.to_string(),
            });
        }
        Ok(Inspection {
            path: path.to_path_buf(),
            digest,
            runnable: problems.is_empty(),
            needs,
            imports,
            exports,
            problems,
        })
    }

    /// Checks the header and compiles the bytes.
    pub(super) fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, RuntimeError> {
        check_header(path, bytes)?;
        Component::from_binary(&self.engine, bytes).map_err(|e| RuntimeError::NotAnAgent {
            path: path.to_path_buf(),
            reason: format!("it does not compile: {e:#}"),
        })
    }

    /// The load-time checks, first failure wins: no import outside the
    /// allow-list, a `run` export, and types that match what the host links
    /// and the `agent` world.
    pub(super) fn prepare(
        &self,
        path: &Path,
        component: &Component,
    ) -> Result<AgentPre<SessionState>, RuntimeError> {
        let not_agent = |reason: String| RuntimeError::NotAnAgent {
            path: path.to_path_buf(),
            reason,
        };
        let refused = forbidden(component, &self.engine);
        if !refused.is_empty() {
            return Err(RuntimeError::ForbiddenImports {
                path: path.to_path_buf(),
                imports: refused,
            });
        }
        if !exports_run(component, &self.engine) {
            return Err(not_agent(format!(
                "it does not export `run`; an agent exports {RUN_SIGNATURE}"
            )));
        }
        let pre = self.linker.instantiate_pre(component).map_err(|e| {
            not_agent(format!(
                "its imports do not match what mandate links: {e:#}; run `mandate inspect` on it"
            ))
        })?;
        AgentPre::new(pre).map_err(|e| {
            not_agent(format!(
                "its `run` export does not fit the agent world: {e:#}; an agent exports {RUN_SIGNATURE}"
            ))
        })
    }
}

/// Refuses bytes that are not a component, saying what they are instead.
pub(super) fn check_header(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let reason = match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => return Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            "it is a core wasm module, not a component; build the agent for the wasm32-wasip2 target"
        }
        _ => "it is not a webassembly file (no `\\0asm` header)",
    };
    Err(RuntimeError::NotAnAgent {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })
}

/// The full names of the imports the host refuses, in the component's order.
fn forbidden(component: &Component, engine: &wasmtime::Engine) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter(|(name, import)| {
            matches!(
                lockdown::check_import(name, lockdown::item_kind(&import.ty)),
                Verdict::Refused(_)
            )
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Whether the component exports a function named `run`.
fn exports_run(component: &Component, engine: &wasmtime::Engine) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, export)| name == "run" && matches!(export.ty, ComponentItem::ComponentFunc(_)))
}

/// `a`, `b`, `c` with backticks, for messages.
pub(super) fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
