//! The JSON API behind the review page. Every route needs a reviewer token;
//! a decision is recorded under the token's reviewer, whatever the request
//! body says (it cannot say: unknown fields are refused).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::auth::{Reviewer, Sessions};
use super::source::ReviewQueue;
use super::tokens::ReviewerTokens;
use crate::pipeline::Verdict;
use crate::pipeline::queue::{GrantScope, QueueDecision, QueueError, QueuedApproval};
use crate::pipeline::reveal::{ClearValue, fetch};

/// Longest reason a reviewer may give, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// What every handler shares.
#[derive(Clone)]
pub(super) struct AppState {
    pub(super) queue: Arc<dyn ReviewQueue>,
    pub(super) tokens: Arc<ReviewerTokens>,
    pub(super) sessions: Arc<Sessions>,
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(super) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mandate approvals\""),
            );
        }
        response
    }
}

/// Late and repeated decisions are conflicts the reviewer should read about;
/// anything else is the server's problem.
fn queue_error(e: QueueError) -> ApiError {
    let status = match &e {
        QueueError::NotFound { .. } => StatusCode::NOT_FOUND,
        QueueError::AlreadyDecided { .. } | QueueError::PastDeadline { .. } => StatusCode::CONFLICT,
        QueueError::InvalidDecision { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// A queued approval as the page sees it: the queue's record plus the
/// seconds left before its deadline, by the server's clock.
#[derive(Serialize)]
pub(super) struct Listed {
    #[serde(flatten)]
    approval: QueuedApproval,
    seconds_left: i64,
    /// The clear values of the redacted arguments, when the host holding
    /// the call gives them to this reviewer (`mandate run --reveal-to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    revealed: Option<Vec<ClearValue>>,
}

impl Listed {
    fn new(approval: QueuedApproval, now: Timestamp) -> Self {
        let seconds_left = approval
            .pending
            .deadline
            .duration_since(now)
            .as_secs()
            .max(0);
        Listed {
            approval,
            seconds_left,
            revealed: None,
        }
    }
}

/// `GET /api/whoami`: the token's reviewer, so the page can check a token
/// before it shows anything.
pub(super) async fn whoami(
    Extension(Reviewer(reviewer)): Extension<Reviewer>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({ "reviewer": reviewer })))
}

/// `GET /api/pending`: the approvals still waiting, oldest first.
pub(super) async fn pending(
    State(state): State<AppState>,
    Extension(Reviewer(reviewer)): Extension<Reviewer>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let pending = state.queue.pending().await.map_err(queue_error)?;
    let now = Timestamp::now();
    let dir = state.queue.reveal_dir();
    let mut listed = Vec::with_capacity(pending.len());
    for approval in pending {
        // Only the host holding the call has its clear values, and gives
        // them only to a reviewer it was told to; anything else: none.
        let revealed = match &dir {
            Some(dir) => fetch(dir, &approval.pending.approval_id, &reviewer)
                .await
                .ok(),
            None => None,
        };
        let mut item = Listed::new(approval, now);
        item.revealed = revealed;
        listed.push(item);
    }
    Ok(Json(listed))
}

/// `GET /api/approvals/{id}`: one approval, decided or not.
pub(super) async fn approval(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Listed>, ApiError> {
    match state.queue.get(&id).await.map_err(queue_error)? {
        Some(a) => Ok(Json(Listed::new(a, Timestamp::now()))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no approval `{id}` in the queue"),
        )),
    }
}

/// The body of an approve or deny request. The reviewer is not in it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    scope: Option<GrantScope>,
}

/// `POST /api/approvals/{id}/approve`
pub(super) async fn approve(
    State(state): State<AppState>,
    Extension(reviewer): Extension<Reviewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Listed>, ApiError> {
    decide(state, reviewer, id, body, Verdict::Approve).await
}

/// `POST /api/approvals/{id}/deny`
pub(super) async fn deny(
    State(state): State<AppState>,
    Extension(reviewer): Extension<Reviewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Listed>, ApiError> {
    decide(state, reviewer, id, body, Verdict::Deny).await
}

async fn decide(
    state: AppState,
    Reviewer(reviewer): Reviewer,
    id: String,
    body: Bytes,
    verdict: Verdict,
) -> Result<Json<Listed>, ApiError> {
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not a decision ({e}); send {{\"reason\": \"...\", \"scope\": \"once\"|\"session\"}}, both optional"
                ),
            )
        })?
    };
    let reason = body
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    let decision = QueueDecision {
        verdict,
        reviewer,
        reason,
        scope: body.scope.unwrap_or(GrantScope::Once),
    };
    let decided = state
        .queue
        .decide(&id, &decision)
        .await
        .map_err(queue_error)?;
    Ok(Json(Listed::new(decided, Timestamp::now())))
}

/// Any other path.
pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such page")
}
