//! Shipping one host's records to the fleet's database: the exact bytes of
//! each line, its seq and hash, in the host's name (its login role, which
//! row-level security holds it to).
//!
//! Shipping is idempotent and resumes where the database left off: it asks
//! for the last seq the database holds for this host, checks that the local
//! record of that seq has the same hash (a database that holds another
//! history is refused, not appended to), and inserts what follows, in order
//! and without gaps, a batch per transaction. A crash on either side loses
//! nothing: the next run starts again from what was committed. The local log
//! stays the system of record; shipping only reads it.

use std::path::{Path, PathBuf};

use mandate_audit::{CHECKPOINT_FILE, LineCall, RecordReader, SignedCheckpoint, line_call};
use tokio_postgres::{Client, Transaction};

use crate::FleetError;

/// Records per transaction.
pub const BATCH: usize = 500;

/// What a shipping run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    /// The host's name in the database (the login role).
    pub host_id: String,
    /// The last seq the database held before this run (0: none).
    pub from: u64,
    /// Records inserted now.
    pub shipped: u64,
    /// The last seq the database holds now.
    pub through: u64,
    /// Lines of the checkpoint file inserted now.
    pub checkpoints: u64,
}

/// Why a log could not be shipped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Database(#[from] FleetError),
    #[error("cannot read the log `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "`{segment}` line {line}: the record is not valid ({problem}); run `mandate audit verify` on the log"
    )]
    Invalid {
        segment: PathBuf,
        line: u64,
        problem: String,
    },
    #[error(
        "`{segment}` line {line}: expected seq {expected} next, found {found}; the log has a gap, run `mandate audit verify` on it"
    )]
    Gap {
        segment: PathBuf,
        line: u64,
        expected: u64,
        found: String,
    },
    #[error(
        "the database holds seq {seq} of host `{host_id}` with hash {database}, but the local log's record {seq} has hash {local}: they are different histories"
    )]
    Diverged {
        host_id: String,
        seq: u64,
        database: String,
        local: String,
    },
    #[error(
        "the database holds host `{host_id}` up to seq {seq}, but the local log ends before it: is this the host's log?"
    )]
    Behind { host_id: String, seq: u64 },
}

/// One record to ship, and what it means for the query tables.
struct Line {
    seq: u64,
    hash: String,
    bytes: Vec<u8>,
    call: LineCall,
}

