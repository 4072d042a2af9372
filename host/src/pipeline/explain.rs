//! The decision for one hypothetical call, without running anything or
//! writing a record: what `mandate policy explain` and `mandate policy test`
//! show. It goes through the same request building, screening and reviewer
//! check as a real call.

use cedar_policy::Entities;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::call_error::ToolCallError;
use super::evaluate::{ApprovalState, Screening};
use super::request::{PreparedSession, RequestError, entity_uid};
use super::screening::screen_call;
use super::session::Session;
use super::tools::ToolRegistry;
use crate::policy::{Decision, DeterminingPolicy, Effect, Policies};

/// A call to evaluate.
#[derive(Debug, Clone)]
pub struct HypotheticalCall<'a> {
    /// The session it would run in.
    pub session: &'a Session,
    /// The tool the agent would call.
    pub tool: &'a str,
    /// Its arguments.
    pub arguments: &'a Value,
    /// A reviewer who approves, if the call is held for approval.
    pub reviewer: Option<&'a str>,
    /// When the call is made (`context.now`).
    pub now: Timestamp,
}

/// What policy would do with a [`HypotheticalCall`].
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The tool.
    pub tool: String,
    /// The Cedar action.
    pub action: String,
    /// The Cedar resource derived from the arguments.
    pub resource: String,
    /// The final effect: allow only if policy allows outright, or holds the
    /// call and accepts the given reviewer's approval.
    pub effect: Effect,
    /// The first evaluation, without approval.
    pub first: Decision,
    /// Whether policy holds the call for a human.
    pub approval_required: bool,
    /// The policies that demand approval, when it is required.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approval_demanded_by: Vec<DeterminingPolicy>,
    /// The reviewer whose approval was evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The evaluation with that reviewer's approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_reviewer: Option<Decision>,
    /// The decision that determines `effect`: `with_reviewer` when there is
    /// one, else `first`.
    pub decision: Decision,
}

/// Why a hypothetical call cannot be evaluated; the guard would refuse it
/// before policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// No such tool.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The session is malformed.
    #[error("session: {0}")]
    Session(String),
    /// The session has expired at `now`; the guard refuses such calls.
    #[error("session expired at {expires_at}, before the call at {now}")]
    SessionExpired {
        /// When it expired.
        expires_at: Timestamp,
        /// When the call would be made.
        now: Timestamp,
    },
    /// The arguments do not fit the tool or the schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool's action is not in the schema, so no policy can allow it.
    #[error("tool `{tool}`: action `{action}` is not declared in the schema")]
    ToolNotInSchema {
        /// The tool.
        tool: String,
        /// Its action.
        action: String,
    },
    /// The reviewer id is not a valid user id.
    #[error("reviewer: {0}")]
    Reviewer(String),
}

/// Evaluates `call` against `policies` and `entities` as the guard would,
/// through the call path's own screening and in its order: the tool, then
/// the session's expiry, then the arguments. What the guard checks once
/// (the session is well formed, the tool's action is in the schema) is
/// checked first.
pub fn explain(
    policies: &Policies,
    tools: &ToolRegistry,
    entities: &Entities,
    call: &HypotheticalCall<'_>,
) -> Result<Explanation, ExplainError> {
    let session = call.session;
    session
        .check(&session.session_id)
        .map_err(|e| ExplainError::Session(e.to_string()))?;
    let prepared =
        PreparedSession::new(session).map_err(|e| ExplainError::Session(e.to_string()))?;
    let tool = tools
        .get(call.tool)
        .ok_or_else(|| ExplainError::UnknownTool(call.tool.to_string()))?;
    if !policies.schema().actions().any(|a| a == tool.action()) {
        return Err(ExplainError::ToolNotInSchema {
            tool: call.tool.to_string(),
            action: tool.action().to_string(),
        });
    }
    let (screened, _) = screen_call(
        policies,
        session,
        &prepared,
        tool,
        Ok(call.arguments),
        call.now,
        |_| Ok(entities),
    )
    .map_err(|refused| match refused.err {
        ToolCallError::SessionExpired => ExplainError::SessionExpired {
            expires_at: session.expires_at,
            now: call.now,
        },
        ToolCallError::InvalidArguments { problem, .. } => ExplainError::InvalidArguments(problem),
        other => ExplainError::Session(other.to_string()),
    })?;
    let reviewer = call
        .reviewer
        .map(|r| entity_uid("User", r))
        .transpose()
        .map_err(|e| ExplainError::Reviewer(e.to_string()))?;
    let invalid = |e: RequestError| {
        ExplainError::InvalidArguments(format!(
            "arguments do not match the schema of action `{}`: {e}",
            tool.action()
        ))
    };
    let mut explanation = Explanation {
        tool: call.tool.to_string(),
        action: tool.action().to_string(),
        resource: screened.request.resource().to_string(),
        effect: Effect::Deny,
        first: Decision {
            effect: Effect::Deny,
            determining_policies: Vec::new(),
            errors: Vec::new(),
        },
        approval_required: false,
        approval_demanded_by: Vec::new(),
        reviewer: None,
        with_reviewer: None,
        decision: Decision {
            effect: Effect::Deny,
            determining_policies: Vec::new(),
            errors: Vec::new(),
        },
    };
    match screened.screening.clone() {
        Screening::Allowed(first) | Screening::Denied(first) => {
            explanation.effect = first.effect;
            explanation.decision = first.clone();
            explanation.first = first;
        }
        Screening::NeedsApproval { first, demanded_by } => {
            explanation.approval_required = true;
            explanation.approval_demanded_by = demanded_by;
            explanation.decision = first.clone();
            explanation.first = first;
            if let (Some(id), Some(reviewer)) = (call.reviewer, &reviewer) {
                let with = screened
                    .decide(policies, ApprovalState::GrantedBy(reviewer))
                    .map_err(invalid)?;
                explanation.effect = with.effect;
                explanation.decision = with.clone();
                explanation.reviewer = Some(id.to_string());
                explanation.with_reviewer = Some(with);
            }
        }
    }
    Ok(explanation)
}
