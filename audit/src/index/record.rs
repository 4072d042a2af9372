//! From one record line to what it changes in the index: a new call (a
//! `decision` record), the result of a call (an `outcome` record), calls that
//! retention removed from the log (a `retention` record), or nothing.
//!
//! Only the fields the index keeps are deserialized; serde skips the rest.

use jiff::Timestamp;
use serde::Deserialize;

use super::error::RecordProblem;
use crate::chain::split_framed;
use crate::verify::json_message;

/// A record line whose framing, hash and JSON checked out.
#[derive(Debug)]
pub(super) struct Parsed {
    /// Its seq.
    pub(super) seq: u64,
    /// The previous record's hash, as this record holds it.
    pub(super) prev_hash: String,
    /// Its own hash.
    pub(super) hash: String,
    /// What it changes in the index.
    pub(super) change: Change,
}

/// What a record changes in the index.
#[derive(Debug)]
pub(super) enum Change {
    /// A `decision` record: one new call row.
    Call(Box<NewCall>),
    /// An `outcome` record: fills in the row of its decision.
    Outcome(CallOutcome),
    /// A `retention` record: the log no longer holds records up to this seq.
    RemovedThrough(u64),
    /// Any other record.
    Nothing,
}

/// The columns of a new call row, from its decision record.
#[derive(Debug)]
pub(super) struct NewCall {
    pub(super) call_id: String,
    pub(super) time_ms: i64,
    pub(super) session_id: Option<String>,
    pub(super) trace_id: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) agent_id: Option<String>,
    pub(super) tool: String,
    pub(super) resource: Option<String>,
    pub(super) effect: &'static str,
    pub(super) decided_by: Option<String>,
    /// The determining policy ids as a JSON array.
    pub(super) policies: String,
    pub(super) message: Option<String>,
    pub(super) approval_required: bool,
    pub(super) approval_outcome: Option<String>,
    pub(super) reviewer: Option<String>,
    pub(super) approved_by: Option<String>,
}

/// The columns an outcome record fills in.
#[derive(Debug)]
pub(super) struct CallOutcome {
    pub(super) call_id: String,
    pub(super) decision_seq: u64,
    pub(super) status: Option<String>,
    pub(super) latency_us: Option<u64>,
    pub(super) error: Option<String>,
}

/// The fields the index reads from any record.
#[derive(Deserialize)]
struct Fields {
    seq: u64,
    prev_hash: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    user: Option<Id>,
    #[serde(default)]
    agent: Option<Id>,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    removed_through_seq: Option<u64>,
}

/// Just enough of a record to follow the chain past a kind the index does not use.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    prev_hash: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Id {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    tool: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

#[derive(Deserialize)]
struct Decision {
    effect: Option<String>,
    #[serde(default)]
    decided_by: Option<String>,
    #[serde(default)]
    determining_policies: Vec<Id>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Approval {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    reviewer: Option<String>,
}

#[derive(Deserialize)]
struct Outcome {
    decision_seq: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    latency_us: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

const DECISION: &str = "decision";
const OUTCOME: &str = "outcome";
const RETENTION: &str = "retention";

/// Checks a line (without its newline) on its own, framing and hash first, and
/// reads what it changes. The links to the previous record are the caller's to check.
pub(super) fn parse(line: &[u8]) -> Result<Parsed, RecordProblem> {
    let framed = split_framed(line).ok_or(RecordProblem::NotFramed)?;
    if !framed.hash_matches() {
        return Err(RecordProblem::HashMismatch);
    }
    let hash = framed.hash.to_owned();
    let fields = match serde_json::from_slice::<Fields>(line) {
        Ok(fields) => fields,
        Err(error) => {
            // A kind the index does not read may use these names for other shapes.
            let head: Head =
                serde_json::from_slice(line).map_err(|e| RecordProblem::Json(json_message(&e)))?;
            if matches!(head.kind.as_deref(), Some(DECISION | OUTCOME | RETENTION)) {
                return Err(RecordProblem::Json(json_message(&error)));
            }
            return Ok(Parsed {
                seq: head.seq,
                prev_hash: head.prev_hash,
                hash,
                change: Change::Nothing,
            });
        }
    };
    let seq = fields.seq;
    let prev_hash = fields.prev_hash.clone();
    let change = match fields.kind.as_deref() {
        Some(DECISION) => Change::Call(Box::new(new_call(fields)?)),
        Some(OUTCOME) => Change::Outcome(call_outcome(fields)?),
        Some(RETENTION) => Change::RemovedThrough(fields.removed_through_seq.ok_or(
            RecordProblem::MissingField {
                kind: RETENTION,
                field: "removed_through_seq",
            },
        )?),
        _ => Change::Nothing,
    };
    Ok(Parsed {
        seq,
        prev_hash,
        hash,
        change,
    })
}

fn missing(field: &'static str) -> RecordProblem {
    RecordProblem::MissingField {
        kind: DECISION,
        field,
    }
}

fn new_call(f: Fields) -> Result<NewCall, RecordProblem> {
    let text = f.timestamp.ok_or(missing("timestamp"))?;
    let time: Timestamp = text
        .parse()
        .map_err(|_| RecordProblem::BadTimestamp(text.clone()))?;
    let action = f.action.ok_or(missing("action"))?;
    let decision = f.decision.ok_or(missing("decision"))?;
    let effect = match decision.effect.as_deref() {
        Some("allow") => "allow",
        Some("deny") => "deny",
        _ => return Err(missing("decision.effect")),
    };
    let policies: Vec<String> = decision
        .determining_policies
        .into_iter()
        .filter_map(|p| p.id)
        .collect();
    let policies =
        serde_json::to_string(&policies).map_err(|e| RecordProblem::Json(e.to_string()))?;
    let (approval_required, approval_outcome, reviewer) = match f.approval {
        Some(a) => (a.required, a.outcome, a.reviewer),
        None => (false, None, None),
    };
    // A standing grant reused is still that reviewer's approval.
    let approved_by = match approval_outcome.as_deref() {
        Some("approved" | "approved_by_grant") => reviewer.clone(),
        _ => None,
    };
    Ok(NewCall {
        call_id: f.call_id.ok_or(missing("call_id"))?,
        time_ms: time.as_millisecond(),
        session_id: f.session_id,
        trace_id: f.trace_id,
        user_id: f.user.and_then(|u| u.id),
        agent_id: f.agent.and_then(|a| a.id),
        tool: action.tool.ok_or(missing("action.tool"))?,
        resource: action.resource,
        effect,
        decided_by: decision.decided_by,
        policies,
        message: decision.message,
        approval_required,
        approval_outcome,
        reviewer,
        approved_by,
    })
}

fn call_outcome(f: Fields) -> Result<CallOutcome, RecordProblem> {
    let missing = |field| RecordProblem::MissingField {
        kind: OUTCOME,
        field,
    };
    let outcome = f.outcome.ok_or(missing("outcome"))?;
    Ok(CallOutcome {
        call_id: f.call_id.ok_or(missing("call_id"))?,
        decision_seq: outcome
            .decision_seq
            .ok_or(missing("outcome.decision_seq"))?,
        status: outcome.status,
        latency_us: outcome.latency_us,
        error: outcome.error,
    })
}
