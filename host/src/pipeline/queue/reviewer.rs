//! [`QueueReviewer`]: the guard's side of the queue. It submits each held
//! call and waits for a reviewer, polling the file, until a decision lands or
//! the deadline is near; no thread is blocked while it waits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::{ApprovalQueue, QueueError, QueueStatus};
use crate::pipeline::approval::{
    PendingApproval, RefusedDecision, ReviewDecision, ReviewError, Reviewer,
};
use crate::pipeline::tools::BoxFuture;
use crate::terminal::bounded;

/// How often a waiting call looks at the queue for its decision.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long before the deadline the waiting call closes its approval. From
/// then on the queue refuses decisions, so that one which lands is either in
/// time for the call or refused; never accepted and then ignored.
const CLOSE_MARGIN: Duration = Duration::from_millis(100);

/// A reviewer that puts each held call in an [`ApprovalQueue`] and waits for
/// someone to decide it there (`mandate approvals approve|deny`, the review
/// page, or the host's own code).
///
/// The queue cannot be written: the call is denied (`reviewer_failed`, naming
/// the queue and the error). No decision before the deadline: the approval is
/// marked expired in the queue, later decisions are refused, and the call is
/// denied as timed out.
#[derive(Debug, Clone)]
pub struct QueueReviewer {
    source: Source,
    name: String,
    poll: Duration,
}

/// Where the queue comes from for each review.
#[derive(Debug, Clone)]
enum Source {
    /// One handle, opened by the host.
    Handle(ApprovalQueue),
    /// Opened afresh for every review, so that a file that moved, vanished
    /// or became unwritable is noticed by the next held call.
    Path(PathBuf),
}

impl QueueReviewer {
    /// A reviewer over `queue`.
    pub fn new(queue: ApprovalQueue) -> Self {
        QueueReviewer {
            name: format!("queue:{}", queue.path().display()),
            source: Source::Handle(queue),
            poll: POLL_INTERVAL,
        }
    }

    /// A reviewer that opens the queue at `path` for each held call. A held
    /// call while the file cannot be opened is denied (`reviewer_failed`,
    /// naming the file and the error); nothing waits on a queue no reviewer
    /// can reach.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        QueueReviewer {
            name: format!("queue:{}", path.display()),
            source: Source::Path(path),
            poll: POLL_INTERVAL,
        }
    }

    /// How often to look for a decision; [`POLL_INTERVAL`] by default.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// The queue file.
    pub fn path(&self) -> &Path {
        match &self.source {
            Source::Handle(q) => q.path(),
            Source::Path(p) => p,
        }
    }

    /// The queue for one review.
    async fn open(&self) -> Result<ApprovalQueue, ReviewError> {
        match &self.source {
            Source::Handle(q) => Ok(q.clone()),
            Source::Path(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || ApprovalQueue::open(&path))
                    .await
                    .map_err(|e| self.fail(format!("the queue task failed: {e}")))?
                    .map_err(|e| self.fail(e.to_string()))
            }
        }
    }

    fn fail(&self, message: String) -> ReviewError {
        ReviewError {
            reviewer: self.name.clone(),
            message,
        }
    }

    /// Runs `op` on the blocking pool: SQLite may wait on another process's
    /// lock, and no async worker should wait with it.
    async fn blocking<T: Send + 'static>(
        &self,
        queue: &ApprovalQueue,
        op: impl FnOnce(&ApprovalQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, ReviewError> {
        let queue = queue.clone();
        tokio::task::spawn_blocking(move || op(&queue))
            .await
            .map_err(|e| self.fail(format!("the queue task failed: {e}")))?
            .map_err(|e| self.fail(e.to_string()))
    }

    async fn wait(&self, pending: &PendingApproval) -> Result<ReviewDecision, ReviewError> {
        let queue = self.open().await?;
        let submitted = pending.clone();
        self.blocking(&queue, move |q| q.submit(&submitted)).await?;
        self.wait_decided(&queue, pending).await
    }

    /// The guard refused `refused`: put the approval back to pending for the
    /// other reviewers (the refusal stays on it for the refused one's tool
    /// to show) and wait for the next decision.
    async fn wait_again(
        &self,
        pending: &PendingApproval,
        refused: RefusedDecision,
    ) -> Result<ReviewDecision, ReviewError> {
        let queue = self.open().await?;
        let id = pending.approval_id.clone();
        let reviewer = refused.decision.reviewer.clone();
        let why = refused.why;
        self.blocking(&queue, move |q| q.reopen(&id, &reviewer, &why))
            .await?;
        self.wait_decided(&queue, pending).await
    }

    /// Waits until the pending approval in `queue` is decided or closed.
    async fn wait_decided(
        &self,
        queue: &ApprovalQueue,
        pending: &PendingApproval,
    ) -> Result<ReviewDecision, ReviewError> {
        let queue = queue.clone();
        let id = pending.approval_id.clone();
        // From here on, a call that stops waiting (deadline, cancelled
        // session) leaves its approval expired, not pending.
        let mut expire = ExpireOnDrop {
            queue: queue.clone(),
            id: Some(id.clone()),
        };
        let left = pending
            .deadline
            .duration_since(Timestamp::now())
            .unsigned_abs();
        let close_at =
            tokio::time::Instant::now() + left.saturating_sub(CLOSE_MARGIN.min(left / 4));
        loop {
            let lookup = id.clone();
            let current = self.blocking(&queue, move |q| q.get(&lookup)).await?;
            let now = tokio::time::Instant::now();
            let current = match current {
                Some(c) if c.status == QueueStatus::Pending && now >= close_at => {
                    let closing = id.clone();
                    self.blocking(&queue, move |q| q.expire(&closing)).await?
                }
                other => other,
            };
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
                    // The MAC binds the decision to the call as the queue
                    // showed it; that must be the call this host holds.
                    if !current.holds(pending) {
                        return Err(self.fail(format!(
                            "unauthenticated_decision: the call shown in the queue for approval `{id}` is not the call that is held; the decision is refused"
                        )));
                    }
                    return current.review_decision().map_err(|e| self.fail(e));
                }
                QueueStatus::Unauthenticated => {
                    expire.disarm();
                    return Err(self.fail(format!(
                        "unauthenticated_decision: approval `{id}` is marked decided by `{}` in the queue file, but the decision does not carry a valid MAC of the queue key; it was not written by mandate's reviewer tools and is refused",
                        bounded(current.reviewer.as_deref().unwrap_or("nobody"), 64),
                    )));
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
            }
            let now = tokio::time::Instant::now();
            let next = (now + self.poll).min(close_at.max(now));
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Marks the approval expired if the waiting future is dropped while it is
/// still pending, so that no reviewer decides a call nobody waits for.
struct ExpireOnDrop {
    queue: ApprovalQueue,
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
        let queue = self.queue.clone();
        // Best effort: if this fails the row reads as expired anyway once
        // its deadline passes, and decide refuses it then.
        let expire = move || {
            let _ = queue.expire(&id);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(expire);
            }
            Err(_) => expire(),
        }
    }
}

impl Reviewer for QueueReviewer {
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
            if let Ok(queue) = self.open().await {
                let id = pending.approval_id.clone();
                let _ = self.blocking(&queue, move |q| q.mark_taken(&id)).await;
            }
        })
    }
}
