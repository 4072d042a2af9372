//! The active segment: the one file the writer appends to, and the checks that it is still the
//! file the writer opened and holds exactly what the writer wrote.

use crate::Modes;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::super::error::AuditError;
use super::super::segments::segment_name;
use super::faults::Fault;

/// The segment being appended to.
#[derive(Debug)]
pub(super) struct ActiveSegment {
    /// Its path inside the log directory.
    pub(super) path: PathBuf,
    /// Its file name.
    pub(super) name: String,
    /// The seq its first record has (or will have, while it is empty).
    pub(super) first_seq: u64,
    /// The name of the segment before it, for its `segment_start` record.
    pub(super) previous: Option<String>,
    /// When it was started, for rotation by age.
    pub(super) started: Timestamp,
    /// Bytes of whole records written; those past `durable_len` wait for a sync.
    pub(super) len: u64,
    /// Bytes known to be durable.
    pub(super) durable_len: u64,
    file: File,
    identity: Identity,
    /// Set when bytes past this length must be cut off before anything else is written: a
    /// failed write or sync whose removal failed too.
    truncate_to: Option<u64>,
}

/// What identifies a file independently of its name: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }

    #[cfg(not(unix))]
    fn of(_metadata: &std::fs::Metadata) -> Self {
        Identity { dev: 0, ino: 0 }
    }
}

/// An I/O error kept in a form that can be handed to every caller of a failed batch.
#[derive(Debug, Clone)]
pub(super) struct IoFailure {
    kind: io::ErrorKind,
    os: Option<i32>,
    text: String,
}

impl From<&io::Error> for IoFailure {
    fn from(error: &io::Error) -> Self {
        IoFailure {
            kind: error.kind(),
            os: error.raw_os_error(),
            text: error.to_string(),
        }
    }
}

impl IoFailure {
    pub(super) fn error(&self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.text.clone()),
        }
    }
}

/// Why a commit did not happen. Nothing of it is in the log.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// Writing, syncing or creating a file failed; what was written was removed.
    Write { path: PathBuf, error: IoFailure },
    /// Writing failed and removing the partial bytes failed too.
    Unrecovered {
        path: PathBuf,
        error: IoFailure,
        rollback: IoFailure,
    },
    /// The segment's name no longer exists.
    Removed { path: PathBuf },
    /// The segment's name now belongs to another file.
    Replaced { path: PathBuf },
    /// The segment's size is not what the writer wrote.
    Changed {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// No seq is left.
    SeqExhausted { dir: PathBuf },
}

impl Failure {
    pub(super) fn write(path: &Path, error: &io::Error) -> Self {
        Failure::Write {
            path: path.to_path_buf(),
            error: error.into(),
        }
    }

    /// The error a refused caller gets.
    pub(super) fn to_error(&self) -> AuditError {
        match self {
            Failure::Write { path, error } => AuditError::Write {
                path: path.clone(),
                error: error.error(),
            },
            Failure::Unrecovered {
                path,
                error,
                rollback,
            } => AuditError::WriteUnrecovered {
                path: path.clone(),
                error: error.error(),
                rollback: rollback.error(),
            },
            Failure::Removed { path } => AuditError::SegmentRemoved { path: path.clone() },
            Failure::Replaced { path } => AuditError::SegmentReplaced { path: path.clone() },
            Failure::Changed {
                path,
                expected,
                found,
            } => AuditError::SegmentChanged {
                path: path.clone(),
                expected: *expected,
                found: *found,
            },
            Failure::SeqExhausted { dir } => AuditError::SeqExhausted { path: dir.clone() },
        }
    }
}

