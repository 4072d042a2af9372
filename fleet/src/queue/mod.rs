//! The approvals queue on the fleet's PostgreSQL: many hosts hold calls in
//! one queue, any reviewer decides any of them, and the waiting host hears
//! of a decision at once (`LISTEN`/`NOTIFY`), not by polling.
//!
//! The same operations as the host's file queue
//! ([`mandate::pipeline::queue::ApprovalQueue`]), with its types and its
//! errors, so that the CLI and the guard treat both alike. What differs is
//! who vouches for a decision: the file queue's MAC, here the database. A
//! host is its login role (it inserts and reads only its own calls), a
//! decision is recorded by `mandate_decide` in the name of the reviewer's
//! login role, and nobody updates a row directly (migration 3,
//! `fleet/migrations/0003_approvals.sql`).
//!
//! ```no_run
//! # async fn decide() -> Result<(), mandate::pipeline::queue::QueueError> {
//! use mandate::pipeline::Verdict;
//! use mandate::pipeline::queue::{GrantScope, QueueDecision};
//! use mandate_fleet::queue::PgApprovalQueue;
//!
//! let queue = PgApprovalQueue::connect("postgresql://carol@db.internal/mandate").await?;
//! for waiting in queue.pending().await? {
//!     println!("{} {}", waiting.pending.approval_id, waiting.pending.tool);
//! }
//! queue
//!     .decide(
//!         "apr:sess_example_01:3:9f2c41d0",
//!         &QueueDecision {
//!             verdict: Verdict::Approve,
//!             reviewer: "carol".into(),
//!             reason: None,
//!             scope: GrantScope::Once,
//!         },
//!     )
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod connection;
mod review;
mod reviewer;
mod rows;
mod url;

use std::sync::Arc;

use jiff::Timestamp;
use mandate::pipeline::Verdict;
use mandate::pipeline::queue::{PendingApproval, QueueDecision, QueueError, QueuedApproval};
use tokio_postgres::types::ToSql;

pub use connection::{CONNECT_TIMEOUT, STATEMENT_TIMEOUT};
use connection::{Live, Shared, Statement};
pub use reviewer::{CLOSE_MARGIN, PgQueueReviewer, RECHECK_INTERVAL};
pub use url::{is_database_url, without_password};

/// A handle on the approvals queue in the fleet's database: one connection,
/// opened when first needed and again whenever it is lost, shared by every
/// clone and every call waiting through it. Cheap to clone.
#[derive(Clone)]
pub struct PgApprovalQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgApprovalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgApprovalQueue")
            .field("url", &self.shared.shown)
            .finish()
    }
}

impl PgApprovalQueue {
    /// A queue at `url` (`postgres://` or `postgresql://`), connected when
    /// first used. Only the URL is checked here.
    pub fn open(url: &str) -> Result<Self, QueueError> {
        let shown = without_password(url);
        if !is_database_url(url) {
            return Err(QueueError::Unavailable {
                queue: shown,
                message: "not a database url; give `postgresql://<role>@<host>/<database>`".into(),
            });
        }
        crate::connect::parse(url).map_err(|e| QueueError::Unavailable {
            queue: shown.clone(),
            message: e.to_string(),
        })?;
        Ok(PgApprovalQueue {
            shared: Shared::new(url, shown),
        })
    }

    /// A queue at `url`, connected now: an unreachable database, a refused
    /// login or a database not migrated to this build is said at once.
    pub async fn connect(url: &str) -> Result<Self, QueueError> {
        let queue = Self::open(url)?;
        queue.shared.live().await?;
        Ok(queue)
    }

    /// Connects and checks that the login may hold calls in the queue (is a
    /// member of `mandate_host`): what a host checks before an agent starts.
    pub async fn check_host(&self) -> Result<(), QueueError> {
        self.check_member("mandate_host", "hold calls in the queue")
            .await
    }

    /// Connects and checks that the login may decide (is a member of
    /// `mandate_reviewer`).
    pub async fn check_reviewer(&self) -> Result<(), QueueError> {
        self.check_member("mandate_reviewer", "decide approvals")
            .await
    }

