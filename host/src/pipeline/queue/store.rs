//! The SQLite side of the queue: the file, its one table, and each
//! operation as one transaction, so that processes sharing the file see
//! every approval either before or after a decision, never half-way.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::mac::Decided;
use super::{
    GrantScope, PendingApproval, QueueDecision, QueueError, QueueStatus, QueuedApproval,
    RefusedInQueue,
};
use crate::pipeline::approval::Verdict;

/// The layout this build reads and writes (`PRAGMA user_version`). Layout 2
/// adds the decision MAC, the decisions the host refused and when the host
/// took a decision; a layout 1 file is upgraded (its decided rows then carry
/// no MAC and read as unauthenticated).
const LAYOUT: i64 = 2;

/// How long to wait for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    resource TEXT NOT NULL,
    pending TEXT NOT NULL,
    deadline TEXT NOT NULL,
    deadline_ms INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    decided_at TEXT,
    reviewer TEXT,
    reason TEXT,
    scope TEXT,
    mac TEXT,
    refusals TEXT,
    taken_at TEXT
);
CREATE INDEX IF NOT EXISTS approvals_by_status ON approvals (status, submitted_ms);
";

const COLUMNS: &str = "approval_id, pending, submitted_at, status, decided_at, reviewer, reason, scope, mac, \
     refusals, taken_at";

pub(super) fn open(path: &Path) -> Result<Connection, QueueError> {
    let fail = |error| QueueError::Open {
        path: path.to_path_buf(),
        error,
    };
    // Never follow a symbolic link, even one made after the checks in
    // `files` (the directory is private, so none should appear).
    let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let mut conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // WAL lets reviewers read while a guard writes, across processes.
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(fail)?;
    // Readers of an existing queue need no write lock (and no write access).
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    if version == LAYOUT {
        return Ok(conn);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    if version > LAYOUT {
        return Err(QueueError::Layout {
            path: path.to_path_buf(),
            found: version,
            expected: LAYOUT,
        });
    }
    if version == 1 {
        tx.execute_batch(
            "ALTER TABLE approvals ADD COLUMN mac TEXT;
             ALTER TABLE approvals ADD COLUMN refusals TEXT;
             ALTER TABLE approvals ADD COLUMN taken_at TEXT;",
        )
        .map_err(fail)?;
    }
    tx.execute_batch(TABLES).map_err(fail)?;
    tx.pragma_update(None, "user_version", LAYOUT)
        .map_err(fail)?;
    tx.commit().map_err(fail)?;
    Ok(conn)
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
    move |error| QueueError::Sqlite {
        path: path.to_path_buf(),
        error,
    }
}

/// A row as stored, before the deadline is taken into account.
struct Stored {
    id: String,
    pending: String,
    submitted_at: String,
    status: String,
    decided_at: Option<String>,
    reviewer: Option<String>,
    reason: Option<String>,
    scope: Option<String>,
    mac: Option<String>,
    refusals: Option<String>,
    taken_at: Option<String>,
}

fn stored(r: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: r.get(0)?,
        pending: r.get(1)?,
        submitted_at: r.get(2)?,
        status: r.get(3)?,
        decided_at: r.get(4)?,
        reviewer: r.get(5)?,
        reason: r.get(6)?,
        scope: r.get(7)?,
        mac: r.get(8)?,
        refusals: r.get(9)?,
        taken_at: r.get(10)?,
    })
}

impl Stored {
    /// The approval as of `now`: a pending one past its deadline is expired;
    /// a decision whose MAC does not check is unauthenticated.
    fn read(self, path: &Path, key: &[u8], now: Timestamp) -> Result<QueuedApproval, QueueError> {
        let corrupt = |message: String| QueueError::Corrupt {
            path: path.to_path_buf(),
            id: self.id.clone(),
            message,
        };
        let time = |field: &str, text: &str| {
            Timestamp::from_str(text).map_err(|e| corrupt(format!("`{field}` `{text}`: {e}")))
        };
        let pending: PendingApproval =
            serde_json::from_str(&self.pending).map_err(|e| corrupt(format!("`pending`: {e}")))?;
        let mut status = QueueStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown status `{}`", self.status)))?;
        if status == QueueStatus::Pending && pending.deadline <= now {
            status = QueueStatus::Expired;
        }
        if matches!(status, QueueStatus::Approved | QueueStatus::Denied) {
            let decided = Decided {
                approval_id: &self.id,
                status: &self.status,
                reviewer: self.reviewer.as_deref().unwrap_or(""),
                reason: self.reason.as_deref(),
                decided_at: self.decided_at.as_deref().unwrap_or(""),
                scope: self.scope.as_deref().unwrap_or(""),
                pending_json: &self.pending,
            };
            if !decided.verify(key, self.mac.as_deref()) {
                status = QueueStatus::Unauthenticated;
            }
        }
        let scope = match &self.scope {
            Some(s) => Some(GrantScope::from_str(s).map_err(|e| corrupt(format!("`scope`: {e}")))?),
            None => None,
        };
        let refused: Vec<RefusedInQueue> = match &self.refusals {
            Some(text) => {
                serde_json::from_str(text).map_err(|e| corrupt(format!("`refusals`: {e}")))?
            }
            None => Vec::new(),
        };
        Ok(QueuedApproval {
            refused,
            taken_at: match &self.taken_at {
                Some(t) => Some(time("taken_at", t)?),
                None => None,
            },
            submitted_at: time("submitted_at", &self.submitted_at)?,
            decided_at: match &self.decided_at {
                Some(t) => Some(time("decided_at", t)?),
                None => None,
            },
            pending,
            status,
            reviewer: self.reviewer,
            reason: self.reason,
            scope,
        })
    }
}

