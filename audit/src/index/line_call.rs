//! One record line read as the index reads it, for stores other than the local index (the
//! fleet's database): the call a `decision` record opens, the result an `outcome` record gives
//! it, or nothing. Reading goes through the same code as the index, so every store answers
//! from the same columns.

use jiff::Timestamp;

use super::error::RecordProblem;
use super::query::{CallEffect, CallRow};
use super::record::{Change, parse};

/// What one record line means for the calls of its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCall {
    /// A `decision` record: a call, with no outcome yet.
    Decision(Box<CallRow>),
    /// An `outcome` record: what became of the call decided at `decision_seq`.
    Outcome(CallResult),
    /// Any other record.
    Other,
}

/// What an `outcome` record says about its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// The call's id.
    pub call_id: String,
    /// The seq of the call's decision record.
    pub decision_seq: u64,
    /// The seq of this outcome record.
    pub outcome_seq: u64,
    /// `ok` or `failed`.
    pub status: Option<String>,
    /// How long the tool ran.
    pub latency_us: Option<u64>,
    /// The tool's error, for a failed call.
    pub error: Option<String>,
}

/// Reads one record line (without its newline): its framing and own hash are checked, the
/// links to the records before it are the caller's to check.
///
/// ```
/// use mandate_audit::{LineCall, line_call};
///
/// let line = br#"{"seq":1,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","timestamp":"2026-01-01T00:00:00Z","kind":"log_start","hash":"x"}"#;
/// assert!(line_call(line).is_err()); // the hash is not the line's
/// ```
pub fn line_call(line: &[u8]) -> Result<LineCall, RecordProblem> {
    let parsed = parse(line)?;
    Ok(match parsed.change {
        Change::Call(call) => {
            let policies = serde_json::from_str(&call.policies)
                .map_err(|e| RecordProblem::Json(e.to_string()))?;
            let time = Timestamp::from_millisecond(call.time_ms)
                .map_err(|_| RecordProblem::BadTimestamp(call.time_ms.to_string()))?;
            LineCall::Decision(Box::new(CallRow {
                call_id: call.call_id,
                decision_seq: parsed.seq,
                outcome_seq: None,
                time,
                session_id: call.session_id,
                trace_id: call.trace_id,
                user_id: call.user_id,
                agent_id: call.agent_id,
                tool: call.tool,
                resource: call.resource,
                effect: if call.effect == "allow" {
                    CallEffect::Allow
                } else {
                    CallEffect::Deny
                },
                decided_by: call.decided_by,
                determining_policies: policies,
                message: call.message,
                approval_required: call.approval_required,
                approval_outcome: call.approval_outcome,
                reviewer: call.reviewer,
                approved_by: call.approved_by,
                status: None,
                latency_us: None,
                error: None,
            }))
        }
        Change::Outcome(outcome) => LineCall::Outcome(CallResult {
            call_id: outcome.call_id,
            decision_seq: outcome.decision_seq,
            outcome_seq: parsed.seq,
            status: outcome.status,
            latency_us: outcome.latency_us,
            error: outcome.error,
        }),
        Change::RemovedThrough(_) | Change::Nothing => LineCall::Other,
    })
}
