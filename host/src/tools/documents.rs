//! `read_document`, `write_summary` and `send_email` over a workspace folder:
//! `documents/<id>.md` to read, `summaries/<id>.md` to write, and
//! `outbox.jsonl` where sent email is appended.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::pipeline::{
    CedarType, EntityTypeDecl, RegistryError, ResourceBinding, Tool, ToolContext, ToolFailure,
    ToolRegistry, ToolSpec,
};

/// A document id: letters, digits, `_` and `-` only, so it can never name a
/// path outside the workspace.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct DocumentId(#[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,128}$"))] String);

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(DocumentId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "`document_id` {s:?} may contain only letters, digits, `_` and `-` (1 to 128)"
            )))
        }
    }
}

impl DocumentId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The folder the example tools work in.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: Arc<PathBuf>,
}

impl Workspace {
    /// A workspace rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace {
            root: Arc::new(root.into()),
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The outbox file where `send_email` appends messages.
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox.jsonl")
    }
}

impl Workspace {
    /// `path` as the agent may see it: relative to the workspace root. The
    /// host's own directories are none of the agent's business.
    fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(self.root()) {
            Ok(relative) => relative.display().to_string(),
            // Never a host path: only the file's own name.
            Err(_) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// A tool failure the agent is told: the operation and the workspace-relative
/// path. A missing file and one the host may not open read alike, and the
/// OS's own message (which can name other paths) is reduced to its kind.
fn io_failure(workspace: &Workspace, what: &str, path: &Path, e: &std::io::Error) -> ToolFailure {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            "not found or not permitted".to_string()
        }
        kind => kind.to_string(),
    };
    ToolFailure(format!("cannot {what} `{}`: {why}", workspace.shown(path)))
}

/// Reads a document.
#[derive(Debug, Clone)]
pub struct ReadDocument(pub Workspace);

/// Arguments of `read_document`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadDocumentArgs {
    /// The document to read, e.g. `doc_88pk3r`.
    pub document_id: DocumentId,
}

impl Tool for ReadDocument {
    type Args = ReadDocumentArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_document".into(),
            description: "Read a document: returns its title and content.".into(),
            scope: "documents:read".into(),
            resource: ResourceBinding::Argument {
                entity_type: "Document".into(),
                argument: "document_id".into(),
            },
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _ctx: ToolContext, args: ReadDocumentArgs) -> Result<Value, ToolFailure> {
        let path = self
            .0
            .root()
            .join("documents")
            .join(format!("{}.md", args.document_id.as_str()));
        let content = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| io_failure(&self.0, "read", &path, &e))?;
        let title = content
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches('#')
            .trim()
            .to_string();
        Ok(json!({ "document_id": args.document_id.as_str(), "title": title, "content": content }))
    }
}

/// Writes the summary of a document.
#[derive(Debug, Clone)]
pub struct WriteSummary(pub Workspace);

/// Arguments of `write_summary`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteSummaryArgs {
    /// The document summarized.
    pub document_id: DocumentId,
    /// The summary text.
    pub summary: String,
}

impl Tool for WriteSummary {
    type Args = WriteSummaryArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_summary".into(),
            description: "Store the summary of a document next to it.".into(),
            scope: "documents:write".into(),
            resource: ResourceBinding::Argument {
                entity_type: "Document".into(),
                argument: "document_id".into(),
            },
            sensitive: Vec::new(),
        }
    }

    async fn run(&self, _ctx: ToolContext, args: WriteSummaryArgs) -> Result<Value, ToolFailure> {
        let dir = self.0.root().join("summaries");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_failure(&self.0, "create", &dir, &e))?;
        let path = dir.join(format!("{}.md", args.document_id.as_str()));
        tokio::fs::write(&path, args.summary.as_bytes())
            .await
            .map_err(|e| io_failure(&self.0, "write", &path, &e))?;
        // Relative to the workspace: the agent learns no host path.
        Ok(json!({ "path": self.0.shown(&path), "bytes": args.summary.len() }))
    }
}

