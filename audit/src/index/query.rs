//! Questions to the index ([`CallQuery`]) and its answers ([`CallRow`]).

use jiff::Timestamp;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Value, ValueRef};
use rusqlite::{Connection, Row, params_from_iter};
use serde::{Serialize, Serializer};

/// Whether a call was allowed to run, as its decision record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallEffect {
    /// The tool ran (or was about to).
    Allow,
    /// The tool did not run.
    Deny,
}

impl CallEffect {
    /// `allow` or `deny`, as written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            CallEffect::Allow => "allow",
            CallEffect::Deny => "deny",
        }
    }
}

impl std::fmt::Display for CallEffect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromSql for CallEffect {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "allow" => Ok(CallEffect::Allow),
            "deny" => Ok(CallEffect::Deny),
            other => Err(FromSqlError::Other(
                format!("unknown effect `{other}`").into(),
            )),
        }
    }
}

/// Which calls to find. Every filter that is set must hold (AND); an empty
/// query finds every call. Rows come back in log order (by decision seq).
///
/// ```
/// use mandate_audit::{CallEffect, CallQuery};
///
/// let query = CallQuery {
///     user: Some("alice".into()),
///     effect: Some(CallEffect::Deny),
///     limit: Some(100),
///     ..CallQuery::default()
/// };
/// # let _ = query;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallQuery {
    /// Calls made on behalf of this user id.
    pub user: Option<String>,
    /// Calls made by this agent id.
    pub agent: Option<String>,
    /// Calls of this session id.
    pub session: Option<String>,
    /// Calls of this tool.
    pub tool: Option<String>,
    /// Only allowed, or only denied, calls.
    pub effect: Option<CallEffect>,
    /// Calls a reviewer with this user id approved.
    pub approved_by: Option<String>,
    /// Calls decided at or after this time.
    pub since: Option<Timestamp>,
    /// Calls decided before this time.
    pub until: Option<Timestamp>,
    /// At most this many rows (the first ones in log order); `None` for all.
    pub limit: Option<u64>,
}

/// One tool call: its decision record joined with its outcome record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRow {
    /// The call's id (`<session>:<n>`).
    pub call_id: String,
    /// Seq of the decision record.
    pub decision_seq: u64,
    /// Seq of the outcome record; `None` for a denied call, or an allowed one
    /// whose outcome is not in the log (yet).
    pub outcome_seq: Option<u64>,
    /// When it was decided (the decision record's timestamp).
    #[serde(serialize_with = "rfc3339_millis")]
    pub time: Timestamp,
    /// The session.
    pub session_id: Option<String>,
    /// The host's trace id.
    pub trace_id: Option<String>,
    /// The user the agent acted for.
    pub user_id: Option<String>,
    /// The agent.
    pub agent_id: Option<String>,
    /// The tool as the agent named it.
    pub tool: String,
    /// The Cedar resource, when one was derived.
    pub resource: Option<String>,
    /// Allow or deny.
    pub effect: CallEffect,
    /// What decided: `policy`, or why it was refused before policy (`unknown_tool`, ...).
    pub decided_by: Option<String>,
    /// Ids of the policies that determined the decision.
    pub determining_policies: Vec<String>,
    /// The refusal message, for calls refused outside policy.
    pub message: Option<String>,
    /// Whether policy held the call for a human.
    pub approval_required: bool,
    /// How the review ended (`not_required`, `approved`, `denied`, `timed_out`, ...).
    pub approval_outcome: Option<String>,
    /// The reviewer who answered, whatever the answer.
    pub reviewer: Option<String>,
    /// The reviewer, when the answer was approve.
    pub approved_by: Option<String>,
    /// `ok` or `failed` for a call that ran; `None` otherwise.
    pub status: Option<String>,
    /// How long the tool ran.
    pub latency_us: Option<u64>,
    /// The tool's error, for a failed call.
    pub error: Option<String>,
}

