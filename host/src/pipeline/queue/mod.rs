//! The pending-approvals queue: a built-in reviewer that keeps every held
//! call in an embedded SQLite database until someone decides it, from any
//! process that can open the file (`mandate approvals ...`, the review page,
//! or the host's own code).
//!
//! [`QueueReviewer`] submits the [`PendingApproval`] and waits, without
//! blocking a thread, until a decision lands or the guard's deadline passes.
//! [`ApprovalQueue::decide`] refuses a decision that comes too late, one on
//! an approval already decided, and one on an approval it does not know, and
//! says which. The file survives restarts of whoever reads it: a pending
//! approval stays pending until it is decided or its deadline passes.
//!
//! ```no_run
//! # fn main() -> Result<(), mandate::pipeline::queue::QueueError> {
//! use mandate::pipeline::Verdict;
//! use mandate::pipeline::queue::{ApprovalQueue, GrantScope, QueueDecision};
//!
//! let queue = ApprovalQueue::open("approvals.sqlite".as_ref())?;
//! for waiting in queue.pending()? {
//!     println!("{} {} {}", waiting.pending.approval_id, waiting.pending.tool, waiting.pending.resource);
//! }
//! queue.decide(
//!     "apr:sess_example_01:3:9f2c41d0",
//!     &QueueDecision {
//!         verdict: Verdict::Approve,
//!         reviewer: "carol".into(),
//!         reason: Some("internal recipient".into()),
//!         scope: GrantScope::Once,
//!     },
//! )?;
//! # Ok(())
//! # }
//! ```

mod files;
mod mac;
mod reviewer;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

pub use super::approval::{GrantScope, PendingApproval, Verdict};
pub use reviewer::{POLL_INTERVAL, QueueReviewer};

/// Where a held call stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// Waiting for a reviewer; its deadline has not passed.
    Pending,
    /// A reviewer approved (policy still decides whether that reviewer counts).
    Approved,
    /// A reviewer denied.
    Denied,
    /// Nobody decided before the deadline; the call was denied as timed out.
    Expired,
    /// The row says approved or denied, but its MAC does not check: the
    /// decision was written by something other than Mandate's reviewer tools
    /// (another user, a direct SQL `UPDATE`). Refused: the waiting call is
    /// denied (`refused_unauthenticated`).
    Unauthenticated,
}

impl QueueStatus {
    /// `pending`, `approved`, `denied` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Pending => "pending",
            QueueStatus::Approved => "approved",
            QueueStatus::Denied => "denied",
            QueueStatus::Expired => "expired",
            QueueStatus::Unauthenticated => "unauthenticated",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => QueueStatus::Pending,
            "approved" => QueueStatus::Approved,
            "denied" => QueueStatus::Denied,
            "expired" => QueueStatus::Expired,
            _ => return None,
        })
    }
}

impl std::fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reviewer's decision on one queued approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDecision {
    /// Approve or deny.
    pub verdict: Verdict,
    /// The reviewer's user id; policy decides whether that user may approve.
    pub reviewer: String,
    /// Why; shown to the agent on denial and written in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// This call only, or the rest of the session for the same tool and
    /// resource.
    #[serde(default)]
    pub scope: GrantScope,
}

/// One held call as the queue knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedApproval {
    /// What the reviewer is asked to decide.
    pub pending: PendingApproval,
    /// Where it stands. A pending approval whose deadline has passed reads as
    /// [`QueueStatus::Expired`].
    pub status: QueueStatus,
    /// When the guard put it in the queue.
    pub submitted_at: Timestamp,
    /// When it was decided or marked expired.
    pub decided_at: Option<Timestamp>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// The reviewer's reason.
    pub reason: Option<String>,
    /// How far an approval reaches.
    pub scope: Option<GrantScope>,
    /// When the host took the decision as final (policy accepted the
    /// reviewer); `None` while it has not, or not yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<Timestamp>,
    /// Decisions the host refused because policy does not accept their
    /// reviewer, oldest first; each put the approval back to pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedInQueue>,
}

