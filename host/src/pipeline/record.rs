//! The bodies of audit records written by the guard. The audit module adds
//! `seq`, `prev_hash`, `timestamp` and `hash` around them.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::approval::GrantScope;
pub use super::bounded::Truncated;
use super::session::{AgentRef, Session, UserRef};
use crate::policy::{DeterminingPolicy, Effect, EvaluationError};

/// What every record of a session repeats, so each record answers who, for
/// whom and under what authorization on its own. Built once per session.
#[derive(Debug, Serialize)]
pub struct Identity {
    /// The session.
    pub session_id: String,
    /// The host's trace id.
    pub trace_id: String,
    /// Question 1: the human.
    pub user: UserRef,
    /// Question 2: the agent, with the digest of its component.
    pub agent: AgentIdentity,
    /// Question 3: what it was authorized to do.
    pub authorization: Authorization,
    /// Question 5: on whose behalf, `user:alice` -> `agent:...`.
    pub delegation_chain: Vec<String>,
}

/// The agent and the exact code that ran.
#[derive(Debug, Serialize)]
pub struct AgentIdentity {
    /// Agent id, name and version from the session.
    #[serde(flatten)]
    pub agent: AgentRef,
    /// SHA-256 of the component's bytes, when it runs as a component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_digest: Option<String>,
}

/// The session's grant.
#[derive(Debug, Serialize)]
pub struct Authorization {
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// `human_approved` or `autonomous`.
    pub session_type: &'static str,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Who approved the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Timestamp>,
}

impl Identity {
    /// Prepares the identity block of `session`.
    pub fn new(session: &Session, component_digest: Option<String>) -> Self {
        Identity {
            session_id: session.session_id.clone(),
            trace_id: session.trace_id.clone(),
            user: session.user.clone(),
            agent: AgentIdentity {
                agent: session.agent.clone(),
                component_digest,
            },
            authorization: Authorization {
                scopes: session.scopes.clone(),
                session_type: session.session_type.as_str(),
                expires_at: session.expires_at,
                approved_by: session.approved_by.clone(),
                approved_at: session.approved_at,
            },
            delegation_chain: session
                .delegation_chain
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// The kind of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A session began.
    SessionStart,
    /// A call is held for a reviewer (written before anyone is asked, so a
    /// hold that is never decided still shows in the log).
    ApprovalRequested,
    /// A reviewer's decision on a held call was refused (policy does not
    /// accept that reviewer) and the call is held for the other reviewers.
    ApprovalRefused,
    /// A tool call was decided (written before the tool runs).
    Decision,
    /// A tool call that was allowed finished.
    Outcome,
    /// The guest trapped or otherwise failed.
    GuestFault,
    /// A session ended.
    SessionEnd,
}

/// One record body.
#[derive(Debug, Serialize)]
pub struct Record {
    /// What happened.
    pub kind: RecordKind,
    /// Who, for whom, under which grant.
    #[serde(flatten)]
    pub identity: Arc<Identity>,
    /// The call, for decision and outcome records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Question 4: what the agent tried to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRecord>,
    /// Which policies decided, under which set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// Question 6: whether a human approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
    /// What came of an allowed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeRecord>,
    /// Why the guest stopped, for guest faults and session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

// Every field name of `Record` and the `Identity` it flattens is fixed, and
// none is `seq`, `prev_hash`, `timestamp` or `hash`: the test below checks it.
impl crate::audit::FixedKeys for Record {}

impl Record {
    /// A record of `kind` with only the identity filled in.
    pub fn new(kind: RecordKind, identity: &Arc<Identity>) -> Self {
        Record {
            kind,
            identity: Arc::clone(identity),
            call_id: None,
            action: None,
            decision: None,
            approval: None,
            outcome: None,
            detail: None,
        }
    }
}

/// The attempted action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    /// Always `tool_call` for now.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The tool name as the agent asked for it, bounded: a name that no
    /// tool could have is cut and escaped (see `tool_truncated`).
    pub tool: String,
    /// The size and SHA-256 of the name the agent gave, when `tool` is not
    /// all of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_truncated: Option<Truncated>,
    /// Its scope, when the tool exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Arguments with sensitive fields redacted; the raw text when it was
    /// not valid JSON.
    pub arguments: Value,
    /// The Cedar resource, when one could be derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Why the call was refused before or outside policy evaluation, or `policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// The policy decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// Allow or deny; the final word on whether the tool runs.
    pub effect: Effect,
    /// What decided.
    pub decided_by: DecidedBy,
    /// The determining policies of the final evaluation.
    pub determining_policies: Vec<DeterminingPolicy>,
    /// Evaluation errors (each one denies).
    pub errors: Vec<EvaluationError>,
    /// A message for refusals outside policy, cut to
    /// [`crate::limits::RECORDED_TEXT_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The size and SHA-256 of the whole message, when it was cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_truncated: Option<Truncated>,
    /// SHA-256 of the policies, schema and entities that decided.
    pub policy_digest: String,
    /// The Cedar request that was evaluated, so that `mandate audit replay`
    /// can evaluate it again under other policies. Absent when the call was
    /// refused before a request could be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRecord>,
}

/// A call's Cedar request as Cedar JSON (entity references as `__entity`,
/// datetimes as `__extn`).
///
/// `context` holds every attribute but two: `arguments`, which is the
/// record's `action.arguments` (sensitive values there are commitments, so a
/// replay cannot see them), and `approval`, which the guard varies between
/// its evaluations (not granted, granted, granted by `approval.reviewer`).
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct RequestContext {
    /// `session`, `user` and `delegation`, prepared once per session.
    #[serde(flatten)]
    pub session: Arc<serde_json::Map<String, Value>>,
    /// The evaluation time, as a Cedar datetime.
    pub now: Value,
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

/// How a human review ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Policy did not ask for a human.
    NotRequired,
    /// A reviewer approved and policy accepted the reviewer.
    Approved,
    /// A reviewer denied.
    Denied,
    /// No answer before the deadline.
    TimedOut,
    /// The reviewer errored.
    ReviewerFailed,
    /// A reviewer approved but policy does not let that reviewer approve.
    ReviewerNotAllowed,
    /// Nobody was asked: a reviewer's standing grant for the session, given
    /// on an earlier call on the same tool and resource, was reused, and
    /// policy accepted it (`context.approval.standing`). `grant` says which.
    ApprovedByGrant,
}

impl std::fmt::Display for ApprovalOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApprovalOutcome::NotRequired => "not required",
            ApprovalOutcome::Approved => "approved",
            ApprovalOutcome::Denied => "denied",
            ApprovalOutcome::TimedOut => "timed out",
            ApprovalOutcome::ReviewerFailed => "reviewer failed",
            ApprovalOutcome::ReviewerNotAllowed => "reviewer not allowed",
            ApprovalOutcome::ApprovedByGrant => "granted for the session",
        })
    }
}

