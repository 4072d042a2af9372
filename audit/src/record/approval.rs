//! Question 6: whether a human approved the call, and by whom; and how far an approval reaches.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::PolicyRef;

/// How a human review ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl ApprovalOutcome {
    /// Whether a reviewer's approval let the call run: asked now, or given earlier for the
    /// session.
    pub fn is_approval(self) -> bool {
        matches!(
            self,
            ApprovalOutcome::Approved | ApprovalOutcome::ApprovedByGrant
        )
    }
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

/// How far a reviewer's approval reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    /// This call only.
    #[default]
    Once,
    /// This call and every later call of the same session on the same tool
    /// and resource that policy holds for approval, if policy accepts the
    /// standing grant then; each reuse is recorded with a reference to this
    /// approval.
    Session,
}

impl GrantScope {
    /// `once` or `session`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantScope::Once => "once",
            GrantScope::Session => "session",
        }
    }

    /// Whether this is [`GrantScope::Once`].
    pub fn is_once(&self) -> bool {
        *self == GrantScope::Once
    }
}

impl std::fmt::Display for GrantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant scope that is neither `once` nor `session`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grant scope `{0}`: use `once` or `session`")]
pub struct UnknownGrantScope(pub String);

impl std::str::FromStr for GrantScope {
    type Err = UnknownGrantScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(GrantScope::Once),
            "session" => Ok(GrantScope::Session),
            other => Err(UnknownGrantScope(other.to_string())),
        }
    }
}

/// The approval part of a decision record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Whether policy held the call for a human.
    #[serde(default)]
    pub required: bool,
    /// How it ended.
    pub outcome: ApprovalOutcome,
    /// The policies that demanded approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demanded_by: Vec<PolicyRef>,
    /// Which reviewer callback was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_callback: Option<String>,
    /// The reviewer's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// When the reviewer decided (or the deadline passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    /// The reviewer's reason, or the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The deadline the reviewer had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// The id of the approval request the reviewer was asked (as in an
    /// approvals queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// How far an approval reaches, when a reviewer approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<GrantScope>,
    /// The standing grant reused, for [`ApprovalOutcome::ApprovedByGrant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantRef>,
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

    /// The reviewer whose approval let the call run, if one did.
    pub fn approved_by(&self) -> Option<&str> {
        self.outcome
            .is_approval()
            .then_some(self.reviewer.as_deref())
            .flatten()
    }
}

/// A reference to the approval that gave a standing grant: the original
/// decision record is `decision_seq` in the same log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef {
    /// The approval request the reviewer approved for the session.
    pub approval_id: String,
    /// Who approved it.
    pub reviewer: String,
    /// The seq of the decision record of the call it was given on.
    pub decision_seq: u64,
}
