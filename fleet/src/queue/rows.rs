//! The queue's SQL and the translation of its rows and refusals into the
//! host's queue types, so that callers match the same errors whichever
//! queue they use.

use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use mandate::pipeline::queue::{
    GrantScope, PendingApproval, QueueError, QueueStatus, QueuedApproval, RefusedInQueue,
};
use tokio_postgres::Row;

/// The channel `mandate_decide` notifies; the payload is the SHA-256 (hex)
/// of the approval id.
pub(super) const CHANNEL: &str = "mandate_approvals";

/// The columns every read selects, from the table or from a function
/// returning its rows. Times travel as microseconds since the epoch, so no
/// date style or time zone setting can change them; whether a pending row
/// is past its deadline is the database's call, by the clock `mandate_decide`
/// uses.
const COLUMNS: &str = "approval_id, pending, \
     (extract(epoch FROM submitted_at) * 1000000)::int8, status, \
     (extract(epoch FROM decided_at) * 1000000)::int8, reviewer, reason, scope, \
     (extract(epoch FROM taken_at) * 1000000)::int8, refused::text, \
     (status = 'pending' AND deadline <= clock_timestamp())";

pub(super) fn submit() -> String {
    "INSERT INTO approvals (approval_id, pending, deadline) VALUES ($1, $2, ($3::text)::timestamptz)"
        .into()
}

pub(super) fn get() -> String {
    format!("SELECT {COLUMNS} FROM approvals WHERE approval_id = $1")
}

pub(super) fn pending() -> String {
    format!(
        "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND deadline > clock_timestamp() \
         ORDER BY submitted_at, approval_id"
    )
}

pub(super) fn recent() -> String {
    format!("SELECT {COLUMNS} FROM approvals ORDER BY submitted_at DESC, approval_id DESC LIMIT $1")
}

pub(super) fn decide() -> String {
    format!("SELECT {COLUMNS} FROM mandate_decide($1, $2, $3, $4, $5)")
}

pub(super) fn expire() -> String {
    format!("SELECT {COLUMNS} FROM mandate_expire($1)")
}

pub(super) fn reopen() -> String {
    format!("SELECT {COLUMNS} FROM mandate_reopen($1, $2, $3)")
}

pub(super) fn taken() -> String {
    "SELECT mandate_mark_taken($1)".into()
}

/// A row as the queue's types see it.
pub(super) fn approval(row: &Row, queue: &str) -> Result<QueuedApproval, QueueError> {
    let id: String = row.try_get(0).map_err(|e| unreadable(queue, "?", e))?;
    let corrupt = |message: String| QueueError::Corrupt {
        path: PathBuf::from(queue),
        id: id.clone(),
        message,
    };
    let column = |e: tokio_postgres::Error| corrupt(e.to_string());
    let time = |field: &str, micros: Option<i64>| -> Result<Option<Timestamp>, QueueError> {
        micros
            .map(|m| Timestamp::from_microsecond(m).map_err(|e| corrupt(format!("`{field}`: {e}"))))
            .transpose()
    };
    let pending_json: String = row.try_get(1).map_err(column)?;
    let pending: PendingApproval =
        serde_json::from_str(&pending_json).map_err(|e| corrupt(format!("`pending`: {e}")))?;
    let submitted_at = time("submitted_at", row.try_get(2).map_err(column)?)?
        .ok_or_else(|| corrupt("no `submitted_at`".into()))?;
    let status: String = row.try_get(3).map_err(column)?;
    let overdue: bool = row.try_get(10).map_err(column)?;
    let status = match (status.as_str(), overdue) {
        ("pending", false) => QueueStatus::Pending,
        ("pending", true) | ("expired", _) => QueueStatus::Expired,
        ("approved", _) => QueueStatus::Approved,
        ("denied", _) => QueueStatus::Denied,
        (other, _) => return Err(corrupt(format!("unknown status `{other}`"))),
    };
    let scope: Option<String> = row.try_get(7).map_err(column)?;
    let scope = scope
        .map(|s| GrantScope::from_str(&s).map_err(|e| corrupt(format!("`scope`: {e}"))))
        .transpose()?;
    let refused: String = row.try_get(9).map_err(column)?;
    let refused: Vec<RefusedInQueue> =
        serde_json::from_str(&refused).map_err(|e| corrupt(format!("`refused`: {e}")))?;
    Ok(QueuedApproval {
        pending,
        status,
        submitted_at,
        decided_at: time("decided_at", row.try_get(4).map_err(column)?)?,
        reviewer: row.try_get(5).map_err(column)?,
        reason: row.try_get(6).map_err(column)?,
        scope,
        taken_at: time("taken_at", row.try_get(8).map_err(column)?)?,
        refused,
    })
}

fn unreadable(queue: &str, id: &str, e: tokio_postgres::Error) -> QueueError {
    QueueError::Corrupt {
        path: PathBuf::from(queue),
        id: id.into(),
        message: e.to_string(),
    }
}

/// What the server said, with its detail and hint, or what went wrong on
/// the way to it.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(hint) = db.hint() {
                text.push_str("; ");
                text.push_str(hint);
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// A refusal of the queue's functions (SQLSTATE `MDnnn`) as the queue
/// error it means; `None` for any other failure.
pub(super) fn refusal(e: &tokio_postgres::Error, id: &str) -> Option<QueueError> {
    let db = e.as_db_error()?;
    let detail: serde_json::Value = db
        .detail()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    Some(match db.code().code() {
        "MD001" => QueueError::NotFound { id: id.into() },
        "MD002" => QueueError::AlreadyDecided {
            id: id.into(),
            status: match detail["status"].as_str() {
                Some("denied") => QueueStatus::Denied,
                Some("expired") => QueueStatus::Expired,
                _ => QueueStatus::Approved,
            },
            reviewer: detail["reviewer"].as_str().map(str::to_string),
        },
        "MD003" => QueueError::PastDeadline {
            id: id.into(),
            deadline: detail["deadline"]
                .as_str()
                .and_then(|d| Timestamp::from_str(d).ok())
                .unwrap_or_else(Timestamp::now),
        },
        "MD004" | "MD005" => QueueError::InvalidDecision {
            id: id.into(),
            message: describe(e),
        },
        _ => return None,
    })
}
