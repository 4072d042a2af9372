//! [`AuditLog`]: the one writer of a log file, appending durable records to its chain.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use serde::Serialize;

use super::chain::{
    BodyFields, EncodedLine, FORMAT, GENESIS_HASH, LOG_START_KIND, encode_line, now_millis,
};
use super::error::AuditError;
use super::verify::{Chain, check_record, verify_reader};

/// An append-only, hash-chained audit log file.
///
/// Each [`append`](AuditLog::append) is durable (written and `fsync`ed) before it returns.
/// Appends from many threads are serialized by an internal lock, so records get distinct,
/// consecutive seqs in file order. The file is also locked against other writers (an advisory
/// lock, held until the log is dropped), so two `AuditLog`s never fork one chain.
///
/// Appends block on disk I/O; async callers should run them on a blocking thread.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<State>,
}

/// What [`AuditLog::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The record's seq.
    pub seq: u64,
    /// The record's hash, which the next record holds as `prev_hash`.
    pub hash: String,
    /// The record's timestamp, exactly as written (whole milliseconds).
    pub timestamp: Timestamp,
}

/// The file and the chain head, guarded together so that a record's seq, `prev_hash` and place
/// in the file always agree.
#[derive(Debug)]
struct State {
    file: File,
    /// The head: the last record's seq and hash.
    seq: u64,
    hash: String,
    /// The file's length after the last record; a failed write is truncated back to it.
    len: u64,
    /// Set when a failed write could not be truncated away: the tail is unknown.
    poisoned: bool,
    #[cfg(test)]
    faults: Faults,
}

/// Failures the tests inject where the real ones cannot be provoked (tests may run as root).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Faults {
    /// Write half of the line, then fail.
    pub(super) write: bool,
    /// Write the line, then fail to sync.
    pub(super) sync: bool,
    /// Fail to truncate a failed write away.
    pub(super) rollback: bool,
}

/// Body of the record that opens every log.
#[derive(Serialize)]
struct LogStartBody {
    kind: &'static str,
    format: &'static str,
}

impl AuditLog {
    /// Opens the log at `path` for appending, creating it if needed.
    ///
    /// A missing or empty file gets a `log_start` record (seq 1), made durable together with
    /// its directory entry. An existing log must start with a `log_start` record and end with a
    /// whole record whose hash checks out; if it does not, the whole file is verified to name
    /// the line at fault and the log refuses to open ([`AuditError::Invalid`]) rather than
    /// extend a damaged chain.
    ///
    /// ```
    /// use mandate::audit::AuditLog;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = AuditLog::open(dir.path().join("audit.jsonl"))?;
    /// let appended = log.append(&serde_json::json!({"kind": "session_start"}))?;
    /// assert_eq!(appended.seq, 2);
    /// assert_eq!(log.head(), (2, appended.hash));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |error| AuditError::Open {
            path: path.clone(),
            error,
        };
        let read_error = |error| AuditError::Read {
            path: path.clone(),
            error,
        };

        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(AuditError::Locked { path }),
            Err(TryLockError::Error(error)) => return Err(open_error(error)),
        }
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(AuditError::NotAFile { path });
        }

        let mut state = State {
            file,
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
            len: metadata.len(),
            poisoned: false,
            #[cfg(test)]
            faults: Faults::default(),
        };
        if state.len == 0 {
            let body = BodyFields::new(&LogStartBody {
                kind: LOG_START_KIND,
                format: FORMAT,
            })
            .map_err(|error| AuditError::Body {
                path: path.clone(),
                error,
            })?;
            state.append(&path, &body)?;
            sync_parent_dir(&path).map_err(|error| AuditError::Write {
                path: path.clone(),
                error,
            })?;
        } else {
            let (seq, hash) = match read_head(&state.file, state.len).map_err(read_error)? {
                Some(head) => head,
                None => {
                    // The quick look found damage: walk the whole chain to name the first bad line.
                    let mut reader = &state.file;
                    reader.seek(SeekFrom::Start(0)).map_err(read_error)?;
                    let report = verify_reader(BufReader::new(reader)).map_err(|error| {
                        AuditError::Invalid {
                            path: path.clone(),
                            error: error.with_path(&path),
                        }
                    })?;
                    (report.head_seq, report.head_hash)
                }
            };
            state.seq = seq;
            state.hash = hash;
        }
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    /// Appends a record with the fields of `body` and returns once it is durable.
    ///
    /// `body` must serialize to a JSON object without the keys `seq`, `prev_hash`, `timestamp`
    /// and `hash`, which the log stamps itself ([`AuditError::Body`] otherwise; nothing is
    /// written). If writing or syncing fails, the partial record is truncated away and the head
    /// does not advance ([`AuditError::Write`]); if that truncation fails too, the log refuses
    /// every later append ([`AuditError::WriteUnrecovered`], then [`AuditError::Poisoned`]).
    pub fn append<T: Serialize + ?Sized>(&self, body: &T) -> Result<Appended, AuditError> {
        let body = BodyFields::new(body).map_err(|error| AuditError::Body {
            path: self.path.clone(),
            error,
        })?;
        let mut state = self.lock()?;
        let (seq, hash, timestamp) = state.append(&self.path, &body)?;
        drop(state);
        Ok(Appended {
            seq,
            hash,
            timestamp,
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chain head: the last record's seq and hash.
    pub fn head(&self) -> (u64, String) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.seq, state.hash.clone())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, AuditError> {
        // A thread panicked mid-append: the tail is unknown, so fail closed.
        self.state.lock().map_err(|_| AuditError::Poisoned {
            path: self.path.clone(),
        })
    }

    #[cfg(test)]
    pub(super) fn inject(&self, faults: Faults) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .faults = faults;
    }
}

