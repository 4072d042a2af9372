//! Step 6 of the call path: the counterfactual approval rule. A call that
//! policy denies, but would allow with `approval.granted`, goes to the
//! reviewer within a deadline; the reviewer's approval counts only if policy
//! allows the call again with that reviewer in the context.

use jiff::Timestamp;

use super::SessionGuard;
use super::approval::{PendingApproval, Verdict};
use super::call::{ToolCallError, uid};
use super::evaluate::ApprovalState;
use super::record::{ApprovalOutcome, ApprovalRecord};
use crate::policy::{Decision, Effect};

/// How the approval step ended, before it is written down.
pub(crate) struct ApprovalResult {
    pub(crate) record: ApprovalRecord,
    pub(crate) decision: Decision,
    pub(crate) error: Option<ToolCallError>,
}

impl SessionGuard {
    /// Step 6: a human decides, within the deadline; then policy decides
    /// whether that reviewer's approval counts.
    pub(crate) async fn ask_reviewer(
        &self,
        pending: PendingApproval,
        decide: &impl Fn(ApprovalState<'_>) -> Result<Decision, String>,
    ) -> ApprovalResult {
        let reviewer = &self.inner.reviewer;
        let mut record = ApprovalRecord {
            required: true,
            outcome: ApprovalOutcome::Denied,
            demanded_by: pending.demanded_by.clone(),
            reviewer_callback: Some(reviewer.name().to_string()),
            reviewer: None,
            decided_at: None,
            reason: None,
            deadline: Some(pending.deadline),
        };
        let wait = pending
            .deadline
            .duration_since(Timestamp::now())
            .unsigned_abs();
        let held = Decision {
            effect: Effect::Deny,
            determining_policies: pending.demanded_by.clone(),
            errors: Vec::new(),
        };
        let answer = tokio::time::timeout(wait, reviewer.review(&pending)).await;
        record.decided_at = Some(Timestamp::now());
        let decision = match answer {
            Err(_) => {
                record.outcome = ApprovalOutcome::TimedOut;
                record.reason = Some(format!("no decision before {}", pending.deadline));
                return ApprovalResult {
                    record,
                    decision: held,
                    error: Some(ToolCallError::ApprovalTimedOut),
                };
            }
            Ok(Err(e)) => {
                record.outcome = ApprovalOutcome::ReviewerFailed;
                record.reason = Some(e.to_string());
                return ApprovalResult {
                    record,
                    decision: held,
                    error: Some(ToolCallError::ApprovalDenied(e.to_string())),
                };
            }
            Ok(Ok(d)) => d,
        };
        record.reviewer = Some(decision.reviewer.clone());
        record.reason = decision.reason.clone();
        if decision.decision == Verdict::Deny {
            record.outcome = ApprovalOutcome::Denied;
            let why = decision
                .reason
                .unwrap_or_else(|| format!("denied by {}", decision.reviewer));
            return ApprovalResult {
                record,
                decision: held,
                error: Some(ToolCallError::ApprovalDenied(why)),
            };
        }
        let reviewer_uid = match uid("User", &decision.reviewer) {
            Ok(u) => u,
            Err(e) => {
                record.outcome = ApprovalOutcome::ReviewerFailed;
                record.reason = Some(e.clone());
                return ApprovalResult {
                    record,
                    decision: held,
                    error: Some(ToolCallError::ApprovalDenied(e)),
                };
            }
        };
        match decide(ApprovalState::GrantedBy(&reviewer_uid)) {
            Ok(d) if d.effect == Effect::Allow => {
                record.outcome = ApprovalOutcome::Approved;
                ApprovalResult {
                    record,
                    decision: d,
                    error: None,
                }
            }
            Ok(d) => {
                record.outcome = ApprovalOutcome::ReviewerNotAllowed;
                let reasons: Vec<String> = d
                    .determining_policies
                    .iter()
                    .map(|p| p.reason.clone().unwrap_or_else(|| p.id.clone()))
                    .chain(d.errors.iter().map(|e| e.message.clone()))
                    .collect();
                let why = format!(
                    "reviewer `{}` may not approve this call: {}",
                    decision.reviewer,
                    if reasons.is_empty() {
                        "no policy permits it".to_string()
                    } else {
                        reasons.join("; ")
                    }
                );
                ApprovalResult {
                    record,
                    decision: d,
                    error: Some(ToolCallError::ApprovalDenied(why)),
                }
            }
            Err(e) => {
                record.outcome = ApprovalOutcome::ReviewerFailed;
                record.reason = Some(e.clone());
                ApprovalResult {
                    record,
                    decision: held,
                    error: Some(ToolCallError::ApprovalDenied(e)),
                }
            }
        }
    }
}
