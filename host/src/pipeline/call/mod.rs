//! The call path: one tool call of the agent, as the numbered steps of
//! `docs/call-path.md`. [`SessionGuard::call`] is the tool-call door:
//! it turns what the agent passed into a request, then runs the one
//! procedure every door shares: request -> screening -> approval -> durable
//! decision -> run -> outcome.
//!
//! 1. The tool is looked up ([`look_up`]); unknown: refused and recorded.
//! 2. An expired session is refused, whatever the policies say.
//! 3. The arguments are parsed by the tool's typed struct and converted to
//!    Cedar values.
//! 4. The Cedar request is built, once for the whole call
//!    ([`crate::pipeline::request::CallRequest`]).
//! 5. It is evaluated; any evaluation error denies.
//! 6. Denied, but allowed with approval: a standing grant, else a reviewer,
//!    decides ([`approve`]).
//!
//!    Steps 2 to 6a are [`crate::pipeline::screening`], which `dry_run` and
//!    `explain` go through too; [`admit`] adds the call's record of what
//!    the agent asked. A refusal before policy is recorded ([`decision`]).
//! 7. The decision record is written durably ([`decision`]); if it cannot
//!    be, the tool does not run.
//! 8. The tool runs; its outcome is recorded ([`run`]).
//! 9. The agent gets the result or a typed [`ToolCallError`]; observers get
//!    a [`CallReport`] ([`report`]).

mod admit;
mod approve;
mod decision;
mod dry_run;
mod http;
mod look_up;
mod report;
mod run;

use std::sync::atomic::Ordering;

use jiff::Timestamp;

pub(crate) use approve::SessionGrants;
pub(crate) use http::HttpSession;
pub use http::{BodyProblem, HttpRefusal, HttpRequestHead, REFUSAL_HEADER};
pub use report::CallReport;

use super::SessionGuard;
use super::call_error::ToolCallError;
use crate::policy::Effect;

impl SessionGuard {
    /// Handles one tool call from the agent: `arguments` is the JSON text the
    /// guest passed. Returns the tool's result as JSON text, or why not.
    pub async fn call(&self, tool_name: &str, arguments: &str) -> Result<String, ToolCallError> {
        // One policy set decides the whole call, however long a reviewer
        // takes, even if the guard reloads meanwhile.
        let policies = self.inner.policies.load_full();
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("{}:{n}", self.session.session_id);

        // 1. The tool.
        let tool = match self.look_up(tool_name, arguments) {
            Ok(tool) => tool,
            Err(refusal) => return self.refuse(&policies, &call_id, *refusal).await,
        };
        // 2 to 6a. The session, the arguments, the Cedar request, policy.
        let (admitted, typed) =
            match self.admit(&policies, &call_id, &tool, arguments, Timestamp::now()) {
                Ok(admitted) => admitted,
                Err(refusal) => return self.refuse(&policies, &call_id, *refusal).await,
            };
        // 6. Approval: settled by policy, a standing grant or a reviewer.
        let mut approval = self.approve(&policies, &call_id, &admitted).await;
        let allowed = approval.error.is_none() && approval.decision.effect == Effect::Allow;
        let mut report = CallReport::decided(&call_id, &admitted, &approval, allowed);

        // 7. The decision, durable before the tool can run.
        let decision_seq = match self
            .decide(&policies, &call_id, &admitted, &mut approval)
            .await
        {
            Ok(seq) => seq,
            Err(e) => return self.finish(report, Err(e)),
        };
        report.decision_seq = Some(decision_seq);
        if let Some(err) = approval.error {
            return self.finish(report, Err(err));
        }
        if !allowed {
            let err = decision::denial(&policies, &approval.decision);
            return self.finish(report, Err(err));
        }

        // 8. The tool runs; its outcome is recorded.
        let result = self.run(&call_id, &tool, typed, decision_seq).await;

        // 9. The agent's answer.
        self.finish(report, result)
    }
}
