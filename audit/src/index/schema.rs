//! The SQLite side of the index: the file, its tables and indexes, and the
//! remembered position in the log.
//!
//! The database holds nothing that is not in the log. `calls` has one row per
//! tool call, keyed by the seq of its decision record (the rowid, so rows come
//! back in log order for free); `state` remembers the last record indexed, so a
//! catch-up starts where the previous one stopped and can tell when the log it
//! remembers is no longer there.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

pub use crate::segments::INDEX_FILE;

/// Bumped whenever the tables change; an index of another version is rebuilt.
const SCHEMA_VERSION: i64 = 2;

/// How long to wait for another process that is catching the same index up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Page cache per connection, in KiB (SQLite's negative `cache_size`): enough
/// to keep the index b-trees hot while a large log is indexed.
const CACHE_KIB: i64 = 32 * 1024;

const TABLES: &str = "
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    segment TEXT NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    analyzed_calls INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE segments (
    name TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    indexed_end INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    fingerprint TEXT
);
CREATE TABLE calls (
    decision_seq INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    outcome_seq INTEGER,
    time_ms INTEGER NOT NULL,
    session_id TEXT,
    trace_id TEXT,
    user_id TEXT,
    agent_id TEXT,
    tool TEXT NOT NULL,
    resource TEXT,
    effect TEXT NOT NULL,
    decided_by TEXT,
    policies TEXT NOT NULL,
    message TEXT,
    approval_required INTEGER NOT NULL,
    approval_outcome TEXT,
    reviewer TEXT,
    approved_by TEXT,
    status TEXT,
    latency_us INTEGER,
    error TEXT
);
";

/// The secondary indexes, one per filter; each ends in `time_ms` so a time
/// range narrows the scan. A first build drops them and makes them again at
/// the end: one sort per index is far cheaper than keeping them in order row
/// by row.
const INDEXES: [(&str, &str); 6] = [
    ("calls_by_user", "calls (user_id, time_ms)"),
    ("calls_by_agent", "calls (agent_id, time_ms)"),
    ("calls_by_session", "calls (session_id, time_ms)"),
    ("calls_by_tool", "calls (tool, time_ms)"),
    (
        "calls_by_approver",
        "calls (approved_by, time_ms) WHERE approved_by IS NOT NULL",
    ),
    ("calls_by_time", "calls (time_ms)"),
];

/// Where the index stopped: the last record it took, and where that record's
/// line lies, so the next catch-up can check it is still there and go on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    /// File name of the segment holding the record.
    pub(super) segment: String,
    /// Byte offset of the record's line in the segment.
    pub(super) line_start: u64,
    /// Byte offset just after its newline: where reading goes on.
    pub(super) line_end: u64,
    /// Its seq.
    pub(super) seq: u64,
    /// Its hash.
    pub(super) hash: String,
}

/// Opens (creating if needed) the index database at `path`. Returns the
/// connection and whether an index of an older layout was found and cleared.
pub(super) fn open(path: &Path) -> rusqlite::Result<(Connection, bool)> {
    // SQLite creates the index (and gives its `-wal` and `-shm` files the same mode) with
    // whatever the umask allows; made first, it is private to the owner like the log.
    create_private(path).map_err(|error| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot create `{}`: {error}", path.display())),
        )
    })?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // The index can always be rebuilt from the log, so losing the last commit on
    // power loss is acceptable; WAL keeps it consistent either way.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(64);

    let mut cleared = false;
    if user_version(&conn)? != SCHEMA_VERSION {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have created it while this one waited for the lock.
        let version = user_version(&tx)?;
        if version != SCHEMA_VERSION {
            cleared = version != 0;
            tx.execute_batch(
                "DROP TABLE IF EXISTS calls; DROP TABLE IF EXISTS state; \
                 DROP TABLE IF EXISTS segments;",
            )?;
            tx.execute_batch(TABLES)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        tx.commit()?;
    }
    // A first build that was cut short may have left them out.
    ensure_indexes(&mut conn)?;
    analyze_if_changed(&mut conn)?;
    Ok((conn, cleared))
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// The remembered position, if anything has been indexed.
pub(super) fn position(conn: &Connection) -> rusqlite::Result<Option<Position>> {
    conn.prepare_cached("SELECT segment, line_start, line_end, seq, hash FROM state WHERE id = 1")?
        .query_row([], |row| {
            Ok(Position {
                segment: row.get(0)?,
                line_start: row.get(1)?,
                line_end: row.get(2)?,
                seq: row.get(3)?,
                hash: row.get(4)?,
            })
        })
        .optional()
}

/// Remembers `position`, in the same transaction as the rows it accounts
/// for, `calls` of which were added (or, if negative, removed).
pub(super) fn set_position(
    tx: &Transaction<'_>,
    position: &Position,
    calls: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO state (id, segment, line_start, line_end, seq, hash, calls)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET segment = excluded.segment,
             line_start = excluded.line_start, line_end = excluded.line_end,
             seq = excluded.seq, hash = excluded.hash, calls = calls + excluded.calls",
    )?
    .execute(params![
        position.segment,
        position.line_start,
        position.line_end,
        position.seq,
        position.hash,
        calls
    ])?;
    Ok(())
}

/// Gathers fresh statistics (`ANALYZE`, with the histograms of STAT4) once the
/// number of calls has doubled or halved since they were last gathered.
/// Without them SQLite cannot tell a time bound that keeps a few rows from one
/// that keeps them all, and may scan the whole table for `--since <an hour ago>`.
pub(super) fn analyze_if_changed(conn: &mut Connection) -> rusqlite::Result<bool> {
    let counts = conn
        .prepare_cached("SELECT calls, analyzed_calls FROM state WHERE id = 1")?
        .query_row([], |row| Ok((row.get::<_, u64>(0)?, row.get::<_, u64>(1)?)))
        .optional()?;
    let Some((calls, analyzed)) = counts else {
        return Ok(false);
    };
    let unchanged = calls / 2 < analyzed && analyzed / 2 < calls;
    if calls == analyzed || unchanged {
        return Ok(false);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("ANALYZE calls; UPDATE state SET analyzed_calls = calls WHERE id = 1;")?;
    tx.commit()?;
    Ok(true)
}

/// Forgets everything, for a rebuild inside the caller's transaction.
pub(super) fn clear(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("DELETE FROM calls; DELETE FROM state; DELETE FROM segments;")
}

/// Drops the secondary indexes before a first build.
pub(super) fn drop_indexes(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (name, _) in INDEXES {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    tx.commit()
}

/// Makes the secondary indexes that are missing (none, usually: then this
/// only reads the schema).
pub(super) fn ensure_indexes(conn: &mut Connection) -> rusqlite::Result<()> {
    let missing = |conn: &Connection| -> rusqlite::Result<bool> {
        let count: usize = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'calls'
             AND name LIKE 'calls_by_%'",
            [],
            |row| row.get(0),
        )?;
        Ok(count < INDEXES.len())
    };
    if !missing(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (name, definition) in INDEXES {
        tx.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {definition}"
        ))?;
    }
    // New indexes have no statistics yet.
    tx.execute_batch("UPDATE state SET analyzed_calls = 0 WHERE id = 1")?;
    tx.commit()
}

/// Creates an empty file at `path`, mode 0600, unless something is there already.
fn create_private(path: &Path) -> std::io::Result<()> {
    let modes = crate::Modes::new(false);
    match modes.options().write(true).create_new(true).open(path) {
        Ok(file) => modes.set_file(&file),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}
