//! `mandate audit verify --database`: every host's chain and checkpoints,
//! checked from the database alone, with the same verifier as a local log
//! (see [`crate::export`]), and the query tables held against the records
//! they were read from.
//!
//! What this catches: a record row changed, deleted or inserted (the chain
//! breaks at it); rows cut off the end or rewritten with every hash
//! recomputed (against the signed checkpoints, given the key); a `hash`
//! column that is not its line's; a query row that is missing, extra, or
//! says something its record does not (a forged "who did what").

use futures_util::{StreamExt, pin_mut};
use mandate_audit::{
    CallRow, CheckpointVerifier, LineCall, RecordReader, Verification, VerifyError, VerifyOptions,
    line_call, verify_log_all,
};
use tokio_postgres::Client;

use crate::FleetError;
use crate::export::{ExportError, Exported, export};
use crate::query::{CALL_COLUMNS, call_row};

/// At most this many query-table problems are listed per host; the count
/// says how many there were.
pub const MAX_LISTED: usize = 100;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct DatabaseVerifyOptions {
    /// The public key that signed the hosts' checkpoints.
    pub key: Option<CheckpointVerifier>,
    /// With a key, accept records after the last signed checkpoint.
    pub allow_unsigned_tail: bool,
}

/// What one host's records in the database showed.
#[derive(Debug)]
pub struct HostVerification {
    /// The host.
    pub host_id: String,
    /// What was read out of the database.
    pub exported: Exported,
    /// The verifier's findings on the host's chain and checkpoints.
    pub chain: Verification,
    /// Query rows that do not match the records, the first [`MAX_LISTED`].
    pub rows: Vec<RowProblem>,
    /// How many query rows do not match.
    pub row_problems: u64,
}

impl HostVerification {
    /// Whether every check passed.
    pub fn is_clean(&self) -> bool {
        self.chain.problems.is_empty()
            && self.row_problems == 0
            && self.exported.hash_mismatches.is_empty()
    }
}

/// A query row that does not match the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// `audit_calls` or `audit_call_outcomes`.
    pub table: &'static str,
    /// The decision seq (calls) or outcome seq (outcomes) of the row.
    pub seq: u64,
    /// What is wrong.
    pub what: RowDifference,
}

/// How a query row differs from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowDifference {
    /// A record has no row.
    Missing,
    /// A row has no record.
    Unexpected,
    /// The row says something its record does not.
    Differs,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.what {
            RowDifference::Missing => "is missing: the record at this seq has no row",
            RowDifference::Unexpected => "has no record: no record at this seq gives it",
            RowDifference::Differs => "differs from the record it was read from",
        };
        write!(f, "{} row at seq {} {what}", self.table, self.seq)
    }
}

/// Why a host could not be verified at all.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseVerifyError {
    #[error(transparent)]
    Database(#[from] FleetError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("cannot make a private scratch directory: {0}")]
    Scratch(std::io::Error),
    #[error("host `{host_id}`: {error}")]
    Unreadable {
        host_id: String,
        #[source]
        error: VerifyError,
    },
}

/// Verifies one host's records, checkpoints and query rows.
pub async fn verify_host(
    client: &Client,
    host_id: &str,
    options: &DatabaseVerifyOptions,
) -> Result<HostVerification, DatabaseVerifyError> {
    // Private: the records are the fleet's, not every local user's.
    let scratch = tempfile::tempdir().map_err(DatabaseVerifyError::Scratch)?;
    let exported = export(client, host_id, scratch.path()).await?;
    let dir = scratch.path().to_path_buf();
    let key = options.key.clone();
    let allow_unsigned_tail = options.allow_unsigned_tail;
    let (chain, expected) = tokio::task::spawn_blocking(move || {
        let options = VerifyOptions {
            key,
            allow_unsigned_tail,
            ..VerifyOptions::default()
        };
        (verify_log_all(&dir, &options), expected_rows(&dir))
    })
    .await
    .map_err(|e| DatabaseVerifyError::Scratch(std::io::Error::other(e.to_string())))?;
    let chain = chain.map_err(|error| DatabaseVerifyError::Unreadable {
        host_id: host_id.to_owned(),
        error,
    })?;
    let (calls, outcomes) = expected;
    let mut rows = Vec::new();
    let mut row_problems = 0u64;
    let mut report = |problem: RowProblem| {
        row_problems += 1;
        if rows.len() < MAX_LISTED {
            rows.push(problem);
        }
    };
    compare_calls(client, host_id, &calls, &mut report).await?;
    compare_outcomes(client, host_id, &outcomes, &mut report).await?;
    Ok(HostVerification {
        host_id: host_id.to_owned(),
        exported,
        chain,
        rows,
        row_problems,
    })
}