/// Exactly one email address, `local@domain`: no list, no display name, no
/// spaces or line breaks, so that what a reviewer approves is the one
/// recipient the email goes to. The local part is RFC 5322 `dot-atom` text,
/// the domain at least two DNS labels; at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `s` if it is exactly one address, else why not.
    fn parse(s: &str) -> Result<Self, &'static str> {
        const LOCAL_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
        if s.len() > 254 {
            return Err("is longer than 254 bytes");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("has no `@`");
        };
        if domain.contains('@') {
            return Err("holds more than one `@`: it takes exactly one address");
        }
        let dot_atom = |part: &str, allowed: &dyn Fn(u8) -> bool| {
            !part.is_empty()
                && part
                    .split('.')
                    .all(|atom| !atom.is_empty() && atom.bytes().all(allowed))
        };
        if local.len() > 64
            || !dot_atom(local, &|b| {
                b.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(&b)
            })
        {
            return Err(
                "is not one address: the part before `@` may hold only letters, digits, dots and !#$%&'*+-/=?^_`{|}~ (no spaces, commas or line breaks)",
            );
        }
        let label_ok = |label: &str| {
            label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !domain.contains('.')
            || !dot_atom(domain, &|b| b.is_ascii_alphanumeric() || b == b'-')
            || !domain.split('.').all(label_ok)
        {
            return Err(
                "is not one address: the part after `@` must be a domain name such as `example.com`",
            );
        }
        Ok(EmailAddress(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The value is not repeated: it is the agent's and may be long.
        EmailAddress::parse(&s).map_err(|why| {
            serde::de::Error::custom(format!(
                "`to` {why}; send_email takes exactly one recipient address"
            ))
        })
    }
}

/// Sends an email by appending it to the outbox file.
#[derive(Debug, Clone)]
pub struct SendEmail(pub Workspace);

/// Arguments of `send_email`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmailArgs {
    /// Recipient: exactly one address.
    pub to: EmailAddress,
    /// Subject line.
    pub subject: String,
    /// Message body; sensitive: the audit log and reviewers get only a salted
    /// commitment to it, which the holder of the salt key can prove.
    pub body: String,
}

impl Tool for SendEmail {
    type Args = SendEmailArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "send_email".into(),
            description: "Send an email (written to the local outbox).".into(),
            scope: "email:send".into(),
            resource: ResourceBinding::Tool,
            // A path into the arguments; see `ToolSpec::sensitive`.
            sensitive: vec!["body".into()],
        }
    }

    async fn run(&self, ctx: ToolContext, args: SendEmailArgs) -> Result<Value, ToolFailure> {
        let path = self.0.outbox();
        let message_id = format!("msg:{}", ctx.call_id);
        let line = json!({
            "message_id": message_id,
            "to": args.to.as_str(),
            "subject": args.subject,
            "body": args.body,
            "session_id": ctx.session_id,
        });
        let write = move || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            writeln!(f, "{line}")?;
            f.sync_data()
        };
        let outbox = self.0.outbox();
        tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| ToolFailure(e.to_string()))?
            .map_err(|e| io_failure(&self.0, "append to", &outbox, &e))?;
        Ok(json!({ "queued": true, "message_id": message_id }))
    }
}

// ANCHOR: registry
/// `Document`, the resource of `read_document` and `write_summary`. Its
/// attributes come from the entities (`entities.json`), not from the
/// arguments, which name only its id.
pub fn document_entity_type() -> EntityTypeDecl {
    EntityTypeDecl::new("Document")
        .doc("A document in the workspace; `owner` is the user it belongs to.")
        .attribute("owner", CedarType::entity("User"))
        .attribute("title", CedarType::String)
}

/// The three example tools over `workspace`, and the `Document` type they
/// act on.
pub fn example_registry(workspace: &Workspace) -> Result<ToolRegistry, RegistryError> {
    let mut tools = ToolRegistry::new();
    tools
        .declare_entity_type(document_entity_type())?
        .register(ReadDocument(workspace.clone()))?
        .register(WriteSummary(workspace.clone()))?
        .register(SendEmail(workspace.clone()))?;
    Ok(tools)
}
// ANCHOR_END: registry
