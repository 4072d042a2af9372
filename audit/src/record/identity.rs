//! Who and under what grant: the identity every record of a session repeats (questions 1, 2,
//! 3 and 5 of the design), built once per session.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Question 1: the human whose account authorized the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable user id, the Cedar `User` entity id.
    pub id: String,
    /// Contact address.
    #[serde(default)]
    pub email: String,
}

/// Question 2: the agent, and the exact code that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Stable agent id, the Cedar `Agent` entity id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Version of the agent.
    #[serde(default)]
    pub version: String,
    /// SHA-256 of the component's bytes, when it runs as a component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_digest: Option<String>,
}

/// How the session was authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// A human approved the session before it started.
    #[default]
    HumanApproved,
    /// The agent runs on its own, e.g. on a schedule.
    Autonomous,
}

/// Question 3: the session's grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Approved by a human, or autonomous.
    pub session_type: SessionType,
    /// No call is allowed at or after this instant.
    pub expires_at: Timestamp,
    /// Who approved the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
}

/// A session's identity, shared by every record of the session ([`super::Record::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The session.
    pub session_id: Arc<str>,
    /// The host's trace id.
    pub trace_id: Arc<str>,
    /// The human.
    pub user: Arc<User>,
    /// The agent.
    pub agent: Arc<Agent>,
    /// What it was authorized to do.
    pub authorization: Arc<Authorization>,
    /// On whose behalf, `user:alice` -> `agent:...`.
    pub delegation_chain: Arc<[String]>,
}