/// An outcome as compared: its seq, its decision's seq and its columns.
type ExpectedOutcome = (u64, u64, Vec<u8>);

/// The calls and outcomes the exported records give, in seq order. A line
/// that cannot be read gives nothing here: the chain's verifier reports it.
fn expected_rows(dir: &std::path::Path) -> (Vec<CallRow>, Vec<ExpectedOutcome>) {
    let mut calls = Vec::new();
    let mut outcomes = Vec::new();
    let Ok(reader) = RecordReader::open(dir) else {
        return (calls, outcomes);
    };
    for record in reader.flatten() {
        match line_call(&record.bytes) {
            Ok(LineCall::Decision(call)) => calls.push(*call),
            Ok(LineCall::Outcome(o)) => {
                let key = outcome_key(o.status.as_deref(), o.latency_us, o.error.as_deref());
                outcomes.push((o.outcome_seq, o.decision_seq, key));
            }
            _ => {}
        }
    }
    (calls, outcomes)
}

/// An outcome's columns as comparable bytes.
fn outcome_key(status: Option<&str>, latency_us: Option<u64>, error: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&(status, latency_us, error)).unwrap_or_default()
}

/// Walks the expected rows and the table's rows, both in seq order, side by side.
fn merge<T>(
    expected: &[(u64, T)],
    found: &[(u64, T)],
    table: &'static str,
    report: &mut impl FnMut(RowProblem),
) where
    T: PartialEq,
{
    let (mut e, mut f) = (expected.iter().peekable(), found.iter().peekable());
    loop {
        let problem = match (e.peek(), f.peek()) {
            (None, None) => return,
            (Some((seq, _)), None) => {
                e.next();
                (*seq, RowDifference::Missing)
            }
            (None, Some((seq, _))) => {
                f.next();
                (*seq, RowDifference::Unexpected)
            }
            (Some((a, x)), Some((b, y))) => {
                if a < b {
                    e.next();
                    (*a, RowDifference::Missing)
                } else if b < a {
                    f.next();
                    (*b, RowDifference::Unexpected)
                } else {
                    let same = x == y;
                    e.next();
                    f.next();
                    if same {
                        continue;
                    }
                    (*a, RowDifference::Differs)
                }
            }
        };
        report(RowProblem {
            table,
            seq: problem.0,
            what: problem.1,
        });
    }
}

async fn compare_calls(
    client: &Client,
    host_id: &str,
    expected: &[CallRow],
    report: &mut impl FnMut(RowProblem),
) -> Result<(), FleetError> {
    // Outcomes are compared on their own: this join finds none.
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM audit_calls c \
         LEFT JOIN audit_call_outcomes o ON false \
         WHERE c.host_id = $1 ORDER BY c.decision_seq"
    );
    let rows = client
        .query_raw(&sql, [host_id])
        .await
        .map_err(FleetError::query("reading the host's calls"))?;
    pin_mut!(rows);
    let mut found = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.map_err(FleetError::query("reading the host's calls"))?;
        match call_row(&row) {
            Ok(call) => found.push((call.call.decision_seq, Some(call.call))),
            // A row no host writes is a row that differs from every record.
            Err(_) => found.push((row.get::<_, i64>(1).max(0) as u64, None)),
        }
    }
    let expected: Vec<(u64, Option<CallRow>)> = expected
        .iter()
        .map(|c| (c.decision_seq, Some(c.clone())))
        .collect();
    merge(&expected, &found, "audit_calls", report);
    Ok(())
}

async fn compare_outcomes(
    client: &Client,
    host_id: &str,
    expected: &[ExpectedOutcome],
    report: &mut impl FnMut(RowProblem),
) -> Result<(), FleetError> {
    let rows = client
        .query(
            "SELECT outcome_seq, decision_seq, status, latency_us, error \
             FROM audit_call_outcomes WHERE host_id = $1 ORDER BY outcome_seq",
            &[&host_id],
        )
        .await
        .map_err(FleetError::query("reading the host's outcomes"))?;
    let found: Vec<(u64, (u64, Vec<u8>))> = rows
        .iter()
        .map(|row| {
            let latency = row.get::<_, Option<i64>>(3).map(|v| v.max(0) as u64);
            (
                row.get::<_, i64>(0).max(0) as u64,
                (
                    row.get::<_, i64>(1).max(0) as u64,
                    outcome_key(row.get(2), latency, row.get(4)),
                ),
            )
        })
        .collect();
    let expected: Vec<(u64, (u64, Vec<u8>))> = expected
        .iter()
        .map(|(seq, decision, key)| (*seq, (*decision, key.clone())))
        .collect();
    merge(&expected, &found, "audit_call_outcomes", report);
    Ok(())
}
