//! The review page over the fleet's queue (`mandate approvals serve --queue
//! postgresql://...`). The page's server logs in as one database role and
//! decides in the name of each token's reviewer: the database accepts that
//! only for reviewers whose roles that login was granted (`GRANT carol TO
//! review_page`), so a token can never decide as a reviewer the operator
//! did not hand to the page.

use std::path::PathBuf;

use mandate::pipeline::BoxFuture;
use mandate::pipeline::queue::{QueueDecision, QueueError, QueuedApproval};
use mandate::review_server::ReviewQueue;

use super::PgApprovalQueue;

impl ReviewQueue for PgApprovalQueue {
    fn pending(&self) -> BoxFuture<'_, Result<Vec<QueuedApproval>, QueueError>> {
        Box::pin(PgApprovalQueue::pending(self))
    }

    fn get<'a>(
        &'a self,
        approval_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<QueuedApproval>, QueueError>> {
        Box::pin(PgApprovalQueue::get(self, approval_id))
    }

    fn decide<'a>(
        &'a self,
        approval_id: &'a str,
        decision: &'a QueueDecision,
    ) -> BoxFuture<'a, Result<QueuedApproval, QueueError>> {
        Box::pin(PgApprovalQueue::decide(self, approval_id, decision))
    }

    /// The hosts holding the calls are on other machines: none answers here.
    fn reveal_dir(&self) -> Option<PathBuf> {
        None
    }
}