/// Reads the log's records from the segment holding seq `from` on, checking
/// each line from `from` on, its seq and that there is no gap; sends the
/// record `from` (to be held against the database's) and those after it in
/// batches. A last line without its newline is being written: reading stops
/// before it, and the next run ships it. Runs on a blocking thread.
fn read_batches(
    dir: PathBuf,
    from: u64,
    sender: tokio::sync::mpsc::Sender<Result<Vec<Line>, ShipError>>,
) {
    let fail = |error| {
        let _ = sender.blocking_send(Err(error));
    };
    let reader = match RecordReader::open_from(&dir, from.max(1)) {
        Ok(reader) => reader,
        Err(error) => {
            return fail(ShipError::Read {
                path: dir,
                reason: error.to_string(),
            });
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut expected = None;
    for record in reader {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                return fail(ShipError::Read {
                    path: dir,
                    reason: error.to_string(),
                });
            }
        };
        if !record.terminated {
            break;
        }
        // The first record read starts the count: seq 1, the first left
        // after retention, or the first of the segment holding `from`;
        // after what the database holds, it must follow on at once.
        let want = match expected {
            Some(want) => want,
            None if from > 0 && record.seq.is_some_and(|seq| seq > from) => from + 1,
            None => record.seq.unwrap_or(1),
        };
        if record.seq != Some(want) {
            return fail(ShipError::Gap {
                segment: record.segment,
                line: record.line,
                expected: want,
                found: record.seq.map_or("none".into(), |s| s.to_string()),
            });
        }
        expected = Some(want + 1);
        // What the database holds already is neither checked nor sent again.
        if want < from {
            continue;
        }
        let hash = match record.checked_hash() {
            Ok(hash) => hash.to_owned(),
            Err(problem) => {
                return fail(ShipError::Invalid {
                    segment: record.segment,
                    line: record.line,
                    problem: problem.to_string(),
                });
            }
        };
        // A record the query tables cannot read (one a host wrote itself,
        // in a shape of its own) is still shipped: it only has no query row.
        let call = line_call(&record.bytes).unwrap_or(LineCall::Other);
        batch.push(Line {
            seq: want,
            hash,
            bytes: record.bytes,
            call,
        });
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
}

/// Ships the records of the log in `dir` that the database lacks.
pub async fn ship(client: &mut Client, dir: &Path) -> Result<Shipped, ShipError> {
    let row = client
        .query_one(
            "SELECT current_user::text, \
                    (SELECT seq FROM audit_records WHERE host_id = current_user ORDER BY seq DESC LIMIT 1), \
                    (SELECT hash FROM audit_records WHERE host_id = current_user ORDER BY seq DESC LIMIT 1)",
            &[],
        )
        .await
        .map_err(FleetError::query("reading where shipping left off"))?;
    let host_id: String = row.get(0);
    let from = row.get::<_, Option<i64>>(1).unwrap_or(0) as u64;
    let held_hash: Option<String> = row.get(2);

    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let reading = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || read_batches(dir, from, sender)
    });
    let mut through = from;
    let mut shipped = 0u64;
    let mut matched = from == 0;
    while let Some(batch) = batches.recv().await {
        let batch = batch?;
        if !matched && let Some(line) = batch.iter().find(|l| l.seq == from) {
            let database = held_hash.clone().unwrap_or_default();
            if line.hash != database {
                return Err(ShipError::Diverged {
                    host_id,
                    seq: from,
                    database,
                    local: line.hash.clone(),
                });
            }
            matched = true;
        }
        let new: Vec<&Line> = batch.iter().filter(|l| l.seq > from).collect();
        if new.is_empty() {
            continue;
        }
        let transaction = client
            .transaction()
            .await
            .map_err(FleetError::query("starting a shipping batch"))?;
        insert_batch(&transaction, &new).await?;
        transaction
            .commit()
            .await
            .map_err(FleetError::query("committing records"))?;
        shipped += new.len() as u64;
        through = new.last().map_or(through, |l| l.seq);
    }
    // The reader ended: a panic there is a bug, not a state of the log.
    let _ = reading.await;
    if !matched {
        return Err(ShipError::Behind { host_id, seq: from });
    }
    let checkpoints = ship_checkpoints(client, dir, through).await?;
    Ok(Shipped {
        host_id,
        from,
        shipped,
        through,
        checkpoints,
    })
}

