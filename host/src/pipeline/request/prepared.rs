//! The parts of a call's Cedar request that are the same for the whole
//! session, built once at session start in both forms: evaluated Cedar
//! values for deciding, Cedar JSON for the records.

use std::sync::Arc;

use cedar_policy::EntityUid;
use serde_json::{Map, Value};

use super::RequestError;
use super::cedar_json::entity_uid;
use super::context::SessionContext;
use super::shape::session_json;
use crate::pipeline::session::Session;

/// `principal`, `session`, `user` and `delegation` of every call of a
/// session.
pub(crate) struct PreparedSession {
    pub(crate) principal: EntityUid,
    /// `principal` as text, for every decision record.
    pub(crate) principal_text: String,
    /// `session`, `user` and `delegation`, evaluated once.
    pub(crate) context: SessionContext,
    /// The same parts as Cedar JSON, for the request each decision records.
    pub(crate) parts_json: Arc<Map<String, Value>>,
}

impl PreparedSession {
    pub(crate) fn new(session: &Session) -> Result<Self, RequestError> {
        let parts_json = session_json(session);
        let principal = entity_uid("Agent", &session.agent.id)?;
        Ok(PreparedSession {
            context: SessionContext::from_json(&parts_json)?,
            parts_json: Arc::new(parts_json),
            principal_text: principal.to_string(),
            principal,
        })
    }
}
