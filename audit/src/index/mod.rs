//! The query index: who did what, answered from an embedded SQLite database
//! instead of a scan of the log.
//!
//! The index lives in the log directory as `index.sqlite`. It holds nothing
//! the log does not: one row per tool call, joining the call's `decision`
//! record with its `outcome` record, and the position of the last record it
//! took. Delete it at any time; [`AuditIndex::reindex`] (`mandate audit
//! reindex <log>`) builds it again from the log.
//!
//! [`AuditIndex::catch_up`] takes only the records appended since the last
//! catch-up. It checks each record's hash and its link to the one before, so
//! the index never holds a record that does not extend its chain (it does not
//! check signed checkpoints: that is `mandate audit verify --key`). Before
//! that it checks that the records it already holds are still the log's
//! bytes: a segment whose file fingerprint (inode, size, modification and
//! change times) moved since it was indexed has its indexed records read
//! again, and a record edited, cut or rewritten since makes every catch-up
//! fail with [`IndexError::LogChanged`] until [`AuditIndex::reindex`] builds
//! the index from the log as it is. An unchanged log is not read again.
//!
//! ```
//! use mandate_audit::synthetic::{SyntheticSpec, write_synthetic_log};
//! use mandate_audit::{AuditIndex, CallQuery};
//!
//! let log = tempfile::tempdir()?;
//! write_synthetic_log(log.path(), &SyntheticSpec { records: 500, ..SyntheticSpec::default() })?;
//!
//! let mut index = AuditIndex::open(log.path())?;
//! let caught_up = index.catch_up()?;
//! assert_eq!(caught_up.records, 500);
//!
//! let query = CallQuery { user: Some("user-7".into()), ..CallQuery::default() };
//! for call in index.query(&query)? {
//!     assert_eq!(call.user_id.as_deref(), Some("user-7"));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod ingest;
mod line_call;
mod query;
mod record;
mod schema;
mod unchanged;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use error::{IndexError, RecordProblem};
pub use line_call::{CallResult, LineCall, line_call};
pub use query::{CallEffect, CallQuery, CallRow};
pub use schema::INDEX_FILE;

/// The query index of one log directory.
///
/// Opening it creates `<log>/index.sqlite` if needed. Several processes may
/// open the same index: catch-ups take turns, queries never wait for them.
#[derive(Debug)]
pub struct AuditIndex {
    conn: Connection,
    log: PathBuf,
    path: PathBuf,
    /// Why the first catch-up starts from scratch, when opening found an index
    /// of another layout.
    cleared: Option<RebuildReason>,
    batch_records: u64,
}

/// What [`AuditIndex::catch_up`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Records read and taken, each once.
    pub records: u64,
    /// Call rows added (one per decision record).
    pub calls: u64,
    /// The seq of the last record in the index afterwards.
    pub head_seq: Option<u64>,
    /// Set when the index was cleared and built again from the start of the log.
    pub rebuilt: Option<RebuildReason>,
    /// Segments whose indexed records were read again to check them, because the file
    /// changed since (the one being appended to, usually); 0 when the log is unchanged.
    pub rechecked: u64,
}

/// Why an index was built again from the start of its log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildReason {
    /// The segment holding the last record indexed is gone: the log was
    /// replaced, or retention removed that segment.
    #[error("segment `{segment}`, where the index had stopped, is no longer in the log")]
    SegmentGone {
        /// Its file name.
        segment: String,
    },
    /// The last record indexed is no longer where it was, as it was: the log
    /// was replaced, rewritten or cut short.
    #[error("record seq {seq}, where the index had stopped, is no longer in the log as it was")]
    RecordChanged {
        /// Its seq.
        seq: u64,
    },
    /// The index file was made by a version of Mandate with another layout.
    #[error("the index was made with another layout")]
    LayoutChanged,
}