fn select_one(conn: &Connection, path: &Path, id: &str) -> Result<Option<Stored>, QueueError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM approvals WHERE approval_id = ?1"),
        [id],
        stored,
    )
    .optional()
    .map_err(sql(path))
}

pub(super) fn submit(
    conn: &mut Connection,
    path: &Path,
    pending: &PendingApproval,
    now: Timestamp,
) -> Result<(), QueueError> {
    let json = serde_json::to_string(pending).map_err(|e| QueueError::Corrupt {
        path: path.to_path_buf(),
        id: pending.approval_id.clone(),
        message: format!("cannot encode it: {e}"),
    })?;
    let inserted = conn
        .execute(
            "INSERT INTO approvals (approval_id, session_id, call_id, tool, resource, pending,
                 deadline, deadline_ms, submitted_at, submitted_ms, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending')
             ON CONFLICT (approval_id) DO NOTHING",
            params![
                pending.approval_id,
                pending.session_id,
                pending.call_id,
                pending.tool,
                pending.resource,
                json,
                pending.deadline.to_string(),
                pending.deadline.as_millisecond(),
                now.to_string(),
                now.as_millisecond(),
            ],
        )
        .map_err(sql(path))?;
    if inserted == 0 {
        return Err(QueueError::Duplicate {
            id: pending.approval_id.clone(),
        });
    }
    Ok(())
}

pub(super) fn pending(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    now: Timestamp,
) -> Result<Vec<QueuedApproval>, QueueError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND deadline_ms >= ?1
             ORDER BY submitted_ms, approval_id"
        ))
        .map_err(sql(path))?;
    let rows = stmt
        .query_map([now.as_millisecond()], stored)
        .map_err(sql(path))?;
    let mut out = Vec::new();
    for row in rows {
        let approval = row.map_err(sql(path))?.read(path, key, now)?;
        // The millisecond filter above is coarse; the deadline itself decides.
        if approval.status == QueueStatus::Pending {
            out.push(approval);
        }
    }
    Ok(out)
}

pub(super) fn recent(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    limit: usize,
    now: Timestamp,
) -> Result<Vec<QueuedApproval>, QueueError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM approvals ORDER BY submitted_ms DESC, approval_id DESC LIMIT ?1"
        ))
        .map_err(sql(path))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], stored).map_err(sql(path))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql(path))?.read(path, key, now)?);
    }
    Ok(out)
}

pub(super) fn get(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    id: &str,
    now: Timestamp,
) -> Result<Option<QueuedApproval>, QueueError> {
    select_one(conn, path, id)?
        .map(|s| s.read(path, key, now))
        .transpose()
}

pub(super) fn decide(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    id: &str,
    decision: &QueueDecision,
    now: Timestamp,
) -> Result<QueuedApproval, QueueError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(path))?;
    let Some(row) = select_one(&tx, path, id)? else {
        return Err(QueueError::NotFound { id: id.to_string() });
    };
    let stored_status = row.status.clone();
    let pending_json = row.pending.clone();
    let current = row.read(path, key, now)?;
    match (stored_status.as_str(), current.status) {
        ("pending", QueueStatus::Pending) => {}
        ("pending", _) => {
            // Past its deadline and nobody marked it yet: do so, so that the
            // queue shows what happened to the call.
            mark_expired(&tx, path, id, now)?;
            tx.commit().map_err(sql(path))?;
            return Err(past_deadline(&current));
        }
        (_, QueueStatus::Expired) => return Err(past_deadline(&current)),
        (_, status) => {
            return Err(QueueError::AlreadyDecided {
                id: id.to_string(),
                status,
                reviewer: current.reviewer,
            });
        }
    }
    let status = match decision.verdict {
        Verdict::Approve => QueueStatus::Approved,
        Verdict::Deny => QueueStatus::Denied,
    };
    let decided_at = now.to_string();
    let mac = Decided {
        approval_id: id,
        status: status.as_str(),
        reviewer: &decision.reviewer,
        reason: decision.reason.as_deref(),
        decided_at: &decided_at,
        scope: decision.scope.as_str(),
        pending_json: &pending_json,
    }
    .mac(key);
    tx.execute(
        "UPDATE approvals SET status = ?2, decided_at = ?3, reviewer = ?4, reason = ?5, scope = ?6,
             mac = ?7
         WHERE approval_id = ?1 AND status = 'pending'",
        params![
            id,
            status.as_str(),
            decided_at,
            decision.reviewer,
            decision.reason,
            decision.scope.as_str(),
            mac,
        ],
    )
    .map_err(sql(path))?;
    tx.commit().map_err(sql(path))?;
    Ok(QueuedApproval {
        status,
        decided_at: Some(now),
        reviewer: Some(decision.reviewer.clone()),
        reason: decision.reason.clone(),
        scope: Some(decision.scope),
        ..current
    })
}