impl ActiveSegment {
    /// Opens an existing segment whose whole records end at its current length.
    pub(super) fn open(
        path: PathBuf,
        first_seq: u64,
        previous: Option<String>,
        started: Timestamp,
    ) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let metadata = file.metadata()?;
        Ok(ActiveSegment {
            name: segment_name(first_seq),
            path,
            first_seq,
            previous,
            started,
            len: metadata.len(),
            durable_len: metadata.len(),
            identity: Identity::of(&metadata),
            file,
            truncate_to: None,
        })
    }

    /// Creates the empty segment whose first record will have `first_seq`, durably (its
    /// directory entry is synced). Its start record goes in with the next commit.
    pub(super) fn create(
        dir: &Path,
        first_seq: u64,
        previous: Option<String>,
        modes: Modes,
    ) -> io::Result<Self> {
        let path = dir.join(segment_name(first_seq));
        let file = modes
            .options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        modes.set_file(&file)?;
        sync_dir(dir)?;
        let metadata = file.metadata()?;
        Ok(ActiveSegment {
            name: segment_name(first_seq),
            path,
            first_seq,
            previous,
            started: Timestamp::now(),
            len: 0,
            durable_len: 0,
            identity: Identity::of(&metadata),
            file,
            truncate_to: None,
        })
    }

    /// Checks, before a write, that the name still leads to this file and that the file holds
    /// exactly the records written, first cutting off what a failed write or sync left.
    pub(super) fn check(&mut self, fault: Option<Fault>) -> Result<(), Failure> {
        if let Some(target) = self.truncate_to {
            self.truncate(target, fault)
                .map_err(|rollback| Failure::Unrecovered {
                    path: self.path.clone(),
                    error: IoFailure::from(&io::Error::other(
                        "an earlier write left a partial record",
                    )),
                    rollback: IoFailure::from(&rollback),
                })?;
        }
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Failure::Removed {
                    path: self.path.clone(),
                });
            }
            Err(error) => return Err(Failure::write(&self.path, &error)),
        };
        if Identity::of(&metadata) != self.identity {
            return Err(Failure::Replaced {
                path: self.path.clone(),
            });
        }
        if metadata.len() != self.len {
            return Err(Failure::Changed {
                path: self.path.clone(),
                expected: self.len,
                found: metadata.len(),
            });
        }
        Ok(())
    }

    /// Appends `bytes` with one write (not synced yet). On failure what was written of them is
    /// cut off again.
    pub(super) fn write(&mut self, bytes: &[u8], fault: Option<Fault>) -> Result<(), Failure> {
        let start = self.len;
        match self.write_bytes(bytes, fault) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => Err(self.cut_back(start, &error, fault)),
        }
    }

    fn write_bytes(&mut self, bytes: &[u8], fault: Option<Fault>) -> io::Result<()> {
        let mut file = &self.file;
        match fault {
            Some(Fault::PermissionDenied) => Err(Fault::PermissionDenied.error()),
            Some(fault @ (Fault::DiskFull | Fault::Io | Fault::RollbackFails)) => {
                let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
                file.write_all(half)?;
                Err(fault.error())
            }
            _ => file.write_all(bytes),
        }
    }

    /// Makes everything written durable with one `fdatasync`; on failure everything not
    /// durable before is cut off.
    pub(super) fn sync(&mut self, fault: Option<Fault>) -> Result<(), Failure> {
        match sync_file(&self.file, fault) {
            Ok(()) => {
                self.durable_len = self.len;
                Ok(())
            }
            Err(error) => Err(self.cut_back(self.durable_len, &error, fault)),
        }
    }

    /// The failure of a write or sync, after cutting the file back to `target`; if even that
    /// fails, the next [`check`](Self::check) tries again.
    fn cut_back(&mut self, target: u64, error: &io::Error, fault: Option<Fault>) -> Failure {
        match self.truncate(target, fault) {
            Ok(()) => Failure::write(&self.path, error),
            Err(rollback) => {
                self.truncate_to = Some(target);
                Failure::Unrecovered {
                    path: self.path.clone(),
                    error: IoFailure::from(error),
                    rollback: IoFailure::from(&rollback),
                }
            }
        }
    }

    /// Truncates the file to `target` bytes, durably.
    fn truncate(&mut self, target: u64, fault: Option<Fault>) -> io::Result<()> {
        if fault == Some(Fault::RollbackFails) {
            return Err(io::Error::other("truncate failed (injected)"));
        }
        self.file.set_len(target)?;
        self.file.sync_data()?;
        self.len = target;
        self.durable_len = self.durable_len.min(target);
        self.truncate_to = None;
        Ok(())
    }
}

/// `fdatasync`, with the injected faults that concern syncing.
fn sync_file(file: &File, fault: Option<Fault>) -> io::Result<()> {
    match fault {
        Some(Fault::SyncFails) => return Err(Fault::SyncFails.error()),
        Some(Fault::SlowSync(delay)) => std::thread::sleep(delay),
        _ => {}
    }
    file.sync_data()
}

/// Makes changes to a directory's entries (a created, renamed or removed file) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
