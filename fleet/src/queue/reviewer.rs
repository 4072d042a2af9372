//! [`PgQueueReviewer`]: the guard's side of the fleet's queue. It submits
//! each held call and waits, without polling and without blocking a thread,
//! for the notification that a reviewer decided it; then reads the row.

use std::time::Duration;

use jiff::Timestamp;
use mandate::pipeline::queue::{QueueError, QueueStatus};
use mandate::pipeline::{
    BoxFuture, PendingApproval, RefusedDecision, ReviewDecision, ReviewError, Reviewer,
};
use tokio::time::Instant;

use super::PgApprovalQueue;

/// How long before the deadline the waiting call closes its approval. From
/// then on the database refuses decisions, so that one which lands is
/// either in time for the call or refused; never accepted and then ignored.
pub const CLOSE_MARGIN: Duration = Duration::from_millis(100);

/// How often a waiting call reads its approval even without a notification:
/// a safety net only (a notification is never expected to go missing: the
/// host listens before it submits, and reads again after every reconnect).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The first and the longest pause between attempts to reach a database
/// that went away while a call waits.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A reviewer that puts each held call in the fleet's approvals queue and
/// waits for someone to decide it there (`mandate approvals approve|deny
/// --queue postgresql://...`, the review page, or any reviewer's tool).
///
/// Fails closed: a call that cannot be submitted is denied at once
/// (`reviewer_failed`, naming the queue and the error). If the connection
/// is lost while a call waits, the call keeps waiting and the connection is
/// opened again; a decision made meanwhile reaches it. No decision before
/// the deadline: the approval is closed in the queue, later decisions are
/// refused, and the call is denied as timed out.
#[derive(Debug, Clone)]
pub struct PgQueueReviewer {
    queue: PgApprovalQueue,
    name: String,
    recheck: Duration,
}

impl PgQueueReviewer {
    /// A reviewer over `queue`. Every call held through it shares the
    /// queue's one connection.
    pub fn new(queue: PgApprovalQueue) -> Self {
        PgQueueReviewer {
            name: format!("queue:{}", queue.url()),
            queue,
            recheck: RECHECK_INTERVAL,
        }
    }

    /// How often to read a waiting approval without a notification;
    /// [`RECHECK_INTERVAL`] by default.
    pub fn recheck_every(mut self, every: Duration) -> Self {
        self.recheck = every.max(Duration::from_millis(1));
        self
    }

    /// The queue.
    pub fn queue(&self) -> &PgApprovalQueue {
        &self.queue
    }

    fn fail(&self, message: String) -> ReviewError {
        ReviewError {
            reviewer: self.name.clone(),
            message,
        }
    }

    async fn wait(&self, pending: &PendingApproval) -> Result<ReviewDecision, ReviewError> {
        // Listening before the row exists: no decision can come unheard.
        let waiter = self.queue.waiter(&pending.approval_id);
        self.queue
            .submit(pending)
            .await
            .map_err(|e| self.fail(e.to_string()))?;
        self.wait_decided(&waiter, pending).await
    }

