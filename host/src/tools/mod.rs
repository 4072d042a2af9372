//! Example tools: documents in a local folder and an email outbox file.
//! Nothing leaves the machine.

mod documents;

pub use documents::{DocumentId, ReadDocument, SendEmail, WriteSummary, Workspace, example_registry};
