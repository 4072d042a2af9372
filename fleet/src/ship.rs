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

use mandate_audit::RecordReader;
use tokio_postgres::Client;

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

/// One record to ship.
struct Line {
    seq: u64,
    hash: String,
    bytes: Vec<u8>,
}

/// Reads the log's records in order, checking each line, its seq and that
/// there is no gap; sends them in batches. Runs on a blocking thread.
fn read_batches(dir: PathBuf, sender: tokio::sync::mpsc::Sender<Result<Vec<Line>, ShipError>>) {
    let fail = |error| {
        let _ = sender.blocking_send(Err(error));
    };
    let reader = match RecordReader::open(&dir) {
        Ok(reader) => reader,
        Err(error) => {
            return fail(ShipError::Read {
                path: dir,
                reason: error.to_string(),
            });
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    for (expected, record) in (1u64..).zip(reader) {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                return fail(ShipError::Read {
                    path: dir,
                    reason: error.to_string(),
                });
            }
        };
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
        if record.seq != Some(expected) {
            return fail(ShipError::Gap {
                segment: record.segment,
                line: record.line,
                expected,
                found: record.seq.map_or("none".into(), |s| s.to_string()),
            });
        }
        batch.push(Line {
            seq: expected,
            hash,
            bytes: record.bytes,
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
        move || read_batches(dir, sender)
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
        let insert = transaction
            .prepare(
                "INSERT INTO audit_records (host_id, seq, hash, line) \
                 SELECT current_user, * FROM unnest($1::bigint[], $2::text[], $3::bytea[])",
            )
            .await
            .map_err(FleetError::query("preparing the records' insert"))?;
        let seqs: Vec<i64> = new.iter().map(|l| l.seq as i64).collect();
        let hashes: Vec<&str> = new.iter().map(|l| l.hash.as_str()).collect();
        let lines: Vec<&[u8]> = new.iter().map(|l| l.bytes.as_slice()).collect();
        transaction
            .execute(&insert, &[&seqs, &hashes, &lines])
            .await
            .map_err(FleetError::query("inserting records"))?;
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
    Ok(Shipped {
        host_id,
        from,
        shipped,
        through,
    })
}
