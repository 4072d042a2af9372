//! The policy decision on a call: its effect, what decided it, and the Cedar request that was
//! evaluated, so that `mandate audit replay` can evaluate it again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Form, Full, Truncated};

/// Allow or deny: the final word on whether the tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The call ran.
    Allow,
    /// The call did not run.
    Deny,
}

/// Why the call was refused before or outside policy evaluation, or `policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// Cedar policies (and the reviewer, when approval was needed).
    Policy,
    /// No such tool.
    UnknownTool,
    /// The session had expired.
    SessionExpired,
    /// The arguments did not fit the tool.
    InvalidArguments,
    /// The entity provider failed.
    EntityLookup,
    /// A session limit refused it before policy (too many requests in
    /// flight, a request body over the limit).
    SessionLimit,
}

/// A policy named in a record: one that determined a decision or demanded approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// The policy's id (`@id`, else `file.cedar:line`).
    pub id: String,
    /// Its `@reason` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An error Cedar met while evaluating a policy (each one denies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyError {
    /// The policy that failed to evaluate.
    pub policy: String,
    /// What went wrong.
    pub message: String,
}

/// The policy decision of a `decision` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct DecisionRecord<F: Form = Full> {
    /// Allow or deny; the final word on whether the tool runs.
    pub effect: Effect,
    /// What decided. Always written; absent only in hand-made records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<DecidedBy>,
    /// The determining policies of the final evaluation.
    #[serde(default)]
    pub determining_policies: Vec<PolicyRef>,
    /// Evaluation errors (each one denies).
    #[serde(default)]
    pub errors: Vec<PolicyError>,
    /// A message for refusals outside policy, bounded by the guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The size and SHA-256 of the whole message, when it was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_truncated: Option<Truncated>,
    /// SHA-256 of the policies, schema and entities that decided.
    #[serde(default)]
    pub policy_digest: String,
    /// The Cedar request that was evaluated. Absent when the call was refused before a request
    /// could be built, and in records written before requests were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<F::Part<RequestRecord>>,
}

/// A call's Cedar request as Cedar JSON (entity references as `__entity`,
/// datetimes as `__extn`).
///
/// `context` holds every attribute but two: `arguments`, which is the
/// record's `action.arguments` (sensitive values there are commitments, so a
/// replay cannot see them), and `approval`, which the guard varies between
/// its evaluations (not granted, granted, granted by `approval.reviewer`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// `Agent::"<id>"`.
    pub principal: String,
    /// `Action::"<tool>"`.
    pub action: String,
    /// The resource entity.
    pub resource: String,
    /// `session`, `user`, `delegation` and `now`.
    pub context: RequestContext,
}

/// The context of a [`RequestRecord`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    /// `session`, `user` and `delegation`, prepared once per session (and, read back, every
    /// attribute but `now`).
    #[serde(flatten)]
    pub session: Arc<Map<String, Value>>,
    /// The evaluation time, as a Cedar datetime.
    pub now: Value,
}