impl AuditIndex {
    /// Opens the index of the log directory `log`, creating `<log>/index.sqlite`
    /// if it does not exist. It does not read any record; call
    /// [`catch_up`](Self::catch_up) for that.
    ///
    /// Fails if `log` is not a log directory (so no index file appears in a
    /// directory that is not a log), or if the index file cannot be opened.
    pub fn open(log: impl AsRef<Path>) -> Result<Self, IndexError> {
        let log = log.as_ref().to_path_buf();
        ingest::segments(&log)?;
        let path = log.join(INDEX_FILE);
        let (conn, cleared) = schema::open(&path).map_err(|error| {
            let path = path.clone();
            match error.sqlite_error_code() {
                Some(
                    rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::PermissionDenied,
                ) => IndexError::Unwritable { path, error },
                _ => IndexError::Sqlite { path, error },
            }
        })?;
        Ok(AuditIndex {
            conn,
            log,
            path,
            cleared: cleared.then_some(RebuildReason::LayoutChanged),
            batch_records: ingest::BATCH_RECORDS,
        })
    }

    /// Deletes the index of `log` and builds it again from the log.
    pub fn reindex(log: impl AsRef<Path>) -> Result<(Self, CatchUp), IndexError> {
        let log = log.as_ref();
        ingest::segments(log)?;
        let path = log.join(INDEX_FILE);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let file = PathBuf::from(file);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(IndexError::Remove { path: file, error }),
            }
        }
        let mut index = Self::open(log)?;
        let caught_up = index.catch_up()?;
        Ok((index, caught_up))
    }

    /// Takes the records appended to the log since the last catch-up, in
    /// transactions of a bounded number of records, until it reaches the end
    /// of the log. A last line still being written is left for next time.
    ///
    /// Refuses ([`IndexError::LogChanged`]) when records already indexed were
    /// changed or removed from the middle of the log since; segments removed
    /// from its start take their calls out of the index. Rebuilds from the
    /// start of the log when the segment it stopped in is gone
    /// ([`CatchUp::rebuilt`] says why). Fails on a record whose hash or link
    /// to the previous record is wrong, keeping everything before it.
    pub fn catch_up(&mut self) -> Result<CatchUp, IndexError> {
        let mut total = CatchUp {
            rebuilt: self.cleared.take(),
            ..CatchUp::default()
        };
        if schema::position(&self.conn)
            .map_err(|e| self.sql(e))?
            .is_none()
        {
            schema::drop_indexes(&mut self.conn).map_err(|e| self.sql(e))?;
        }
        let read = self.read_batches(&mut total);
        // Also after a bad record: what was read must be quick to query.
        let ensured = schema::ensure_indexes(&mut self.conn)
            .and_then(|()| schema::analyze_if_changed(&mut self.conn))
            .map_err(|e| self.sql(e));
        read?;
        ensured?;
        total.head_seq = self.head()?.map(|(seq, _)| seq);
        Ok(total)
    }

    fn read_batches(&mut self, total: &mut CatchUp) -> Result<(), IndexError> {
        let files = ingest::Files {
            log: &self.log,
            index: &self.path,
        };
        let mut check = true;
        loop {
            let batch = ingest::batch(&mut self.conn, &files, self.batch_records, check)?;
            check = false;
            total.records += batch.records;
            total.calls += batch.calls;
            total.rechecked += batch.rechecked;
            let rebuilt = batch.rebuilt.is_some();
            if rebuilt {
                total.rebuilt = batch.rebuilt;
            }
            if batch.at_end {
                return Ok(());
            }
            if rebuilt {
                // A rebuild that goes on past one batch loads like a first build.
                schema::drop_indexes(&mut self.conn).map_err(|error| files.sql(error))?;
            }
        }
    }

    /// The calls that match `query`, in log order. Answers from the index as
    /// it is; call [`catch_up`](Self::catch_up) first to include new records.
    pub fn query(&self, query: &CallQuery) -> Result<Vec<CallRow>, IndexError> {
        query::select(&self.conn, query).map_err(|e| self.sql(e))
    }

    /// How many calls match `query`, ignoring its limit.
    pub fn count(&self, query: &CallQuery) -> Result<u64, IndexError> {
        query::count(&self.conn, query).map_err(|e| self.sql(e))
    }

    /// The seq and hash of the last record in the index, if any.
    pub fn head(&self) -> Result<Option<(u64, String)>, IndexError> {
        schema::position(&self.conn)
            .map(|p| p.map(|p| (p.seq, p.hash)))
            .map_err(|e| self.sql(e))
    }

    /// The log directory.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The index file, `<log>/index.sqlite`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, error: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            error,
        }
    }
}
