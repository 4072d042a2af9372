//! The scope a session runs under: who the user is, which agent acts, what it
//! may do, until when, and on whose behalf.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The human whose account authorized the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// Stable user id, the Cedar `User` entity id.
    pub id: String,
    /// Contact address, for reviewers and records.
    pub email: String,
}

/// The agent's own identity, separate from the user (like an OAuth client id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    /// Stable agent id, the Cedar `Agent` entity id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version of the agent.
    pub version: String,
}

/// How the session was authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// A human approved the session before it started.
    HumanApproved,
    /// The agent runs on its own, e.g. on a schedule.
    Autonomous,
}

impl SessionType {
    /// The name used in records and in Cedar's `context.session.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::HumanApproved => "human_approved",
            SessionType::Autonomous => "autonomous",
        }
    }
}

/// One link of the delegation chain: user -> agent -> sub-agent ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegate {
    /// `user` or `agent`.
    pub kind: DelegateKind,
    /// The user or agent id.
    pub id: String,
}

/// What a link of the delegation chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegateKind {
    /// A human.
    User,
    /// An agent acting for the link before it.
    Agent,
}

impl std::fmt::Display for Delegate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DelegateKind::User => "user",
            DelegateKind::Agent => "agent",
        };
        write!(f, "{kind}:{}", self.id)
    }
}

/// A session: the scope every call of one agent run is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Unique id, in every record of the session.
    pub session_id: String,
    /// Correlates the session with the embedding host's traces.
    pub trace_id: String,
    /// On whose account.
    pub user: UserRef,
    /// Which agent.
    pub agent: AgentRef,
    /// What it may do, e.g. `documents:read`.
    pub scopes: Vec<String>,
    /// Human-approved or autonomous.
    pub session_type: SessionType,
    /// Who approved the session, for human-approved sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When the session was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
    /// No call is allowed at or after this instant.
    pub expires_at: Timestamp,
    /// user -> agent -> sub-agent ...; starts with the user, ends with the agent.
    pub delegation_chain: Vec<Delegate>,
}

/// Why a session file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The file could not be read.
    #[error("cannot read session file `{path}`: {error}")]
    Io {
        /// The session file.
        path: String,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The JSON is malformed or a field has the wrong shape.
    #[error("session file `{path}` line {line} column {column}: {message}")]
    Malformed {
        /// The session file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's description, naming the field.
        message: String,
    },
    /// The JSON is well formed but a field's value does not make sense.
    #[error("session `{path}`: field `{field}`: {message}")]
    Invalid {
        /// The session file, or `<memory>`.
        path: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Session {
    /// Reads and checks a session file.
    pub fn from_file(path: &Path) -> Result<Session, SessionError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SessionError::Io {
            path: shown.clone(),
            error,
        })?;
        Session::from_json(&text, &shown)
    }

    /// Parses and checks a session from JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Session, SessionError> {
        // The path names the field even when the error is inside a value,
        // e.g. a timestamp that does not parse.
        let mut de = serde_json::Deserializer::from_str(text);
        let session: Session = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let what = inner.to_string();
            let what = what.split(" at line ").next().unwrap_or("").to_string();
            SessionError::Malformed {
                path: origin.to_string(),
                line: inner.line(),
                column: inner.column(),
                message: if field == "." || what.contains(&format!("`{field}`")) {
                    what
                } else {
                    format!("field `{field}`: {what}")
                },
            }
        })?;
        session.check(origin)?;
        Ok(session)
    }

    /// Checks what serde cannot: non-empty ids and a delegation chain that
    /// starts with the user and ends with the agent.
    pub fn check(&self, origin: &str) -> Result<(), SessionError> {
        let invalid = |field, message: &str| SessionError::Invalid {
            path: origin.to_string(),
            field,
            message: message.to_string(),
        };
        for (field, value) in [
            ("session_id", &self.session_id),
            ("trace_id", &self.trace_id),
            ("user.id", &self.user.id),
            ("agent.id", &self.agent.id),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
        }
        let first = self.delegation_chain.first();
        if first.is_none_or(|d| d.kind != DelegateKind::User || d.id != self.user.id) {
            return Err(invalid(
                "delegation_chain",
                &format!(
                    "must start with the session's user, {{\"kind\": \"user\", \"id\": \"{}\"}}",
                    self.user.id
                ),
            ));
        }
        let last = self.delegation_chain.last();
        if last.is_none_or(|d| d.kind != DelegateKind::Agent || d.id != self.agent.id) {
            return Err(invalid(
                "delegation_chain",
                &format!(
                    "must end with the session's agent, {{\"kind\": \"agent\", \"id\": \"{}\"}}",
                    self.agent.id
                ),
            ));
        }
        if self.session_type == SessionType::HumanApproved && self.approved_by.is_none() {
            return Err(invalid(
                "approved_by",
                "a human_approved session must name who approved it",
            ));
        }
        Ok(())
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/session.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_example_session_parses() {
        let s = Session::from_json(&example(), "session.json").unwrap();
        assert_eq!(s.user.id, "alice");
        assert_eq!(s.delegation_chain.len(), 2);
    }

    #[test]
    fn a_missing_field_is_named_with_line_and_column() {
        let text = example().replace("\"trace_id\": \"trace_example_01\",", "");
        let err = Session::from_json(&text, "s.json").unwrap_err().to_string();
        assert!(err.contains("missing field `trace_id`"), "{err}");
        assert!(err.starts_with("session file `s.json` line "), "{err}");
    }

    #[test]
    fn a_chain_that_does_not_start_with_the_user_is_refused() {
        let text = example().replace("{ \"kind\": \"user\", \"id\": \"alice\" },", "");
        let err = Session::from_json(&text, "s.json").unwrap_err().to_string();
        assert!(err.contains("field `delegation_chain`"), "{err}");
    }

    #[test]
    fn a_bad_timestamp_is_named() {
        let text = example().replace("2099-01-01T00:00:00Z", "next tuesday");
        let err = Session::from_json(&text, "s.json").unwrap_err().to_string();
        assert!(err.contains("line 10"), "{err}");
        assert!(err.contains("field `expires_at`"), "{err}");
    }
}
