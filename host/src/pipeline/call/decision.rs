//! Step 7: the decision record, written durably before the tool can run;
//! and the record of a call refused before policy.

use super::admit::{Admitted, Refusal};
use super::approve::ApprovalResult;
use super::report::CallReport;
use crate::pipeline::SessionGuard;
use crate::pipeline::bounded;
use crate::pipeline::call_error::{ToolCallError, audit_unavailable};
use crate::pipeline::record::{
    ApprovalOutcome, ApprovalRecord, DecidedBy, DecisionRecord, GrantRef, Record, RecordKind,
    ToRecord,
};
use crate::policy::{Decision, Effect, Policies};

impl SessionGuard {
    /// Writes the decision record of an admitted call and returns its seq;
    /// a standing grant the reviewer gave is remembered only then, so that
    /// every reuse can point at it.
    pub(super) async fn decide(
        &self,
        policies: &Policies,
        call_id: &str,
        admitted: &Admitted<'_>,
        approval: &mut ApprovalResult,
    ) -> Result<u64, ToolCallError> {
        let record = self.decision_of(policies, call_id, admitted, approval);
        // Write-ahead: the decision is durable before the tool can run.
        let appended = self
            .write(record)
            .await
            .map_err(|e| audit_unavailable(&e))?;
        if let Some((approval_id, reviewer)) = approval.session_grant.take() {
            let resource = admitted.screened.request.resource().to_string();
            self.grants.remember(
                &admitted.action.tool,
                &resource,
                GrantRef {
                    approval_id,
                    reviewer,
                    decision_seq: appended.seq,
                },
            );
        }
        Ok(appended.seq)
    }

    /// The decision record of an admitted (and, if needed, reviewed) call.
    pub(super) fn decision_of(
        &self,
        policies: &Policies,
        call_id: &str,
        admitted: &Admitted<'_>,
        approval: &ApprovalResult,
    ) -> Record {
        let screened = &admitted.screened;
        let resource = admitted
            .action
            .resource
            .clone()
            .unwrap_or_else(|| screened.request.resource().to_string());
        // The record says when the deciding evaluation ran, so that replay
        // decides it with the same `now`.
        let request = screened.request.record(resource, approval.evaluated_at);
        let mut record = Record::new(RecordKind::Decision, &self.identity);
        record.call_id = Some(call_id.to_string());
        record.action = Some(admitted.action.clone());
        let mut decision = decision_record(policies, &approval.decision, DecidedBy::Policy, None);
        decision.request = Some(request);
        record.decision = Some(decision);
        record.approval = Some(approval.record.clone());
        record
    }

    /// Records a call refused before policy evaluation and returns its error.
    pub(super) async fn refuse<T>(
        &self,
        policies: &Policies,
        call_id: &str,
        refusal: Refusal,
    ) -> Result<T, ToolCallError> {
        let Refusal { action, refused } = refusal;
        let denied = Decision {
            effect: Effect::Deny,
            determining_policies: Vec::new(),
            errors: Vec::new(),
        };
        let mut report = CallReport {
            call_id: call_id.to_string(),
            tool: action.tool.clone(),
            resource: action.resource.clone(),
            effect: Effect::Deny,
            policies: Vec::new(),
            approval: ApprovalOutcome::NotRequired,
            reviewer: None,
            error: None,
            decision_seq: None,
        };
        let mut record = Record::new(RecordKind::Decision, &self.identity);
        record.call_id = Some(call_id.to_string());
        record.action = Some(action);
        // The message can quote the agent (a field name, a tool's error):
        // recorded bounded, with the whole message's size and digest.
        let (message, message_truncated) = bounded::text(&refused.err.to_string());
        let mut decision = decision_record(policies, &denied, refused.decided_by, Some(message));
        decision.message_truncated = message_truncated;
        record.decision = Some(decision);
        record.approval = Some(ApprovalRecord::not_required());
        match self.write(record).await {
            Ok(a) => {
                report.decision_seq = Some(a.seq);
                self.finish(report, Err(refused.err))
            }
            Err(e) => self.finish(report, Err(audit_unavailable(&e))),
        }
    }
}

fn decision_record(
    policies: &Policies,
    decision: &Decision,
    decided_by: DecidedBy,
    message: Option<String>,
) -> DecisionRecord {
    DecisionRecord {
        effect: decision.effect.to_record(),
        decided_by: Some(decided_by),
        determining_policies: decision.determining_policies.to_record(),
        errors: decision.errors.to_record(),
        message,
        message_truncated: None,
        policy_digest: policies.digest().to_string(),
        request: None,
    }
}

/// The denial the agent is told (see [`Policies::told_to_agent`]).
pub(super) fn denial(policies: &Policies, decision: &Decision) -> ToolCallError {
    let (policies, reasons) = policies.told_to_agent(decision);
    ToolCallError::Denied { policies, reasons }
}
