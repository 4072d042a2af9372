//! Step 6 of the call path: the counterfactual approval rule. A call that
//! policy denies, but would allow with `approval.granted`, is decided by a
//! standing grant of the session if policy accepts it, else goes to the
//! reviewer within a deadline; the reviewer's approval counts only if policy
//! allows the call again with that reviewer in the context.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use super::admit::Admitted;
use crate::pipeline::SessionGuard;
use crate::pipeline::approval::{
    GrantScope, PendingApproval, RefusedDecision, ReviewDecision, ReviewError, Verdict,
};
use crate::pipeline::call_error::{ToolCallError, audit_unavailable};
use crate::pipeline::evaluate::{ApprovalState, Screening};
use crate::pipeline::record::{
    ActionRecord, ApprovalOutcome, ApprovalRecord, GrantRef, Identity, Record, RecordKind, ToRecord,
};
use crate::pipeline::request::{RequestError, entity_uid};
use crate::pipeline::reveal::{RevealServer, Revealed};
use crate::policy::{Decision, DeterminingPolicy, Effect, Policies};

/// How the approval step ended, before it is written down.
pub(crate) struct ApprovalResult {
    pub(crate) record: ApprovalRecord,
    pub(crate) decision: Decision,
    pub(crate) error: Option<ToolCallError>,
    /// A reviewer approved for the rest of the session: the approval id and
    /// the reviewer, to remember once the decision record has its seq.
    pub(crate) session_grant: Option<(String, String)>,
    /// When a reviewer's answer was decided again, if it was: the `now` of
    /// the deciding evaluation, later than the screening's.
    pub(crate) evaluated_at: Option<Timestamp>,
}

impl ApprovalResult {
    /// Policy decided without a human.
    pub(crate) fn screened(decision: Decision, error: Option<ToolCallError>) -> Self {
        ApprovalResult {
            record: ApprovalRecord::not_required(),
            decision,
            error,
            session_grant: None,
            evaluated_at: None,
        }
    }

    fn refused(record: ApprovalRecord, decision: Decision, error: ToolCallError) -> Self {
        ApprovalResult {
            record,
            decision,
            error: Some(error),
            session_grant: None,
            evaluated_at: None,
        }
    }
}

/// The standing grants of one session: for each (tool, resource), the
/// latest approval a reviewer gave for the rest of the session.
#[derive(Debug, Default)]
pub(crate) struct SessionGrants {
    by_call: Mutex<HashMap<(String, String), GrantRef>>,
}

impl SessionGrants {
    /// The grant for `tool` on `resource`, if a reviewer gave one. A lock
    /// poisoned by a panic elsewhere reads as no grant: the reviewer is
    /// asked again, never skipped.
    pub(crate) fn get(&self, tool: &str, resource: &str) -> Option<GrantRef> {
        let grants = self.by_call.lock().ok()?;
        grants
            .get(&(tool.to_string(), resource.to_string()))
            .cloned()
    }

    /// Remembers `grant` for later calls on `tool` and `resource`.
    pub(crate) fn remember(&self, tool: &str, resource: &str, grant: GrantRef) {
        if let Ok(mut grants) = self.by_call.lock() {
            grants.insert((tool.to_string(), resource.to_string()), grant);
        }
    }
}

