//! The call's Cedar request, in the forms it takes: Cedar values for
//! evaluation ([`CallRequest::decide`]) and Cedar JSON for the decision
//! record ([`CallRequest::record`]), built once per call over the parts of
//! the session prepared once at session start ([`PreparedSession`]). The
//! call path, `dry_run`, `explain` and `policy test` all build it here.

mod cedar_json;
mod context;
mod error;
mod prepared;
mod shape;
#[cfg(test)]
mod tests;

pub(crate) use cedar_json::{entity_uid, uid};
pub(crate) use context::{CallRequest, arguments};
pub(crate) use error::RequestError;
pub(crate) use prepared::PreparedSession;
pub(crate) use shape::{COMMON_TYPES, CONTEXT_FIELDS, approval_json};