    /// The guard refused `refused`: put the approval back to pending for
    /// the other reviewers (the refusal stays on it for the refused one's
    /// tool to show) and wait for the next decision.
    async fn wait_again(
        &self,
        pending: &PendingApproval,
        refused: RefusedDecision,
    ) -> Result<ReviewDecision, ReviewError> {
        let waiter = self.queue.waiter(&pending.approval_id);
        let id = &pending.approval_id;
        let reviewer = &refused.decision.reviewer;
        let mut retry = RETRY_FIRST;
        loop {
            match self.queue.reopen(id, reviewer, &refused.why).await {
                Ok(_) => break,
                // The database is away: the refusal must be recorded before
                // the approval is anyone's again, so try until it is back
                // (the guard's deadline ends this).
                Err(QueueError::Unavailable { .. }) => {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(self.fail(e.to_string())),
            }
        }
        self.wait_decided(&waiter, pending).await
    }

    /// Waits until the pending approval is decided or closed.
    async fn wait_decided(
        &self,
        waiter: &super::connection::Waiter,
        pending: &PendingApproval,
    ) -> Result<ReviewDecision, ReviewError> {
        let id = pending.approval_id.clone();
        // From here on, a call that stops waiting (deadline, cancelled
        // session) leaves its approval expired, not pending.
        let mut expire = ExpireOnDrop {
            queue: self.queue.clone(),
            id: Some(id.clone()),
        };
        let left = pending
            .deadline
            .duration_since(Timestamp::now())
            .unsigned_abs();
        let close_at = Instant::now() + left.saturating_sub(CLOSE_MARGIN.min(left / 4));
        let mut retry = RETRY_FIRST;
        loop {
            let closing = Instant::now() >= close_at;
            let read = if closing {
                self.queue.expire(&id).await
            } else {
                self.queue.get(&id).await
            };
            let current = match read {
                Ok(current) => current,
                Err(QueueError::Unavailable { .. }) => {
                    // Lost the database: keep waiting and try again; the
                    // next statement opens a new connection. Until the
                    // approval is closed, a decision can still land, and
                    // after the deadline the database refuses any.
                    let pause = if closing {
                        retry
                    } else {
                        retry.min(close_at.saturating_duration_since(Instant::now()))
                    };
                    tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
                Err(e) => {
                    expire.disarm();
                    return Err(self.fail(e.to_string()));
                }
            };
            retry = RETRY_FIRST;
            let Some(current) = current else {
                expire.disarm();
                return Err(self.fail(format!(
                    "approval `{id}` disappeared from the queue while the call waited"
                )));
            };
            match current.status {
                QueueStatus::Pending => {}
                QueueStatus::Approved | QueueStatus::Denied => {
                    expire.disarm();
                    if !current.holds(pending) {
                        return Err(self.fail(format!(
                            "the call shown in the queue for approval `{id}` is not the call that is held; the decision is refused"
                        )));
                    }
                    return current.review_decision().map_err(|e| self.fail(e));
                }
                QueueStatus::Expired => {
                    expire.disarm();
                    // The guard's own deadline ends the wait and records the
                    // call as timed out; wait a little past it so that this
                    // error is seen only by a caller without a deadline.
                    let left = pending
                        .deadline
                        .duration_since(Timestamp::now())
                        .unsigned_abs();
                    tokio::time::sleep(left + Duration::from_secs(1)).await;
                    return Err(self.fail(format!(
                        "approval `{id}`: no decision before the deadline {}",
                        pending.deadline
                    )));
                }
                other => {
                    expire.disarm();
                    return Err(self.fail(format!(
                        "approval `{id}` is {other} in the queue, which this host does not take"
                    )));
                }
            }
            let now = Instant::now();
            let next = (now + self.recheck).min(close_at.max(now));
            tokio::select! {
                () = waiter.notified() => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// Closes the approval if the waiting future is dropped while it is still
/// pending, so that no reviewer decides a call nobody waits for.
struct ExpireOnDrop {
    queue: PgApprovalQueue,
    id: Option<String>,
}

impl ExpireOnDrop {
    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for ExpireOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        // Best effort: if this fails, the row reads as expired once its
        // deadline passes, and the database refuses decisions then.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let queue = self.queue.clone();
            handle.spawn(async move {
                let _ = queue.expire(&id).await;
            });
        }
    }
}

impl Reviewer for PgQueueReviewer {
    fn name(&self) -> &str {
        &self.name
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(self.wait(pending))
    }

    fn review_again<'a>(
        &'a self,
        pending: &'a PendingApproval,
        refused: RefusedDecision,
    ) -> Option<BoxFuture<'a, Result<ReviewDecision, ReviewError>>> {
        Some(Box::pin(self.wait_again(pending, refused)))
    }

    fn decision_taken<'a>(&'a self, pending: &'a PendingApproval) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Best effort: it only lets the reviewer's tool say the decision
            // stands; the call's outcome does not depend on it.
            let _ = self.queue.mark_taken(&pending.approval_id).await;
        })
    }
}