impl State {
    /// Stamps, writes and syncs the next record, then advances the head.
    fn append(
        &mut self,
        path: &Path,
        body: &BodyFields,
    ) -> Result<(u64, String, Timestamp), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: path.to_path_buf(),
            });
        }
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| AuditError::SeqExhausted { path: path.into() })?;
        let timestamp = now_millis();
        let EncodedLine { bytes, hash } = encode_line(seq, &self.hash, timestamp, body);
        if let Err(error) = self.write_durably(&bytes) {
            return Err(match self.roll_back() {
                Ok(()) => AuditError::Write {
                    path: path.to_path_buf(),
                    error,
                },
                Err(rollback) => {
                    self.poisoned = true;
                    AuditError::WriteUnrecovered {
                        path: path.to_path_buf(),
                        error,
                        rollback,
                    }
                }
            });
        }
        self.len += bytes.len() as u64;
        self.seq = seq;
        self.hash.clone_from(&hash);
        Ok((seq, hash, timestamp))
    }

    /// One `write_all` of the whole line (the file is in append mode), then `fdatasync`.
    fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.write {
            let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
            self.file.write_all(half)?;
            return Err(io::Error::other("injected write failure"));
        }
        self.file.write_all(bytes)?;
        #[cfg(test)]
        if self.faults.sync {
            return Err(io::Error::other("injected sync failure"));
        }
        self.file.sync_data()
    }

    /// Truncates the file back to the end of the last good record, durably.
    fn roll_back(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.rollback {
            return Err(io::Error::other("injected truncate failure"));
        }
        self.file.set_len(self.len)?;
        self.file.sync_data()
    }
}

/// Finds the head of a non-empty log by reading only its first and last lines.
///
/// Returns `None` when either looks damaged, so that the caller can verify the whole file to
/// report exactly where.
fn read_head(file: &File, len: u64) -> io::Result<Option<(u64, String)>> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    let mut first = Vec::new();
    BufReader::new(reader).read_until(b'\n', &mut first)?;
    let mut chain = Chain::default();
    let pushed = match first.strip_suffix(b"\n") {
        Some(line) => chain.push(line, true),
        None => chain.push(&first, false),
    };
    if pushed.is_err() {
        return Ok(None);
    }
    if first.len() as u64 == len {
        return Ok(chain
            .finish()
            .ok()
            .map(|report| (report.head_seq, report.head_hash)));
    }
    let Some(last) = read_last_line(file, len)? else {
        return Ok(None);
    };
    Ok(check_record(&last)
        .ok()
        .filter(|record| record.seq > 1)
        .map(|record| (record.seq, record.hash)))
}

/// Reads the last line of a file of `len > 0` bytes, without its newline; `None` when the file
/// does not end with a newline (a torn tail).
fn read_last_line(file: &File, len: u64) -> io::Result<Option<Vec<u8>>> {
    const CHUNK: u64 = 8 * 1024;
    let mut reader = file;
    let Some(end) = len.checked_sub(1) else {
        return Ok(None);
    };
    let mut last_byte = [0u8];
    reader.seek(SeekFrom::Start(end))?;
    reader.read_exact(&mut last_byte)?;
    if last_byte != *b"\n" {
        return Ok(None);
    }
    // Walk back chunk by chunk to the newline before the last line.
    let mut start = end;
    let mut chunk = Vec::new();
    while start > 0 {
        let chunk_start = start.saturating_sub(CHUNK);
        chunk.resize(
            usize::try_from(start - chunk_start).map_err(io::Error::other)?,
            0,
        );
        reader.seek(SeekFrom::Start(chunk_start))?;
        reader.read_exact(&mut chunk)?;
        if let Some(newline) = chunk.iter().rposition(|&b| b == b'\n') {
            start = chunk_start + newline as u64 + 1;
            break;
        }
        start = chunk_start;
    }
    let mut line = vec![0u8; usize::try_from(end - start).map_err(io::Error::other)?];
    reader.seek(SeekFrom::Start(start))?;
    reader.read_exact(&mut line)?;
    Ok(Some(line))
}

/// Makes a new file's directory entry durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
