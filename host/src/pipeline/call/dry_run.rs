//! A call decided through the call path's own steps up to the decision
//! record, which is returned instead of written.

use jiff::Timestamp;

use super::approve::settled;
use crate::pipeline::SessionGuard;
use crate::pipeline::call_error::ToolCallError;

impl SessionGuard {
    /// The decision record a call of `tool_name` with `arguments` would get
    /// now, as the line the audit log would write next ([`AuditLog::preview`]),
    /// without asking a reviewer, writing anything or running the tool. It
    /// goes through the call path's own steps, so it costs what deciding a
    /// call costs. A call refused before policy gets that refusal; one that
    /// needs a reviewer gets [`ToolCallError::ApprovalDenied`], since a dry
    /// run asks nobody. The call id is `<session>:dry-run`.
    ///
    /// [`AuditLog::preview`]: crate::audit::AuditLog::preview
    pub fn dry_run(&self, tool_name: &str, arguments: &str) -> Result<String, ToolCallError> {
        let policies = self.inner.policies.load_full();
        let call_id = format!("{}:dry-run", self.session.session_id);
        let tool = self
            .look_up(tool_name, arguments)
            .map_err(|r| r.refused.err)?;
        let (admitted, _) = self
            .admit(&policies, &call_id, &tool, arguments, Timestamp::now())
            .map_err(|r| r.refused.err)?;
        let Ok(approval) = settled(&policies, admitted.screened.screening.clone()) else {
            return Err(ToolCallError::ApprovalDenied(
                "a dry run does not ask a reviewer".into(),
            ));
        };
        let record = self.decision_of(&policies, &call_id, &admitted, &approval);
        self.inner
            .audit
            .preview_fixed(&record)
            .map_err(|e| ToolCallError::AuditUnavailable(e.to_string()))
    }
}