impl QueuedApproval {
    /// Whether the queue's copy of the held call is the call `held` the
    /// host submitted (a queue another writer changed is not trusted).
    pub fn holds(&self, held: &PendingApproval) -> bool {
        match (
            serde_json::to_value(&self.pending),
            serde_json::to_value(held),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// The reviewer's answer, for an approval that was approved or denied;
    /// an error saying so when it names no reviewer (a queue written by
    /// something other than Mandate).
    pub fn review_decision(&self) -> Result<super::approval::ReviewDecision, String> {
        let Some(reviewer) = self.reviewer.clone() else {
            return Err(format!(
                "approval `{}` was decided without a reviewer",
                crate::terminal::bounded(&self.pending.approval_id, 128)
            ));
        };
        Ok(super::approval::ReviewDecision {
            decision: if self.status == QueueStatus::Approved {
                Verdict::Approve
            } else {
                Verdict::Deny
            },
            reviewer,
            reason: self.reason.clone(),
            scope: self.scope.unwrap_or(GrantScope::Once),
        })
    }
}

/// A decision the host refused: policy does not accept its reviewer, so it
/// did not end the hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedInQueue {
    /// Who decided.
    pub reviewer: String,
    /// What they decided.
    pub verdict: Verdict,
    /// When they decided.
    pub decided_at: Timestamp,
    /// Their reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the host refused it.
    pub refused_at: Timestamp,
    /// Why policy does not accept them.
    pub why: String,
}

/// Why the queue could not do what was asked. A guard that cannot submit or
/// read a pending approval denies the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database file cannot be opened or created.
    #[error(
        "cannot open the approvals queue `{path}`: {error}; check that its directory exists and is writable"
    )]
    Open {
        /// The queue file.
        path: PathBuf,
        /// SQLite's reason.
        error: rusqlite::Error,
    },
    /// The database refused a read or a write.
    #[error("approvals queue `{path}`: {error}")]
    Sqlite {
        /// The queue file.
        path: PathBuf,
        /// SQLite's reason.
        error: rusqlite::Error,
    },
    /// The file was made by a newer Mandate with another layout.
    #[error(
        "approvals queue `{path}` has layout version {found}, this mandate reads version {expected}; use the mandate that made it, or another file"
    )]
    Layout {
        /// The queue file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The version this build reads.
        expected: i64,
    },
    /// A stored approval cannot be read back.
    #[error("approvals queue `{path}`: approval `{id}` is unreadable: {message}")]
    Corrupt {
        /// The queue file.
        path: PathBuf,
        /// The approval.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A queue file or its directory could be read or written by someone
    /// else, or is not what it should be; nothing in it is trusted.
    #[error("cannot open the approvals queue `{queue}`: `{path}` is refused: {message}")]
    Unsafe {
        /// The queue file.
        queue: PathBuf,
        /// The file or directory refused.
        path: PathBuf,
        /// What is wrong, with a hint.
        message: String,
    },
    /// The approval id is already in the queue.
    #[error("approval `{id}` is already in the queue; approval ids are never reused")]
    Duplicate {
        /// The approval.
        id: String,
    },
    /// No approval has this id.
    #[error("no approval `{id}` in the queue; `mandate approvals list` shows the pending ones")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The approval was decided before; a decision stands once made.
    #[error("approval `{id}` was already {status}{}; a decision cannot be changed", by(.reviewer))]
    AlreadyDecided {
        /// The approval.
        id: String,
        /// How it was decided.
        status: QueueStatus,
        /// By whom.
        reviewer: Option<String>,
    },
    /// The deadline passed: the call was denied as timed out and the
    /// decision was not recorded.
    #[error(
        "approval `{id}`: decision refused, the deadline {deadline} has passed and the call was denied as timed out; your decision was not recorded"
    )]
    PastDeadline {
        /// The approval.
        id: String,
        /// Its deadline.
        deadline: Timestamp,
    },
    /// A queue shared through a database (the fleet's) cannot be reached,
    /// or failed a statement. `queue` names it without any password.
    #[error("approvals queue `{queue}`: {message}")]
    Unavailable {
        /// The queue, e.g. `postgresql://host1@db.internal/mandate`.
        queue: String,
        /// What failed, with a hint.
        message: String,
    },
    /// The decision itself is malformed.
    #[error("approval `{id}`: {message}")]
    InvalidDecision {
        /// The approval.
        id: String,
        /// What is wrong.
        message: String,
    },
}

fn by(reviewer: &Option<String>) -> String {
    reviewer
        .as_ref()
        .map(|r| format!(" by `{r}`"))
        .unwrap_or_default()
}