/// Inserts one batch of records and the query rows read from them.
async fn insert_batch(transaction: &Transaction<'_>, new: &[&Line]) -> Result<(), ShipError> {
    let seqs: Vec<i64> = new.iter().map(|l| l.seq as i64).collect();
    let hashes: Vec<&str> = new.iter().map(|l| l.hash.as_str()).collect();
    let lines: Vec<&[u8]> = new.iter().map(|l| l.bytes.as_slice()).collect();
    transaction
        .execute(
            "INSERT INTO audit_records (host_id, seq, hash, line) \
             SELECT current_user, * FROM unnest($1::bigint[], $2::text[], $3::bytea[])",
            &[&seqs, &hashes, &lines],
        )
        .await
        .map_err(FleetError::query("inserting records"))?;

    let calls: Vec<_> = new
        .iter()
        .filter_map(|l| match &l.call {
            LineCall::Decision(call) => Some(call.as_ref()),
            _ => None,
        })
        .collect();
    if !calls.is_empty() {
        let policies: Vec<String> = calls
            .iter()
            .map(|c| serde_json::Value::from(c.determining_policies.clone()).to_string())
            .collect();
        let column = |f: fn(&mandate_audit::CallRow) -> Option<&str>| -> Vec<Option<&str>> {
            calls.iter().map(|c| f(c)).collect()
        };
        transaction
            .execute(
                "INSERT INTO audit_calls (host_id, decision_seq, call_id, decided_at, session_id, \
                 trace_id, user_id, agent_id, tool, resource, effect, decided_by, policies, message, \
                 approval_required, approval_outcome, reviewer, approved_by) \
                 SELECT current_user, seq, call_id, timestamptz 'epoch' + ms * interval '1 millisecond', \
                 session_id, trace_id, user_id, agent_id, tool, resource, effect, decided_by, \
                 policies::jsonb, message, approval_required, approval_outcome, reviewer, approved_by \
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::bool[], $15::text[], $16::text[], $17::text[]) \
                 AS c(seq, call_id, ms, session_id, trace_id, user_id, agent_id, tool, resource, \
                 effect, decided_by, policies, message, approval_required, approval_outcome, \
                 reviewer, approved_by)",
                &[
                    &calls.iter().map(|c| c.decision_seq as i64).collect::<Vec<_>>(),
                    &calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
                    &calls.iter().map(|c| c.time.as_millisecond()).collect::<Vec<_>>(),
                    &column(|c| c.session_id.as_deref()),
                    &column(|c| c.trace_id.as_deref()),
                    &column(|c| c.user_id.as_deref()),
                    &column(|c| c.agent_id.as_deref()),
                    &calls.iter().map(|c| c.tool.as_str()).collect::<Vec<_>>(),
                    &column(|c| c.resource.as_deref()),
                    &calls.iter().map(|c| c.effect.as_str()).collect::<Vec<_>>(),
                    &column(|c| c.decided_by.as_deref()),
                    &policies,
                    &column(|c| c.message.as_deref()),
                    &calls.iter().map(|c| c.approval_required).collect::<Vec<_>>(),
                    &column(|c| c.approval_outcome.as_deref()),
                    &column(|c| c.reviewer.as_deref()),
                    &column(|c| c.approved_by.as_deref()),
                ],
            )
            .await
            .map_err(FleetError::query("inserting the calls read from the records"))?;
    }

    let outcomes: Vec<_> = new
        .iter()
        .filter_map(|l| match &l.call {
            LineCall::Outcome(outcome) => Some(outcome),
            _ => None,
        })
        .collect();
    if !outcomes.is_empty() {
        transaction
            .execute(
                "INSERT INTO audit_call_outcomes (host_id, decision_seq, outcome_seq, status, \
                 latency_us, error) \
                 SELECT current_user, * FROM unnest($1::bigint[], $2::bigint[], $3::text[], \
                 $4::bigint[], $5::text[])",
                &[
                    &outcomes
                        .iter()
                        .map(|o| o.decision_seq as i64)
                        .collect::<Vec<_>>(),
                    &outcomes
                        .iter()
                        .map(|o| o.outcome_seq as i64)
                        .collect::<Vec<_>>(),
                    &outcomes
                        .iter()
                        .map(|o| o.status.as_deref())
                        .collect::<Vec<_>>(),
                    &outcomes
                        .iter()
                        .map(|o| o.latency_us.map(|us| us as i64))
                        .collect::<Vec<_>>(),
                    &outcomes
                        .iter()
                        .map(|o| o.error.as_deref())
                        .collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(FleetError::query(
                "inserting the outcomes read from the records",
            ))?;
    }
    Ok(())
}

/// Ships the lines of the log's checkpoint file that the database lacks, up
/// to the first that vouches for a record not shipped yet (it goes with the
/// next run): the database never holds a checkpoint beyond its records.
async fn ship_checkpoints(client: &mut Client, dir: &Path, through: u64) -> Result<u64, ShipError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match tokio::fs::read(&path).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => {
            return Err(ShipError::Read {
                path,
                reason: error.to_string(),
            });
        }
    };
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_checkpoints WHERE host_id = current_user",
            &[],
        )
        .await
        .map_err(FleetError::query(
            "reading how many checkpoints are shipped",
        ))?
        .get(0);
    let mut new = Vec::new();
    // Only whole lines: the writer may be appending the last one now.
    let whole = whole_lines(&text);
    if whole.is_empty() {
        return Ok(0);
    }
    for (line_no, line) in (1i64..).zip(whole.split(|b| *b == b'\n')) {
        let signed: SignedCheckpoint =
            serde_json::from_slice(line).map_err(|error| ShipError::Invalid {
                segment: path.clone(),
                line: line_no as u64,
                problem: format!("not a signed checkpoint: {error}"),
            })?;
        if signed.checkpoint.seq > through {
            break;
        }
        if line_no > held {
            new.push((line_no, signed.checkpoint.seq as i64, line));
        }
    }
    if new.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "INSERT INTO audit_checkpoints (host_id, line_no, seq, line) \
             SELECT current_user, * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])",
            &[
                &new.iter().map(|n| n.0).collect::<Vec<_>>(),
                &new.iter().map(|n| n.1).collect::<Vec<_>>(),
                &new.iter().map(|n| n.2).collect::<Vec<_>>(),
            ],
        )
        .await
        .map_err(FleetError::query("inserting checkpoints"))?;
    Ok(new.len() as u64)
}