    async fn check_member(&self, group: &str, may: &str) -> Result<(), QueueError> {
        let live = self.shared.live().await?;
        let row = self
            .shared
            .run(&live, "checking the login's role", async {
                live.database
                    .client
                    .query_one(
                        "SELECT session_user::text, pg_has_role(session_user, $1::text, 'MEMBER')",
                        &[&group],
                    )
                    .await
            })
            .await?;
        let login: String = row.get(0);
        if !row.get::<_, bool>(1) {
            return Err(self.shared.unavailable(format!(
                "the database login `{login}` may not {may}: it is not a member of `{group}`; the database owner can run `GRANT {group} TO \"{login}\"`"
            )));
        }
        Ok(())
    }

    /// The queue's URL without its password.
    pub fn url(&self) -> &str {
        &self.shared.shown
    }

    /// Puts a held call in the queue, pending, in the name of this login.
    pub async fn submit(&self, pending: &PendingApproval) -> Result<(), QueueError> {
        let json = serde_json::to_string(pending).map_err(|e| QueueError::Corrupt {
            path: self.shared.shown.clone().into(),
            id: pending.approval_id.clone(),
            message: format!("cannot encode it: {e}"),
        })?;
        // Microseconds are all the database keeps; rounded down, so that
        // it never accepts a decision the host would call late.
        let micros = pending.deadline.as_nanosecond().div_euclid(1000);
        let deadline = i64::try_from(micros)
            .ok()
            .and_then(|m| Timestamp::from_microsecond(m).ok())
            .ok_or_else(|| QueueError::InvalidDecision {
                id: pending.approval_id.clone(),
                message: format!("the deadline {} is out of range", pending.deadline),
            })?
            .to_string();
        let result = self
            .execute(
                Statement::Submit,
                "submitting an approval",
                &[&pending.approval_id, &json, &deadline],
            )
            .await;
        match result {
            Err(Failed::Db(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                Err(QueueError::Duplicate {
                    id: pending.approval_id.clone(),
                })
            }
            other => other.map(|_| ()).map_err(|f| self.error(f, "submitting")),
        }
    }

    /// The approvals waiting for a decision whose deadline has not passed,
    /// oldest first: every host's for a reviewer, its own for a host.
    pub async fn pending(&self) -> Result<Vec<QueuedApproval>, QueueError> {
        self.rows(Statement::Pending, "listing the pending approvals", &[])
            .await
    }

    /// The most recently submitted approvals, whatever their status, newest
    /// first, at most `limit` of them.
    pub async fn recent(&self, limit: usize) -> Result<Vec<QueuedApproval>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(Statement::Recent, "listing the recent approvals", &[&limit])
            .await
    }

    /// One approval, if this login may see it.
    pub async fn get(&self, approval_id: &str) -> Result<Option<QueuedApproval>, QueueError> {
        Ok(self
            .rows(Statement::Get, "reading an approval", &[&approval_id])
            .await?
            .pop())
    }

    /// Records a reviewer's decision in the name of this database login.
    /// `decision.reviewer` must be the login role, or a role the login is a
    /// member of ([`QueueError::InvalidDecision`] otherwise: the decision is
    /// authenticated by the login, not by the name given). Refused, leaving
    /// the queue as it was, when the approval is unknown
    /// ([`QueueError::NotFound`]), already decided
    /// ([`QueueError::AlreadyDecided`]) or past its deadline
    /// ([`QueueError::PastDeadline`]). Of two decisions at once exactly one
    /// lands: the row is locked while it is decided.
    pub async fn decide(
        &self,
        approval_id: &str,
        decision: &QueueDecision,
    ) -> Result<QueuedApproval, QueueError> {
        let reviewer = decision.reviewer.trim();
        if reviewer.is_empty() {
            return Err(QueueError::InvalidDecision {
                id: approval_id.to_string(),
                message: "the reviewer's user id is empty".into(),
            });
        }
        let verdict = match decision.verdict {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        };
        let scope = decision.scope.as_str();
        self.one(
            Statement::Decide,
            "recording a decision",
            approval_id,
            &[&approval_id, &verdict, &decision.reason, &scope, &reviewer],
        )
        .await
    }

