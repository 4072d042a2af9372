//! Step 9: what the agent is told (bounded) and what observers see.

use super::admit::Admitted;
use super::approve::ApprovalResult;
use crate::pipeline::SessionGuard;
use crate::pipeline::call_error::ToolCallError;
use crate::pipeline::record::ApprovalOutcome;
use crate::policy::Effect;

/// What happened to one call, for observers such as the CLI.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The call id.
    pub call_id: String,
    /// The tool asked for.
    pub tool: String,
    /// The Cedar resource, if one was derived.
    pub resource: Option<String>,
    /// The final effect.
    pub effect: Effect,
    /// The determining policies of the final decision.
    pub policies: Vec<String>,
    /// How approval went.
    pub approval: ApprovalOutcome,
    /// The reviewer, if one decided.
    pub reviewer: Option<String>,
    /// The error returned to the agent, if any.
    pub error: Option<ToolCallError>,
    /// Sequence number of the decision record, if it was written.
    pub decision_seq: Option<u64>,
}

impl CallReport {
    /// The report of an admitted call once approval is settled.
    pub(super) fn decided(
        call_id: &str,
        admitted: &Admitted<'_>,
        approval: &ApprovalResult,
        allowed: bool,
    ) -> Self {
        CallReport {
            call_id: call_id.to_string(),
            tool: admitted.action.tool.clone(),
            resource: Some(admitted.screened.request.resource().to_string()),
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            policies: approval
                .decision
                .determining_policies
                .iter()
                .map(|p| p.id.clone())
                .collect(),
            approval: approval.record.outcome,
            reviewer: approval.record.reviewer.clone(),
            error: None,
            decision_seq: None,
        }
    }
}

impl SessionGuard {
    /// Bounds what the agent is told, completes the report and hands it to
    /// the observer.
    pub(super) fn finish<T>(
        &self,
        mut report: CallReport,
        result: Result<T, ToolCallError>,
    ) -> Result<T, ToolCallError> {
        let result = result.map_err(ToolCallError::bounded);
        if let Err(e) = &result {
            report.effect = match e {
                ToolCallError::ToolFailed(_) => report.effect,
                _ => Effect::Deny,
            };
            report.error = Some(e.clone());
        }
        if let Some(observer) = &self.inner.observer {
            observer(&report);
        }
        result
    }
}