/// How far a host's shipping is behind its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipStatus {
    /// The host's name in the database.
    pub host_id: String,
    /// The last seq in the local log.
    pub local_seq: u64,
    /// The last seq the database holds (0: none).
    pub database_seq: u64,
    /// When the database received its last record of this host.
    pub last_shipped_at: Option<String>,
}

impl ShipStatus {
    /// Records in the local log not in the database yet.
    pub fn lag(&self) -> u64 {
        self.local_seq.saturating_sub(self.database_seq)
    }
}

/// Compares the local log's head with what the database holds of this host,
/// without shipping anything.
pub async fn status(client: &Client, dir: &Path) -> Result<ShipStatus, ShipError> {
    let local_seq = local_head(dir).await?;
    let row = client
        .query_one(
            "SELECT current_user::text, \
                    (SELECT seq FROM audit_records WHERE host_id = current_user ORDER BY seq DESC LIMIT 1), \
                    (SELECT to_char(shipped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                       FROM audit_records WHERE host_id = current_user ORDER BY seq DESC LIMIT 1)",
            &[],
        )
        .await
        .map_err(FleetError::query("reading where shipping left off"))?;
    Ok(ShipStatus {
        host_id: row.get(0),
        local_seq,
        database_seq: row.get::<_, Option<i64>>(1).unwrap_or(0) as u64,
        last_shipped_at: row.get(2),
    })
}

/// The seq of the local log's last whole record: the last line of its last
/// segment (a segment is bounded by rotation, so this reads little).
async fn local_head(dir: &Path) -> Result<u64, ShipError> {
    let read_failed = |reason: String| ShipError::Read {
        path: dir.to_path_buf(),
        reason,
    };
    let segments = mandate_audit::list_segments(dir).map_err(|e| read_failed(e.to_string()))?;
    let Some(last) = segments.last() else {
        return Err(read_failed(
            "it holds no segment files; is this an audit log directory?".into(),
        ));
    };
    let bytes = tokio::fs::read(&last.path)
        .await
        .map_err(|e| read_failed(e.to_string()))?;
    let whole = whole_lines(&bytes);
    let line = whole.rsplit(|b| *b == b'\n').next().unwrap_or_default();
    Ok(mandate_audit::line_seq(line).unwrap_or(last.first_seq.saturating_sub(1)))
}

/// The bytes before the last newline: the whole lines of a file a writer may
/// be appending to.
fn whole_lines(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(&[][..], |end| &bytes[..end])
}