/// A handle on one queue file. Cheap to clone; clones share one connection.
/// Any number of processes may open the same file at once (SQLite in WAL
/// mode, waiting on each other's locks).
#[derive(Clone)]
pub struct ApprovalQueue {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Authenticates decisions (see [`mac`]); read from `<queue>.key`.
    key: [u8; files::KEY_LEN],
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for ApprovalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalQueue")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl ApprovalQueue {
    /// Opens the queue at `path`, creating the file (0600), its tables and
    /// its key (`<path>.key`, 0600) if they do not exist. The directory must
    /// exist.
    ///
    /// Refused ([`QueueError::Unsafe`]) when the directory is a symbolic
    /// link, belongs to another user or is writable by others, or when the
    /// queue file, its `-wal`/`-shm` files or the key is a symbolic link,
    /// belongs to another user or is readable or writable by others.
    pub fn open(path: &Path) -> Result<ApprovalQueue, QueueError> {
        files::prepare(path)?;
        let conn = store::open(path)?;
        let key = files::key(path)?;
        Ok(ApprovalQueue {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                key,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The queue file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Puts a held call in the queue, pending.
    pub fn submit(&self, pending: &PendingApproval) -> Result<(), QueueError> {
        self.with(|conn, path, _| store::submit(conn, path, pending, Timestamp::now()))
    }

    /// The approvals waiting for a decision whose deadline has not passed,
    /// oldest first.
    pub fn pending(&self) -> Result<Vec<QueuedApproval>, QueueError> {
        self.with(|conn, path, key| store::pending(conn, path, key, Timestamp::now()))
    }

    /// The most recently submitted approvals, whatever their status, newest
    /// first, at most `limit` of them.
    pub fn recent(&self, limit: usize) -> Result<Vec<QueuedApproval>, QueueError> {
        self.with(|conn, path, key| store::recent(conn, path, key, limit, Timestamp::now()))
    }

    /// One approval, if the queue has it.
    pub fn get(&self, approval_id: &str) -> Result<Option<QueuedApproval>, QueueError> {
        self.with(|conn, path, key| store::get(conn, path, key, approval_id, Timestamp::now()))
    }

    /// Records a reviewer's decision. Refused, leaving the queue as it was,
    /// when the approval is unknown ([`QueueError::NotFound`]), already
    /// decided ([`QueueError::AlreadyDecided`]) or past its deadline
    /// ([`QueueError::PastDeadline`]; the call was denied as timed out).
    pub fn decide(
        &self,
        approval_id: &str,
        decision: &QueueDecision,
    ) -> Result<QueuedApproval, QueueError> {
        if decision.reviewer.trim().is_empty() {
            return Err(QueueError::InvalidDecision {
                id: approval_id.to_string(),
                message: "the reviewer's user id is empty".into(),
            });
        }
        self.with(|conn, path, key| {
            store::decide(conn, path, key, approval_id, decision, Timestamp::now())
        })
    }

    /// Puts an approval that `reviewer` decided back to pending, keeping
    /// the refused decision and `why` on it: the host refused the decision
    /// because policy does not accept that reviewer.
    pub fn reopen(
        &self,
        approval_id: &str,
        reviewer: &str,
        why: &str,
    ) -> Result<QueuedApproval, QueueError> {
        self.with(|conn, path, key| {
            store::reopen(
                conn,
                path,
                key,
                approval_id,
                reviewer,
                why,
                Timestamp::now(),
            )
        })
    }

    /// Marks a decided approval as taken by the host (policy accepted it).
    pub fn mark_taken(&self, approval_id: &str) -> Result<(), QueueError> {
        self.with(|conn, path, _| store::taken(conn, path, approval_id, Timestamp::now()))
    }

    /// Marks a still-pending approval expired (its waiting call gave up) and
    /// returns it as it now stands; a decided one is left as it is.
    pub fn expire(&self, approval_id: &str) -> Result<Option<QueuedApproval>, QueueError> {
        self.with(|conn, path, key| store::expire(conn, path, key, approval_id, Timestamp::now()))
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection, &Path, &[u8; files::KEY_LEN]) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so the connection is still usable.
        let mut conn = match self.inner.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut conn, &self.inner.path, &self.inner.key)
    }
}
