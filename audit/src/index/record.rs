//! From one record line to what it changes in the index: a new call (a
//! `decision` record), the result of a call (an `outcome` record), calls that
//! retention removed from the log (a `retention` record), or nothing.
//!
//! A record is read through the guard's own record types ([`crate::record`]) in their skimmed
//! form, which leaves the parts no query reads unparsed; the chain's fields come from the
//! line's fixed prefix.

use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::RecordProblem;
use crate::chain::split_framed;
use crate::record::{Effect, Record, RecordKind, Skim};
use crate::verify::{RETENTION_KIND, json_message, read_frame, retention};

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

/// The chain's fields of a line not in the writer's fixed shape, and its kind: parsed as JSON
/// only for such lines, and for records that are not guard records.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    prev_hash: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

const DECISION: &str = "decision";
const OUTCOME: &str = "outcome";

/// Checks a line (without its newline) on its own, framing and hash first, and
/// reads what it changes. The links to the previous record are the caller's to check.
pub(super) fn parse(line: &[u8]) -> Result<Parsed, RecordProblem> {
    let framed = split_framed(line).ok_or(RecordProblem::NotFramed)?;
    if !framed.hash_matches() {
        return Err(RecordProblem::HashMismatch);
    }
    let hash = framed.hash.to_owned();
    let mut head = None;
    let (seq, prev_hash, timestamp) = match read_frame(framed.prefix) {
        Some(frame) => (
            frame.seq,
            String::from_utf8_lossy(frame.prev_hash).into_owned(),
            Some(String::from_utf8_lossy(frame.timestamp).into_owned()),
        ),
        None => {
            let h = read_head(line)?;
            let frame = (h.seq, h.prev_hash.clone(), h.timestamp.clone());
            head = Some(h);
            frame
        }
    };
    let change = match read_body(line) {
        Ok(record) => match record.kind {
            RecordKind::Decision => Change::Call(Box::new(new_call(timestamp, record)?)),
            RecordKind::Outcome => Change::Outcome(call_outcome(record)?),
            _ => Change::Nothing,
        },
        Err(error) => {
            // Not a guard record, or one the index cannot read: which, its kind says. A kind the
            // index does not read may use the guard's field names for other shapes.
            let head = match head {
                Some(head) => head,
                None => read_head(line)?,
            };
            match head.kind.as_deref() {
                Some(RETENTION_KIND) => Change::RemovedThrough(
                    retention(line)
                        .map_err(|e| RecordProblem::Json(json_message(&e)))?
                        .removed_through_seq,
                ),
                Some(kind) if RecordKind::from_str(kind).is_ok_and(is_indexed) => {
                    return Err(RecordProblem::Json(error));
                }
                _ => Change::Nothing,
            }
        }
    };
    Ok(Parsed {
        seq,
        prev_hash,
        hash,
        change,
    })
}

/// Whether records of `kind` change the index.
fn is_indexed(kind: RecordKind) -> bool {
    matches!(kind, RecordKind::Decision | RecordKind::Outcome)
}

fn read_head(line: &[u8]) -> Result<Head, RecordProblem> {
    serde_json::from_slice(line).map_err(|e| RecordProblem::Json(json_message(&e)))
}

/// The line as a guard record, skimmed; an error names the field at fault
/// (`` `decision.effect`: unknown variant ... ``).
fn read_body(line: &[u8]) -> Result<Record<Skim>, String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = json_message(e.inner());
        if path.is_empty() || path == "." {
            message
        } else {
            format!("`{path}`: {message}")
        }
    })
}

/// The name a value has in a record (`approved_by_grant`), for the index's text columns.
fn name<T: Serialize>(value: &T) -> Result<String, RecordProblem> {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => Ok(name),
        Ok(other) => Err(RecordProblem::Json(format!("`{other}` is not a name"))),
        Err(e) => Err(RecordProblem::Json(e.to_string())),
    }
}

fn missing(field: &'static str) -> RecordProblem {
    RecordProblem::MissingField {
        kind: DECISION,
        field,
    }
}

fn new_call(timestamp: Option<String>, record: Record<Skim>) -> Result<NewCall, RecordProblem> {
    let text = timestamp.ok_or(missing("timestamp"))?;
    let time: Timestamp = text
        .parse()
        .map_err(|_| RecordProblem::BadTimestamp(text.clone()))?;
    let action = record.action.ok_or(missing("action"))?;
    let decision = record.decision.ok_or(missing("decision"))?;
    let effect = match decision.effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    };
    let policies: Vec<&str> = decision
        .determining_policies
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    let policies =
        serde_json::to_string(&policies).map_err(|e| RecordProblem::Json(e.to_string()))?;
    let (approval_required, approval_outcome, reviewer, approved_by) = match &record.approval {
        Some(a) => (
            a.required,
            Some(name(&a.outcome)?),
            a.reviewer.clone(),
            // A standing grant reused is still that reviewer's approval.
            a.approved_by().map(str::to_string),
        ),
        None => (false, None, None, None),
    };
    Ok(NewCall {
        call_id: record.call_id.ok_or(missing("call_id"))?,
        time_ms: time.as_millisecond(),
        session_id: record.session_id.map(|s| s.to_string()),
        trace_id: record.trace_id.map(|t| t.to_string()),
        user_id: record.user.map(|u| u.id.clone()),
        agent_id: record.agent.map(|a| a.id.clone()),
        tool: action.tool,
        resource: action.resource,
        effect,
        decided_by: decision.decided_by.as_ref().map(name).transpose()?,
        policies,
        message: decision.message,
        approval_required,
        approval_outcome,
        reviewer,
        approved_by,
    })
}

fn call_outcome(record: Record<Skim>) -> Result<CallOutcome, RecordProblem> {
    let missing = |field| RecordProblem::MissingField {
        kind: OUTCOME,
        field,
    };
    let outcome = record.outcome.ok_or(missing("outcome"))?;
    Ok(CallOutcome {
        call_id: record.call_id.ok_or(missing("call_id"))?,
        decision_seq: outcome.decision_seq,
        status: Some(name(&outcome.status)?),
        latency_us: Some(outcome.latency_us),
        error: outcome.error,
    })
}
