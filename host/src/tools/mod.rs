//! Tool sources: the example tools (documents in a local folder and an
//! email outbox file; nothing leaves the machine), and what a tool manifest
//! declares: MCP servers and programs.

mod documents;
pub mod lock;
pub mod manifest;
pub mod mcp;
pub mod program;
mod toolset;

pub use documents::{
    DocumentId, ReadDocument, SendEmail, Workspace, WriteSummary, document_entity_type,
    example_registry,
};
pub use lock::{LockError, PinnedTool, ToolsLock, ToolsLockRecord};
pub use manifest::{Credential, Manifest, ManifestError};
pub use toolset::{ResolvedTool, ToolSet, ToolSetError, ToolSource};
