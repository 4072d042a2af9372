//! `mandate audit query --database`: calls across every host, answered from
//! the indexed query tables the shipping hosts fill ([`crate::ship`]), with
//! the same filters and the same rows as the local index.

use jiff::Timestamp;
use mandate_audit::{CallEffect, CallQuery, CallRow};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::FleetError;

/// One call and the host that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// The host (its login role).
    pub host_id: String,
    /// The call, as the local index would show it.
    pub call: CallRow,
}

/// The columns [`call_row`] reads, in its order.
pub(crate) const CALL_COLUMNS: &str = "c.host_id, c.decision_seq, c.call_id, \
    (extract(epoch FROM c.decided_at) * 1000)::bigint, c.session_id, c.trace_id, c.user_id, \
    c.agent_id, c.tool, c.resource, c.effect, c.decided_by, c.policies::text, c.message, \
    c.approval_required, c.approval_outcome, c.reviewer, c.approved_by, o.outcome_seq, \
    o.status, o.latency_us, o.error";

/// The join [`CALL_COLUMNS`] reads from.
pub(crate) const CALL_TABLES: &str = "audit_calls c LEFT JOIN audit_call_outcomes o \
    ON o.host_id = c.host_id AND o.decision_seq = c.decision_seq";

/// A row of [`CALL_COLUMNS`] as a call.
pub(crate) fn call_row(row: &Row) -> Result<HostCall, FleetError> {
    let corrupt = |field: &str, reason: String| FleetError::Corrupt {
        table: "audit_calls",
        field: field.to_owned(),
        reason,
    };
    let effect = match row.get::<_, &str>(10) {
        "allow" => CallEffect::Allow,
        "deny" => CallEffect::Deny,
        other => return Err(corrupt("effect", format!("unknown effect `{other}`"))),
    };
    let time = Timestamp::from_millisecond(row.get(3))
        .map_err(|e| corrupt("decided_at", e.to_string()))?;
    let policies: Vec<String> =
        serde_json::from_str(row.get(12)).map_err(|e| corrupt("policies", e.to_string()))?;
    let unsigned = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64);
    Ok(HostCall {
        host_id: row.get(0),
        call: CallRow {
            call_id: row.get(2),
            decision_seq: row.get::<_, i64>(1).max(0) as u64,
            outcome_seq: unsigned(18),
            time,
            session_id: row.get(4),
            trace_id: row.get(5),
            user_id: row.get(6),
            agent_id: row.get(7),
            tool: row.get(8),
            resource: row.get(9),
            effect,
            decided_by: row.get(11),
            determining_policies: policies,
            message: row.get(13),
            approval_required: row.get(14),
            approval_outcome: row.get(15),
            reviewer: row.get(16),
            approved_by: row.get(17),
            status: row.get(19),
            latency_us: unsigned(20),
            error: row.get(21),
        },
    })
}

/// The `WHERE` clause of a query and its parameters.
fn conditions(
    query: &CallQuery,
    host: Option<&str>,
) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut clause = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut text = |column: &str, value: Option<&str>| {
        if let Some(v) = value {
            values.push(Box::new(v.to_owned()));
            clause.push(format!("c.{column} = ${}", values.len()));
        }
    };
    text("host_id", host);
    text("user_id", query.user.as_deref());
    text("agent_id", query.agent.as_deref());
    text("session_id", query.session.as_deref());
    text("tool", query.tool.as_deref());
    text("effect", query.effect.map(CallEffect::as_str));
    text("approved_by", query.approved_by.as_deref());
    let mut time = |op: &str, at: Option<Timestamp>| {
        if let Some(at) = at {
            values.push(Box::new(at.as_millisecond()));
            clause.push(format!(
                "c.decided_at {op} timestamptz 'epoch' + ${} * interval '1 millisecond'",
                values.len()
            ));
        }
    };
    time(">=", query.since);
    time("<", query.until);
    let clause = if clause.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clause.join(" AND "))
    };
    (clause, values)
}

/// The calls that match, oldest first (by decision time, then host and
/// seq), at most `query.limit` of them; `host` keeps one host's.
pub async fn query(
    client: &Client,
    query: &CallQuery,
    host: Option<&str>,
) -> Result<Vec<HostCall>, FleetError> {
    let (clause, values) = conditions(query, host);
    let limit = query
        .limit
        .map(|n| format!(" LIMIT {}", n.min(i64::MAX as u64)))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM {CALL_TABLES}{clause} \
         ORDER BY c.decided_at, c.host_id, c.decision_seq{limit}"
    );
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as _).collect();
    let rows = client
        .query(&sql, &params)
        .await
        .map_err(FleetError::query("querying calls"))?;
    rows.iter().map(call_row).collect()
}

/// How many calls match, whatever the limit.
pub async fn count(
    client: &Client,
    query: &CallQuery,
    host: Option<&str>,
) -> Result<u64, FleetError> {
    let (clause, values) = conditions(query, host);
    let sql = format!("SELECT count(*) FROM audit_calls c{clause}");
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as _).collect();
    let row = client
        .query_one(&sql, &params)
        .await
        .map_err(FleetError::query("counting calls"))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}