    /// Puts this host's approval that `reviewer` decided back to pending,
    /// keeping the refused decision and `why` on it: policy does not accept
    /// that reviewer. [`QueueError::PastDeadline`] if its deadline passed
    /// meanwhile (it is then expired, the refusal kept).
    pub async fn reopen(
        &self,
        approval_id: &str,
        reviewer: &str,
        why: &str,
    ) -> Result<QueuedApproval, QueueError> {
        let reopened = self
            .one(
                Statement::Reopen,
                "reopening an approval",
                approval_id,
                &[&approval_id, &reviewer, &why],
            )
            .await?;
        if reopened.status == mandate::pipeline::queue::QueueStatus::Expired {
            return Err(QueueError::PastDeadline {
                id: approval_id.to_string(),
                deadline: reopened.pending.deadline,
            });
        }
        Ok(reopened)
    }

    /// Marks this host's decided approval as taken (policy accepted it).
    pub async fn mark_taken(&self, approval_id: &str) -> Result<(), QueueError> {
        self.execute(
            Statement::Taken,
            "marking a decision taken",
            &[&approval_id],
        )
        .await
        .map(|_| ())
        .map_err(|f| self.error(f, "marking a decision taken"))
    }

    /// Closes this host's still-pending approval (its call stopped
    /// waiting) and returns it as it now stands: a decision that landed
    /// first is returned as it is.
    pub async fn expire(&self, approval_id: &str) -> Result<Option<QueuedApproval>, QueueError> {
        Ok(self
            .rows(Statement::Expire, "closing an approval", &[&approval_id])
            .await?
            .pop())
    }

    async fn execute(
        &self,
        statement: Statement,
        doing: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Failed> {
        let live: Arc<Live> = self.shared.live().await.map_err(Failed::Queue)?;
        let prepared = live.statement(statement);
        match self
            .shared
            .run_raw(&live, doing, live.database.client.query(prepared, params))
            .await
        {
            Ok(rows) => Ok(rows),
            Err(RunError::Lost(e)) => Err(Failed::Queue(e)),
            Err(RunError::Db(e)) => Err(Failed::Db(e)),
        }
    }

    async fn rows(
        &self,
        statement: Statement,
        doing: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<QueuedApproval>, QueueError> {
        let rows = self
            .execute(statement, doing, params)
            .await
            .map_err(|f| self.error(f, doing))?;
        rows.iter()
            .map(|row| rows::approval(row, &self.shared.shown))
            .collect()
    }

    /// A statement on one approval whose refusals mean something.
    async fn one(
        &self,
        statement: Statement,
        doing: &str,
        approval_id: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<QueuedApproval, QueueError> {
        let rows = match self.execute(statement, doing, params).await {
            Ok(rows) => rows,
            Err(Failed::Db(e)) => {
                return Err(rows::refusal(&e, approval_id)
                    .unwrap_or_else(|| self.error(Failed::Db(e), doing)));
            }
            Err(f) => return Err(self.error(f, doing)),
        };
        match rows.first() {
            Some(row) => rows::approval(row, &self.shared.shown),
            None => Err(QueueError::NotFound {
                id: approval_id.to_string(),
            }),
        }
    }

    fn error(&self, failed: Failed, doing: &str) -> QueueError {
        match failed {
            Failed::Queue(e) => e,
            Failed::Db(e) => self.shared.unavailable(format!(
                "the database refused {doing}: {}",
                rows::describe(&e)
            )),
        }
    }

    /// Registers interest in `approval_id`'s notifications: the returned
    /// waiter is woken when a decision on it is committed, and whenever the
    /// connection was lost (a notification may have been missed).
    pub(crate) fn waiter(&self, approval_id: &str) -> connection::Waiter {
        self.shared.waiter(approval_id)
    }
}

/// How a statement failed: the queue is unusable (said), or the server
/// refused it (to be read).
enum Failed {
    Queue(QueueError),
    Db(tokio_postgres::Error),
}

/// How running a statement failed.
pub(crate) enum RunError {
    /// The connection is gone or did not answer in time; dropped.
    Lost(QueueError),
    /// The server answered with an error.
    Db(tokio_postgres::Error),
}