impl SessionGuard {
    /// Step 6 for an admitted call: settled by the screening, or else by a
    /// standing grant policy accepts, or else by a reviewer.
    pub(super) async fn approve(
        &self,
        policies: &Policies,
        call_id: &str,
        admitted: &Admitted<'_>,
    ) -> ApprovalResult {
        let screened = &admitted.screened;
        let demanded_by = match settled(policies, screened.screening.clone()) {
            Ok(settled) => return settled,
            Err(demanded_by) => demanded_by,
        };
        let decide = |approval: ApprovalState<'_>| screened.decide(policies, approval);
        let tool = &admitted.action.tool;
        let resource = screened.request.resource().to_string();
        // A standing grant for this tool and resource decides without a
        // human, if policy accepts it for this call.
        let standing = self
            .grants
            .get(tool, &resource)
            .and_then(|grant| self.use_grant(&grant, &demanded_by, &decide));
        if let Some(granted) = standing {
            return granted;
        }
        // A reviewer may answer minutes later: the call is decided again at
        // the time of the answer, not at the time it was held, so
        // `context.now` and the expiry are current.
        let decide_at = |approval: ApprovalState<'_>, at: Timestamp| {
            screened
                .request
                .at(at)?
                .decide(policies, &screened.entities, approval)
        };
        let pending = PendingApproval {
            approval_id: approval_id(call_id),
            session_id: self.session.session_id.clone(),
            call_id: call_id.to_string(),
            tool: tool.clone(),
            arguments: admitted.action.arguments.clone(),
            resource,
            user: self.session.user.clone(),
            agent: self.session.agent.clone(),
            delegation_chain: self.session.delegation_chain.clone(),
            demanded_by,
            // No approval outlives the session it is for.
            deadline: deadline(screened.request.time(), self.inner.approval_timeout)
                .min(self.session.expires_at),
            revealed: Revealed::collect(
                &self.inner.reveal.allowed,
                &admitted.action.arguments,
                &admitted.clear_args,
            ),
        };
        self.ask_reviewer(pending, &admitted.action, &decide_at)
            .await
    }

    /// Step 6 with a standing grant: the reviewer who approved an earlier
    /// call on the same tool and resource for the session is put in
    /// `context.approval` with `standing: true`. `None` when policy does not
    /// accept the grant for this call: the reviewer is asked as usual.
    fn use_grant(
        &self,
        grant: &GrantRef,
        demanded_by: &[DeterminingPolicy],
        decide: &impl Fn(ApprovalState<'_>) -> Result<Decision, RequestError>,
    ) -> Option<ApprovalResult> {
        let reviewer = entity_uid("User", &grant.reviewer).ok()?;
        match decide(ApprovalState::Standing(&reviewer)) {
            Ok(d) if d.effect == Effect::Allow => Some(ApprovalResult {
                record: ApprovalRecord {
                    required: true,
                    outcome: ApprovalOutcome::ApprovedByGrant,
                    demanded_by: demanded_by.to_record(),
                    reviewer: Some(grant.reviewer.clone()),
                    scope: Some(GrantScope::Session),
                    grant: Some(grant.clone()),
                    ..ApprovalRecord::not_required()
                },
                decision: d,
                error: None,
                session_grant: None,
                evaluated_at: None,
            }),
            _ => None,
        }
    }

    /// Step 6: the hold is recorded, then a human decides within the
    /// deadline; then policy decides, at the time of the answer, whether
    /// that reviewer's approval counts.
    async fn ask_reviewer(
        &self,
        pending: PendingApproval,
        action: &ActionRecord,
        decide_at: &impl Fn(ApprovalState<'_>, Timestamp) -> Result<Decision, RequestError>,
    ) -> ApprovalResult {
        let reviewer = &self.inner.reviewer;
        let mut record = ApprovalRecord {
            required: true,
            outcome: ApprovalOutcome::Denied,
            demanded_by: pending.demanded_by.to_record(),
            reviewer_callback: Some(reviewer.name().to_string()),
            reviewer: None,
            decided_at: None,
            reason: None,
            deadline: Some(pending.deadline),
            approval_id: Some(pending.approval_id.clone()),
            scope: None,
            grant: None,
        };
        let held = Decision {
            effect: Effect::Deny,
            determining_policies: pending.demanded_by.clone(),
            errors: Vec::new(),
        };
        // Durable before anyone is asked: a host killed while the call waits
        // leaves the hold in the log. Unrecordable means not asked.
        if let Err(e) = self
            .write(hold_record(&self.identity, &pending, action, &record))
            .await
        {
            record.outcome = ApprovalOutcome::ReviewerFailed;
            record.reason = Some(format!("the hold could not be recorded: {e}"));
            return ApprovalResult::refused(record, held, audit_unavailable(&e));
        }
        // A deadline already past (the session expires now) waits not at all.
        let wait = std::time::Duration::try_from(pending.deadline.duration_since(Timestamp::now()))
            .unwrap_or(std::time::Duration::ZERO);
        // Reviewer tools in other processes may ask for the clear values
        // while the call is held; the socket goes when the hold ends (this
        // function returns). A socket that cannot be served only means they
        // see commitments.
        let _revealing = match &self.inner.reveal.socket_dir {
            Some(dir) if !pending.revealed.is_empty() => {
                RevealServer::start(dir, &pending.approval_id, pending.revealed.clone()).ok()
            }
            _ => None,
        };
        let until = tokio::time::Instant::now() + wait;
        let mut asking = reviewer.review(&pending);
        loop {
            let answer = tokio::time::timeout_at(until, asking).await;
            let judged = self.judge(answer, &pending, record.clone(), &held, decide_at);
            let (result, refused) = match judged {
                Judged::Final(result) => (result, None),
                Judged::NotAccepted(result, refused, by) => (result, Some((refused, by))),
            };
            let from_reviewer = matches!(
                result.record.outcome,
                ApprovalOutcome::Approved
                    | ApprovalOutcome::Denied
                    | ApprovalOutcome::ReviewerNotAllowed
            );
            // A reviewer others share hands the approval back to them: one
            // reviewer policy does not accept does not end the hold.
            let again = refused.and_then(|(r, by)| {
                let shown = refused_record(&self.identity, &pending, action, &result, &r, &by);
                reviewer.review_again(&pending, r).map(|f| (f, shown))
            });
            let Some((next, shown)) = again else {
                if from_reviewer {
                    reviewer.decision_taken(&pending).await;
                }
                return result;
            };
            // Recorded before the others are asked again; unrecordable means
            // the refusal ends the hold, as it would without a queue.
            if let Err(e) = self.write(shown).await {
                let mut result = result;
                result.error = Some(ToolCallError::AuditUnavailable(e.to_string()));
                return result;
            }
            asking = next;
        }
    }

    /// What a reviewer's answer (or its absence) comes to: the policy
    /// decides, at the time of the answer, whether that reviewer counts.
    fn judge(
        &self,
        answer: Result<Result<ReviewDecision, ReviewError>, tokio::time::error::Elapsed>,
        pending: &PendingApproval,
        mut record: ApprovalRecord,
        held: &Decision,
        decide_at: &impl Fn(ApprovalState<'_>, Timestamp) -> Result<Decision, RequestError>,
    ) -> Judged {
        let held = held.clone();
        let answered_at = Timestamp::now();
        record.decided_at = Some(answered_at);
        let decision = match answer {
            Err(_) => {
                record.outcome = ApprovalOutcome::TimedOut;
                record.reason = Some(format!("no decision before {}", pending.deadline));
                return Judged::Final(ApprovalResult::refused(
                    record,
                    held,
                    ToolCallError::ApprovalTimedOut,
                ));
            }
            Ok(Err(e)) => {
                record.outcome = ApprovalOutcome::ReviewerFailed;
                record.reason = Some(e.to_string());
                return Judged::Final(ApprovalResult::refused(
                    record,
                    held,
                    ToolCallError::ApprovalDenied(e.to_string()),
                ));
            }
            Ok(Ok(d)) => d,
        };
        record.reviewer = Some(decision.reviewer.clone());
        record.reason = decision.reason.clone();
        // An answer that arrives as the session ends (the deadline is capped
        // at the expiry, but the answer may race it) approves nothing.
        if decision.decision == Verdict::Approve && self.session.is_expired(answered_at) {
            record.outcome = ApprovalOutcome::TimedOut;
            record.reason = Some(format!(
                "the session expired at {} before the approval took effect",
                self.session.expires_at
            ));
            return Judged::Final(ApprovalResult::refused(
                record,
                held,
                ToolCallError::SessionExpired,
            ));
        }
        // Whether policy accepts this reviewer: would it allow the call with
        // their approval? Asked for a denial too, so that a denial from
        // someone policy does not accept can be refused like an approval.
        let accepted = match entity_uid("User", &decision.reviewer) {
            Ok(reviewer_uid) => decide_at(ApprovalState::GrantedBy(&reviewer_uid), answered_at),
            Err(e) => Err(e),
        };
        if decision.decision == Verdict::Deny {
            if let Ok(d) = &accepted
                && d.effect != Effect::Allow
            {
                let why = not_allowed(&decision.reviewer, d);
                let mut denied = record.clone();
                denied.outcome = ApprovalOutcome::Denied;
                let why_denied = decision
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("denied by {}", decision.reviewer));
                let by = d.determining_policies.clone();
                let result = ApprovalResult::refused(
                    denied,
                    held,
                    ToolCallError::ApprovalDenied(why_denied),
                );
                return Judged::NotAccepted(result, RefusedDecision { decision, why }, by);
            }
            record.outcome = ApprovalOutcome::Denied;
            let why = decision
                .reason
                .unwrap_or_else(|| format!("denied by {}", decision.reviewer));
            return Judged::Final(ApprovalResult::refused(
                record,
                held,
                ToolCallError::ApprovalDenied(why),
            ));
        }
        match accepted {
            Ok(d) if d.effect == Effect::Allow => {
                record.outcome = ApprovalOutcome::Approved;
                record.scope = Some(decision.scope);
                Judged::Final(ApprovalResult {
                    record,
                    decision: d,
                    error: None,
                    session_grant: (decision.scope == GrantScope::Session)
                        .then(|| (pending.approval_id.clone(), decision.reviewer.clone())),
                    evaluated_at: Some(answered_at),
                })
            }
            Ok(d) => {
                record.outcome = ApprovalOutcome::ReviewerNotAllowed;
                let why = not_allowed(&decision.reviewer, &d);
                let by = d.determining_policies.clone();
                let mut refused =
                    ApprovalResult::refused(record, d, ToolCallError::ApprovalDenied(why.clone()));
                refused.evaluated_at = Some(answered_at);
                Judged::NotAccepted(refused, RefusedDecision { decision, why }, by)
            }
            Err(e) => {
                let why = e.to_string();
                record.outcome = ApprovalOutcome::ReviewerFailed;
                record.reason = Some(why.clone());
                Judged::Final(ApprovalResult::refused(
                    record,
                    held,
                    ToolCallError::ApprovalDenied(why),
                ))
            }
        }
    }
}

/// A judged answer: final, or a decision from a reviewer policy does not
/// accept (with what the call comes to if the refusal ends the hold).
enum Judged {
    Final(ApprovalResult),
    NotAccepted(ApprovalResult, RefusedDecision, Vec<DeterminingPolicy>),
}

/// Why policy does not accept `reviewer`, from the deciding evaluation.
fn not_allowed(reviewer: &str, d: &Decision) -> String {
    let reasons: Vec<String> = d
        .determining_policies
        .iter()
        .map(|p| p.reason.clone().unwrap_or_else(|| p.id.clone()))
        .chain(d.errors.iter().map(|e| e.message.clone()))
        .collect();
    format!(
        "reviewer `{reviewer}` may not approve this call: {}",
        if reasons.is_empty() {
            "no policy permits it".to_string()
        } else {
            reasons.join("; ")
        }
    )
}

/// The `approval_refused` record of a decision the guard refused while the
/// call stays held: who decided what, why policy does not accept them, and
/// the policies that said so.
fn refused_record(
    identity: &std::sync::Arc<Identity>,
    pending: &PendingApproval,
    action: &ActionRecord,
    result: &ApprovalResult,
    refused: &RefusedDecision,
    by: &[DeterminingPolicy],
) -> Record {
    let mut record = Record::new(RecordKind::ApprovalRefused, identity);
    record.call_id = Some(pending.call_id.clone());
    record.action = Some(action.clone());
    record.detail = Some(serde_json::json!({
        "approval_id": pending.approval_id,
        "reviewer": refused.decision.reviewer,
        "verdict": refused.decision.decision,
        "reason": refused.decision.reason,
        "decided_at": result.record.decided_at,
        "refused": refused.why,
        "determining_policies": by,
        "hold": "continues",
    }));
    record
}

/// The `approval_requested` record of a hold: the call, as its decision
/// record will show it, and the approval as it stands before anyone answers
/// (its id, the demanding policies, the deadline, the reviewer callback).
fn hold_record(
    identity: &std::sync::Arc<Identity>,
    pending: &PendingApproval,
    action: &ActionRecord,
    approval: &ApprovalRecord,
) -> Record {
    let mut record = Record::new(RecordKind::ApprovalRequested, identity);
    record.call_id = Some(pending.call_id.clone());
    record.action = Some(action.clone());
    record.detail = Some(serde_json::json!({
        "approval_id": pending.approval_id,
        "demanded_by": approval.demanded_by,
        "deadline": pending.deadline,
        "reviewer_callback": approval.reviewer_callback,
    }));
    record
}

/// The outcome of a screening that needs no reviewer; else the policies
/// that demand one.
pub(super) fn settled(
    policies: &Policies,
    screening: Screening,
) -> Result<ApprovalResult, Vec<DeterminingPolicy>> {
    match screening {
        Screening::Allowed(decision) => Ok(ApprovalResult::screened(decision, None)),
        Screening::Denied(decision) => {
            let error = super::decision::denial(policies, &decision);
            Ok(ApprovalResult::screened(decision, Some(error)))
        }
        Screening::NeedsApproval { demanded_by, .. } => Err(demanded_by),
    }
}

/// `apr:<call id>:<8 hex digits>`: the call it is for, made unique so that a
/// decision can only ever reach the request the reviewer saw, even when a
/// later run reuses the session id and a queue outlives the run.
fn approval_id(call_id: &str) -> String {
    let mut nonce = [0u8; 4];
    if getrandom::fill(&mut nonce).is_err() {
        // The clock still tells runs apart; uniqueness is also enforced by
        // the queue, which refuses an id it already holds.
        let nanos = Timestamp::now().as_nanosecond().to_le_bytes();
        nonce.copy_from_slice(nanos.get(..4).unwrap_or(&[0; 4]));
    }
    format!("apr:{call_id}:{}", hex::encode(nonce))
}

fn deadline(now: Timestamp, timeout: std::time::Duration) -> Timestamp {
    let d = SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}