/// The approval part of a decision record.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRecord {
    /// Whether policy held the call for a human.
    pub required: bool,
    /// How it ended.
    pub outcome: ApprovalOutcome,
    /// The policies that demanded approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub demanded_by: Vec<DeterminingPolicy>,
    /// Which reviewer callback was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer_callback: Option<String>,
    /// The reviewer's user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// When the reviewer decided (or the deadline passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    /// The reviewer's reason, or the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The deadline the reviewer had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// The id of the approval request the reviewer was asked (as in an
    /// approvals queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// How far an approval reaches, when a reviewer approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<GrantScope>,
    /// The standing grant reused, for [`ApprovalOutcome::ApprovedByGrant`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantRef>,
}

/// A reference to the approval that gave a standing grant: the original
/// decision record is `decision_seq` in the same log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRef {
    /// The approval request the reviewer approved for the session.
    pub approval_id: String,
    /// Who approved it.
    pub reviewer: String,
    /// The seq of the decision record of the call it was given on.
    pub decision_seq: u64,
}

impl ApprovalRecord {
    /// No approval was asked for.
    pub fn not_required() -> Self {
        ApprovalRecord {
            required: false,
            outcome: ApprovalOutcome::NotRequired,
            demanded_by: Vec::new(),
            reviewer_callback: None,
            reviewer: None,
            decided_at: None,
            reason: None,
            deadline: None,
            approval_id: None,
            scope: None,
            grant: None,
        }
    }
}

/// Whether an allowed call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The tool returned a result.
    Ok,
    /// The tool failed.
    Failed,
}

/// The outcome part of an outcome record.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeRecord {
    /// Sequence number of the call's decision record.
    pub decision_seq: u64,
    /// Ok or failed.
    pub status: CallStatus,
    /// How long the tool ran, in microseconds.
    pub latency_us: u64,
    /// The tool's error, cut to [`crate::limits::RECORDED_TEXT_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The size and SHA-256 of the whole error, when it was cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_truncated: Option<Truncated>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::pipeline::Session;
    use crate::policy::{Decision, Effect};

    /// `Record` is appended without the reserved and repeated key check
    /// (`FixedKeys`): with every optional part present, its keys pass it.
    #[test]
    fn a_record_with_every_part_has_no_reserved_or_repeated_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let session = Session::from_file(&dir.join("session.json")).unwrap();
        let mut identity = Identity::new(&session, Some("sha256:00".into()));
        identity.authorization.approved_by = Some("carol".into());
        identity.authorization.approved_at = Some(session.expires_at);
        let mut record = Record::new(RecordKind::Decision, &Arc::new(identity));
        record.call_id = Some("s:1".into());
        record.action = Some(ActionRecord {
            kind: "tool_call",
            tool: "send_email".into(),
            tool_truncated: None,
            scope: Some("email:send".into()),
            arguments: json!({ "seq": 1, "hash": "x" }),
            resource: Some("Tool::\"send_email\"".into()),
        });
        let decision = Decision {
            effect: Effect::Allow,
            determining_policies: Vec::new(),
            errors: Vec::new(),
        };
        record.decision = Some(DecisionRecord {
            effect: decision.effect,
            decided_by: DecidedBy::Policy,
            determining_policies: Vec::new(),
            errors: Vec::new(),
            message: Some("m".into()),
            message_truncated: None,
            policy_digest: "d".into(),
            request: Some(RequestRecord {
                principal: "Agent::\"a\"".into(),
                action: "Action::\"send_email\"".into(),
                resource: "Tool::\"send_email\"".into(),
                context: RequestContext {
                    session: Arc::new(serde_json::Map::new()),
                    now: json!("now"),
                },
            }),
        });
        record.approval = Some(ApprovalRecord::not_required());
        record.outcome = Some(OutcomeRecord {
            decision_seq: 1,
            status: CallStatus::Ok,
            latency_us: 1,
            error: Some("e".into()),
            error_truncated: None,
        });
        record.detail = Some(json!({ "timestamp": 1 }));
        crate::audit::check_body_keys(&record).unwrap();
    }
}
