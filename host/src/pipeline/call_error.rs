//! What the agent gets back instead of a result, whichever step refused the
//! call: one type for the call path, `dry_run` and the screening `explain`
//! shares.

use super::{GuardError, bounded};

/// What the agent gets back instead of a result. Mirrors the WIT
/// `tool-error` variant; a denial is a value, never a trap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    /// Policies deny the call.
    #[error("denied by {}", if .policies.is_empty() { "default (no policy permits it)".to_string() } else { .policies.join(", ") })]
    Denied {
        /// Determining policy ids (or those that failed to evaluate).
        policies: Vec<String>,
        /// Their reasons.
        reasons: Vec<String>,
    },
    /// A reviewer refused, or a reviewer policy does not accept.
    #[error("approval denied: {0}")]
    ApprovalDenied(String),
    /// Nobody decided in time.
    #[error("approval timed out")]
    ApprovalTimedOut,
    /// The session has expired.
    #[error("session expired")]
    SessionExpired,
    /// No such tool.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The arguments do not fit the tool.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool failed.
    #[error("tool failed: {0}")]
    ToolFailed(String),
    /// The audit log cannot be written; nothing ran.
    #[error("audit unavailable: {0}")]
    AuditUnavailable(String),
}

impl ToolCallError {
    /// The same error with every text it carries cut to
    /// [`crate::limits::RECORDED_TEXT_BYTES`]: what the agent is told is
    /// bounded like what is recorded.
    pub(crate) fn bounded(self) -> Self {
        match self {
            ToolCallError::Denied { policies, reasons } => ToolCallError::Denied {
                policies,
                reasons: reasons.iter().map(|r| bounded::cut(r)).collect(),
            },
            ToolCallError::ApprovalDenied(m) => ToolCallError::ApprovalDenied(bounded::cut(&m)),
            ToolCallError::UnknownTool(m) => ToolCallError::UnknownTool(bounded::cut(&m)),
            ToolCallError::InvalidArguments(m) => ToolCallError::InvalidArguments(bounded::cut(&m)),
            ToolCallError::ToolFailed(m) => ToolCallError::ToolFailed(bounded::cut(&m)),
            ToolCallError::AuditUnavailable(m) => ToolCallError::AuditUnavailable(bounded::cut(&m)),
            e @ (ToolCallError::ApprovalTimedOut | ToolCallError::SessionExpired) => e,
        }
    }
}

/// What the agent is told when the log cannot be written: why, but not where
/// the log lives on the host; its file is named without its directory.
pub(crate) fn audit_unavailable(e: &GuardError) -> ToolCallError {
    let mut message = e.to_string();
    if let GuardError::Audit(audit) = e {
        let path = audit.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        message = message.replace(&path.display().to_string(), &name);
    }
    ToolCallError::AuditUnavailable(message)
}
