//! [`ReviewQueue`]: the queue the review page shows and decides, whichever
//! store holds it: the approvals queue file ([`ApprovalQueue`]), or the
//! fleet's database (`mandate_fleet::queue::PgApprovalQueue`).

use std::path::PathBuf;

use crate::pipeline::BoxFuture;
use crate::pipeline::queue::{ApprovalQueue, QueueDecision, QueueError, QueuedApproval};

/// What the review page needs of a queue.
pub trait ReviewQueue: Send + Sync + 'static {
    /// The approvals waiting for a decision, oldest first.
    fn pending(&self) -> BoxFuture<'_, Result<Vec<QueuedApproval>, QueueError>>;
    /// One approval, if the queue has it.
    fn get<'a>(
        &'a self,
        approval_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<QueuedApproval>, QueueError>>;
    /// Records a reviewer's decision; see [`ApprovalQueue::decide`].
    fn decide<'a>(
        &'a self,
        approval_id: &'a str,
        decision: &'a QueueDecision,
    ) -> BoxFuture<'a, Result<QueuedApproval, QueueError>>;
    /// Where hosts holding calls in this queue answer for clear values
    /// (`mandate run --reveal-to`); `None` when no host can (a database
    /// queue: the hosts are on other machines).
    fn reveal_dir(&self) -> Option<PathBuf>;
}

/// Runs an operation on the file queue (SQLite, blocking) off the async workers.
async fn blocking<T: Send + 'static>(
    queue: &ApprovalQueue,
    op: impl FnOnce(&ApprovalQueue) -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    let queue = queue.clone();
    let path = queue.path().to_path_buf();
    tokio::task::spawn_blocking(move || op(&queue))
        .await
        .unwrap_or_else(|e| {
            Err(QueueError::Unavailable {
                queue: path.display().to_string(),
                message: format!("the queue's task failed: {e}"),
            })
        })
}

impl ReviewQueue for ApprovalQueue {
    fn pending(&self) -> BoxFuture<'_, Result<Vec<QueuedApproval>, QueueError>> {
        Box::pin(blocking(self, ApprovalQueue::pending))
    }

    fn get<'a>(
        &'a self,
        approval_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<QueuedApproval>, QueueError>> {
        let id = approval_id.to_owned();
        Box::pin(blocking(self, move |q| q.get(&id)))
    }

    fn decide<'a>(
        &'a self,
        approval_id: &'a str,
        decision: &'a QueueDecision,
    ) -> BoxFuture<'a, Result<QueuedApproval, QueueError>> {
        let (id, decision) = (approval_id.to_owned(), decision.clone());
        Box::pin(blocking(self, move |q| q.decide(&id, &decision)))
    }

    fn reveal_dir(&self) -> Option<PathBuf> {
        Some(crate::pipeline::reveal::socket_dir_for_queue(self.path()))
    }
}