fn rfc3339_millis<S: Serializer>(time: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{time:.3}"))
}

const COLUMNS: &str = "call_id, decision_seq, outcome_seq, time_ms, session_id, trace_id, \
    user_id, agent_id, tool, resource, effect, decided_by, policies, message, approval_required, \
    approval_outcome, reviewer, approved_by, status, latency_us, error";

/// The `WHERE` clause of `query` and its parameters.
pub(super) fn conditions(query: &CallQuery) -> (String, Vec<Value>) {
    let mut clause = Vec::new();
    let mut values = Vec::new();
    let mut text = |column: &str, value: &Option<String>| {
        if let Some(v) = value {
            values.push(Value::Text(v.clone()));
            clause.push(format!("{column} = ?{}", values.len()));
        }
    };
    text("user_id", &query.user);
    text("agent_id", &query.agent);
    text("session_id", &query.session);
    text("tool", &query.tool);
    text("approved_by", &query.approved_by);
    if let Some(effect) = query.effect {
        values.push(Value::Text(effect.as_str().to_owned()));
        clause.push(format!("effect = ?{}", values.len()));
    }
    if let Some(since) = query.since {
        values.push(Value::Integer(ceil_millis(since)));
        clause.push(format!("time_ms >= ?{}", values.len()));
    }
    if let Some(until) = query.until {
        values.push(Value::Integer(ceil_millis(until)));
        clause.push(format!("time_ms < ?{}", values.len()));
    }
    if clause.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", clause.join(" AND ")), values)
    }
}

/// A bound in whole milliseconds, rounded up: records carry whole
/// milliseconds, so `time >= t` and `time < t` hold exactly when they hold for
/// the rounded-up bound.
fn ceil_millis(t: Timestamp) -> i64 {
    let ms = t.as_millisecond();
    if t.subsec_nanosecond() % 1_000_000 > 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
}

/// The calls that match `query`.
pub(super) fn select(conn: &Connection, query: &CallQuery) -> rusqlite::Result<Vec<CallRow>> {
    let (clause, mut values) = conditions(query);
    let limit = query
        .limit
        .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    values.push(Value::Integer(limit));
    let sql = format!(
        "SELECT {COLUMNS} FROM calls{clause} ORDER BY decision_seq LIMIT ?{}",
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), row)?;
    rows.collect()
}

/// How many calls match `query`, ignoring its limit.
pub(super) fn count(conn: &Connection, query: &CallQuery) -> rusqlite::Result<u64> {
    let (clause, values) = conditions(query);
    let sql = format!("SELECT count(*) FROM calls{clause}");
    conn.prepare_cached(&sql)?
        .query_row(params_from_iter(values), |r| r.get(0))
}

fn row(r: &Row<'_>) -> rusqlite::Result<CallRow> {
    let conversion = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let time_ms: i64 = r.get(3)?;
    let time = Timestamp::from_millisecond(time_ms).map_err(|e| conversion(3, e.into()))?;
    let policies: String = r.get(12)?;
    let determining_policies =
        serde_json::from_str(&policies).map_err(|e| conversion(12, e.into()))?;
    Ok(CallRow {
        call_id: r.get(0)?,
        decision_seq: r.get(1)?,
        outcome_seq: r.get(2)?,
        time,
        session_id: r.get(4)?,
        trace_id: r.get(5)?,
        user_id: r.get(6)?,
        agent_id: r.get(7)?,
        tool: r.get(8)?,
        resource: r.get(9)?,
        effect: r.get(10)?,
        decided_by: r.get(11)?,
        determining_policies,
        message: r.get(13)?,
        approval_required: r.get(14)?,
        approval_outcome: r.get(15)?,
        reviewer: r.get(16)?,
        approved_by: r.get(17)?,
        status: r.get(18)?,
        latency_us: r.get(19)?,
        error: r.get(20)?,
    })
}
