//! Example tools: documents in a local folder and an email outbox file.
//! Nothing leaves the machine.

mod documents;

pub use documents::{
    DocumentId, ReadDocument, SendEmail, Workspace, WriteSummary, document_entity_type,
    example_registry,
};
