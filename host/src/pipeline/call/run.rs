//! Step 8: the tool runs, and its outcome record is chained to the
//! decision. A result whose outcome cannot be recorded is not returned.

use std::time::Instant;

use crate::pipeline::SessionGuard;
use crate::pipeline::bounded;
use crate::pipeline::call_error::{ToolCallError, audit_unavailable};
use crate::pipeline::record::{CallStatus, OutcomeRecord, Record, RecordKind};
use crate::pipeline::tools::{ParsedArgs, RegisteredTool, ToolContext, ToolFailure};

impl SessionGuard {
    /// Runs `tool` with the call's typed arguments, after its decision
    /// record `decision_seq`, and records the outcome.
    pub(super) async fn run(
        &self,
        call_id: &str,
        tool: &RegisteredTool,
        typed: ParsedArgs,
        decision_seq: u64,
    ) -> Result<String, ToolCallError> {
        let ctx = ToolContext {
            session_id: self.session.session_id.clone(),
            call_id: call_id.to_string(),
            user_id: self.session.user.id.clone(),
            decision_seq,
            audit_path: self.inner.audit.path().to_path_buf(),
        };
        let started = Instant::now();
        // A tool that hangs must not hold the session (and the agent) with
        // it: past its timeout the call fails, and the outcome says why.
        let result = match tokio::time::timeout(tool.timeout(), tool.run(ctx, typed)).await {
            Ok(result) => result,
            Err(_) => Err(ToolFailure(format!(
                "timed out: the tool did not answer within {}",
                humanize(tool.timeout())
            ))),
        };
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A tool's error can quote what the agent passed it: bounded.
        let (error, error_truncated) = match &result {
            Err(e) => {
                let (text, truncated) = bounded::text(&e.0);
                (Some(text), truncated)
            }
            Ok(_) => (None, None),
        };
        let mut outcome = Record::new(RecordKind::Outcome, &self.identity);
        outcome.call_id = Some(call_id.to_string());
        outcome.outcome = Some(OutcomeRecord {
            decision_seq,
            status: if result.is_ok() {
                CallStatus::Ok
            } else {
                CallStatus::Failed
            },
            latency_us,
            error,
            error_truncated,
            http: None,
        });
        // The tool has run; if its outcome cannot be recorded the agent does
        // not get the result, so nothing continues on an unrecorded action.
        if let Err(e) = self.write(outcome).await {
            return Err(audit_unavailable(&e));
        }
        result
            .map_err(|e| ToolCallError::ToolFailed(bounded::cut(&e.0)))
            .and_then(|v| {
                serde_json::to_string(&v).map_err(|e| ToolCallError::ToolFailed(e.to_string()))
            })
    }
}

/// `1.5 s`, `250 ms`: a timeout as an operator wrote it.
fn humanize(duration: std::time::Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else if duration.as_secs() == 0 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}
