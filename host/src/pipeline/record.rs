//! The guard's side of its audit records: the record types themselves live in
//! [`crate::audit::record`], where the index and replay read them back with; this
//! module turns the guard's policy and session types into them, in one place,
//! and holds the one record body nobody reads back (`policy_reload`).

use std::sync::Arc;

use serde::Serialize;

use super::session::{Session, SessionType};
use crate::audit::record as wire;
pub use crate::audit::record::{
    ActionKind, ActionRecord, Agent, ApprovalOutcome, ApprovalRecord, Authorization, CallStatus,
    DecidedBy, DecisionRecord, GrantRef, Identity, OutcomeRecord, PolicyError, PolicyRef, Record,
    RecordKind, RequestContext, RequestRecord, Truncated, User,
};
use crate::policy::{DeterminingPolicy, Effect, EvaluationError};

/// The identity block of `session`'s records, with the digest of the
/// component that runs in it. Built once per session.
pub(crate) fn identity(session: &Session, component_digest: Option<String>) -> Identity {
    Identity {
        session_id: session.session_id.as_str().into(),
        trace_id: session.trace_id.as_str().into(),
        user: Arc::new(User {
            id: session.user.id.clone(),
            email: session.user.email.clone(),
        }),
        agent: Arc::new(Agent {
            id: session.agent.id.clone(),
            name: session.agent.name.clone(),
            version: session.agent.version.clone(),
            component_digest,
        }),
        authorization: Arc::new(Authorization {
            scopes: session.scopes.clone(),
            session_type: session.session_type.to_record(),
            expires_at: session.expires_at,
            approved_by: session.approved_by.clone(),
            approved_at: session.approved_at,
        }),
        delegation_chain: session
            .delegation_chain
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// A guard type as the audit log records it.
pub(crate) trait ToRecord {
    /// Its record form.
    type Record;
    /// Converts it.
    fn to_record(&self) -> Self::Record;
}

impl ToRecord for Effect {
    type Record = wire::Effect;
    fn to_record(&self) -> wire::Effect {
        match self {
            Effect::Allow => wire::Effect::Allow,
            Effect::Deny => wire::Effect::Deny,
        }
    }
}

impl ToRecord for DeterminingPolicy {
    type Record = PolicyRef;
    fn to_record(&self) -> PolicyRef {
        PolicyRef {
            id: self.id.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl ToRecord for EvaluationError {
    type Record = PolicyError;
    fn to_record(&self) -> PolicyError {
        PolicyError {
            policy: self.policy.clone(),
            message: self.message.clone(),
        }
    }
}

impl ToRecord for SessionType {
    type Record = wire::SessionType;
    fn to_record(&self) -> wire::SessionType {
        match self {
            SessionType::HumanApproved => wire::SessionType::HumanApproved,
            SessionType::Autonomous => wire::SessionType::Autonomous,
        }
    }
}

impl<T: ToRecord> ToRecord for [T] {
    type Record = Vec<T::Record>;
    fn to_record(&self) -> Vec<T::Record> {
        self.iter().map(ToRecord::to_record).collect()
    }
}

/// A recorded effect as the policy engine's: for replay, which compares them.
pub(crate) fn effect_of(recorded: wire::Effect) -> Effect {
    match recorded {
        wire::Effect::Allow => Effect::Allow,
        wire::Effect::Deny => Effect::Deny,
    }
}

/// The body of a `policy_reload` record: a running guard was asked to swap
/// its policy set. Written before the new set decides anything; a rejected
/// candidate is recorded too, with its errors.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReloadRecord {
    /// Always `policy_reload`.
    pub kind: &'static str,
    /// `applied` or `rejected`.
    pub status: &'static str,
    /// Where the candidate came from, e.g. its directory.
    pub source: String,
    /// Digest of the set in force before.
    pub previous_digest: String,
    /// Digest of the candidate, when it loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Number of policies in the candidate, when it loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<usize>,
    /// Why the candidate was rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Session;

    /// The session's identity is recorded as the session file gives it.
    #[test]
    fn a_sessions_identity_is_recorded_as_the_session_gives_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let session = Session::from_file(&dir.join("session.json")).unwrap();
        let identity = identity(&session, Some("sha256:00".into()));
        let record = Record::new(RecordKind::SessionStart, &identity);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["session_id"], session.session_id.as_str());
        assert_eq!(json["user"], serde_json::to_value(&session.user).unwrap());
        let mut agent = serde_json::to_value(&session.agent).unwrap();
        agent["component_digest"] = "sha256:00".into();
        assert_eq!(json["agent"], agent);
        assert_eq!(
            json["authorization"]["session_type"],
            session.session_type.as_str()
        );
        assert_eq!(
            json["delegation_chain"],
            serde_json::json!(
                session
                    .delegation_chain
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            )
        );
        crate::audit::check_body_keys(&record).unwrap();
    }
}