pub(super) fn expire(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    id: &str,
    now: Timestamp,
) -> Result<Option<QueuedApproval>, QueueError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(path))?;
    mark_expired(&tx, path, id, now)?;
    let row = select_one(&tx, path, id)?;
    tx.commit().map_err(sql(path))?;
    row.map(|s| s.read(path, key, now)).transpose()
}

fn mark_expired(
    conn: &Connection,
    path: &Path,
    id: &str,
    now: Timestamp,
) -> Result<(), QueueError> {
    conn.execute(
        "UPDATE approvals SET status = 'expired', decided_at = ?2
         WHERE approval_id = ?1 AND status = 'pending'",
        params![id, now.to_string()],
    )
    .map_err(sql(path))?;
    Ok(())
}

fn past_deadline(approval: &QueuedApproval) -> QueueError {
    QueueError::PastDeadline {
        id: approval.pending.approval_id.clone(),
        deadline: approval.pending.deadline,
    }
}

/// The host refused the decision on `id` by `reviewer` (policy does not
/// accept that reviewer): the approval is pending again for the others, and
/// the refusal is kept on it so that the refused reviewer's tool can say so.
/// Only an authenticated decision by that reviewer is reopened; anything
/// else is left as it is and said.
pub(super) fn reopen(
    conn: &mut Connection,
    path: &Path,
    key: &[u8],
    id: &str,
    reviewer: &str,
    why: &str,
    now: Timestamp,
) -> Result<QueuedApproval, QueueError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(path))?;
    let Some(row) = select_one(&tx, path, id)? else {
        return Err(QueueError::NotFound { id: id.to_string() });
    };
    let current = row.read(path, key, now)?;
    let verdict = match current.status {
        QueueStatus::Approved => Verdict::Approve,
        QueueStatus::Denied => Verdict::Deny,
        status => {
            return Err(QueueError::InvalidDecision {
                id: id.to_string(),
                message: format!("cannot reopen it: it is {status}, not decided by `{reviewer}`"),
            });
        }
    };
    if current.reviewer.as_deref() != Some(reviewer) {
        return Err(QueueError::InvalidDecision {
            id: id.to_string(),
            message: format!(
                "cannot reopen it: it was decided by `{}`, not by `{reviewer}`",
                current.reviewer.as_deref().unwrap_or("nobody")
            ),
        });
    }
    if current.pending.deadline <= now {
        mark_expired_decided(&tx, path, id, now)?;
        tx.commit().map_err(sql(path))?;
        return Err(past_deadline(&current));
    }
    let mut refused = current.refused.clone();
    refused.push(RefusedInQueue {
        reviewer: reviewer.to_string(),
        verdict,
        decided_at: current.decided_at.unwrap_or(now),
        reason: current.reason.clone(),
        refused_at: now,
        why: why.to_string(),
    });
    let refusals = serde_json::to_string(&refused).map_err(|e| QueueError::Corrupt {
        path: path.to_path_buf(),
        id: id.to_string(),
        message: format!("cannot encode its refusals: {e}"),
    })?;
    tx.execute(
        "UPDATE approvals SET status = 'pending', decided_at = NULL, reviewer = NULL,
             reason = NULL, scope = NULL, mac = NULL, taken_at = NULL, refusals = ?2
         WHERE approval_id = ?1",
        params![id, refusals],
    )
    .map_err(sql(path))?;
    tx.commit().map_err(sql(path))?;
    Ok(QueuedApproval {
        status: QueueStatus::Pending,
        decided_at: None,
        reviewer: None,
        reason: None,
        scope: None,
        taken_at: None,
        refused,
        ..current
    })
}

/// A decision that came after the deadline (refused and reopened too late):
/// the approval ends expired.
fn mark_expired_decided(
    conn: &Connection,
    path: &Path,
    id: &str,
    now: Timestamp,
) -> Result<(), QueueError> {
    conn.execute(
        "UPDATE approvals SET status = 'expired', decided_at = ?2, mac = NULL
         WHERE approval_id = ?1",
        params![id, now.to_string()],
    )
    .map_err(sql(path))?;
    Ok(())
}

/// The host took the decision on `id` as final.
pub(super) fn taken(
    conn: &mut Connection,
    path: &Path,
    id: &str,
    now: Timestamp,
) -> Result<(), QueueError> {
    conn.execute(
        "UPDATE approvals SET taken_at = ?2
         WHERE approval_id = ?1 AND status IN ('approved', 'denied') AND taken_at IS NULL",
        params![id, now.to_string()],
    )
    .map_err(sql(path))?;
    Ok(())
}
