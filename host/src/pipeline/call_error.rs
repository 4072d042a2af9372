//! What the agent gets back instead of a result, whichever step refused the
//! call: one type for the call path, `dry_run` and the screening `explain`
//! shares.

use super::request::RequestError;
use super::tools::ArgumentsError;
use super::{GuardError, bounded};
use crate::policy::ArgumentError;

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
    /// The arguments do not fit the tool. The WIT `invalid-arguments`
    /// carries `problem` only; `field` is for the host (and its
    /// [`super::CallReport`]).
    #[error("invalid arguments: {problem}")]
    InvalidArguments {
        /// The field at fault, when one is: a path into the arguments such
        /// as `to` or `attachments[2].name`.
        field: Option<String>,
        /// What is wrong, as the agent and the decision record are told it
        /// (it names the field too).
        problem: String,
    },
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
            ToolCallError::InvalidArguments { field, problem } => ToolCallError::InvalidArguments {
                field: field.map(|f| bounded::cut(&f)),
                problem: bounded::cut(&problem),
            },
            ToolCallError::ToolFailed(m) => ToolCallError::ToolFailed(bounded::cut(&m)),
            ToolCallError::AuditUnavailable(m) => ToolCallError::AuditUnavailable(bounded::cut(&m)),
            e @ (ToolCallError::ApprovalTimedOut | ToolCallError::SessionExpired) => e,
        }
    }

    /// The field of the arguments at fault, for `invalid-arguments` that
    /// one field caused: a path such as `to` or `attachments[2].name`.
    pub fn field(&self) -> Option<&str> {
        match self {
            ToolCallError::InvalidArguments { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

/// Why the call path refuses a call's arguments, as data; formatted into
/// [`ToolCallError::InvalidArguments`] (its `problem` text) only when the
/// agent and the record are told.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArgumentProblem {
    /// The text is not JSON; serde_json's message, with line and column.
    #[error("arguments are not valid json: {message}")]
    NotJson {
        /// serde_json's message.
        message: String,
    },
    /// The tool refuses them (its resource argument, its typed struct).
    #[error(transparent)]
    Tool(#[from] ArgumentsError),
    /// A value Cedar cannot hold (`null`, a fraction).
    #[error(transparent)]
    NotCedar(#[from] ArgumentError),
    /// They do not fit the context the schema declares for the action.
    #[error("arguments do not match the schema of action `{action}`: {cause}")]
    NotInSchema {
        /// The tool's action, `Action::"<tool>"`.
        action: String,
        /// The schema's refusal (it names `context.arguments.<path>`).
        cause: RequestError,
    },
    /// As the decision record would write them, they exceed
    /// [`crate::limits::RECORDED_ARGUMENTS_BYTES`].
    #[error(
        "arguments take {recorded} bytes in the audit record, over the limit of {limit}; pass less"
    )]
    TooLarge {
        /// Their size in the record.
        recorded: usize,
        /// The limit.
        limit: usize,
    },
}

impl ArgumentProblem {
    /// The field at fault, as a path into the arguments, when one is.
    fn field(&self) -> Option<String> {
        match self {
            ArgumentProblem::Tool(e) => e.field().map(str::to_string),
            // Converted from the root `arguments` (see `screening`).
            ArgumentProblem::NotCedar(e) => e
                .path
                .strip_prefix("arguments")
                .map(|rest| rest.strip_prefix('.').unwrap_or(rest))
                .filter(|rest| !rest.is_empty())
                .map(str::to_string),
            ArgumentProblem::NotJson { .. }
            | ArgumentProblem::NotInSchema { .. }
            | ArgumentProblem::TooLarge { .. } => None,
        }
    }
}

impl From<ArgumentProblem> for ToolCallError {
    fn from(problem: ArgumentProblem) -> Self {
        ToolCallError::InvalidArguments {
            field: problem.field(),
            problem: problem.to_string(),
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
