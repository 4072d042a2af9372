//! Typed errors for writing ([`AuditError`]) and verifying ([`VerifyError`]) audit logs.
//!
//! Messages are lowercase, have no final period and name the file (in backticks) and the line or
//! seq at fault. Underlying errors are part of the message and kept in a public field rather than
//! exposed as [`std::error::Error::source`], so that a report chain does not print them twice.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why an audit record could not be appended, or a log could not be opened for appending.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be created, opened or locked.
    #[error("cannot open audit log `{}`: {error}", path.display())]
    Open {
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// Another [`AuditLog`](super::AuditLog), in this process or another, is appending to the file.
    #[error("audit log `{}` is already open for appending elsewhere", path.display())]
    Locked {
        /// The log file.
        path: PathBuf,
    },
    /// The path names something other than a regular file (a device, a pipe), which could not
    /// hold a durable log.
    #[error("cannot open audit log `{}`: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The existing log could not be read to find its head.
    #[error("cannot read audit log `{}`: {error}", path.display())]
    Read {
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The existing file is not a Mandate audit log, or its chain is broken (for instance a torn
    /// last line); appending to it would hide the damage, so the log refuses.
    #[error("refusing to append: {error}")]
    Invalid {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it; its message names the file and line.
        error: VerifyError,
    },
    /// Writing or syncing a record failed; the partial record was truncated away, so the log is
    /// intact and its head did not advance.
    #[error("cannot write audit log `{}`: {error}", path.display())]
    Write {
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// Writing or syncing a record failed and truncating the partial record failed too; the log
    /// is poisoned and refuses appends until it is reopened.
    #[error(
        "cannot write audit log `{}`: {error}; removing the partial record also failed ({rollback}), \
         so the log refuses appends until it is reopened",
        path.display()
    )]
    WriteUnrecovered {
        /// The log file.
        path: PathBuf,
        /// Why the write or sync failed.
        error: io::Error,
        /// Why truncating back to the previous length failed.
        rollback: io::Error,
    },
    /// An earlier write failed and could not be rolled back (see
    /// [`AuditError::WriteUnrecovered`]); reopening the log checks its tail again.
    #[error(
        "audit log `{}` refuses appends after a write that could not be rolled back; reopen it",
        path.display()
    )]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
    /// The record body cannot be written as record fields. Nothing was written.
    #[error("cannot append to audit log `{}`: {error}", path.display())]
    Body {
        /// The log file.
        path: PathBuf,
        /// What is wrong with the body.
        error: BodyError,
    },
    /// The log already holds a record with the largest possible seq.
    #[error("audit log `{}` has no seq left after {}", path.display(), u64::MAX)]
    SeqExhausted {
        /// The log file.
        path: PathBuf,
    },
}

impl AuditError {
    /// The log file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. }
            | Self::Locked { path }
            | Self::NotAFile { path }
            | Self::Read { path, .. }
            | Self::Invalid { path, .. }
            | Self::Write { path, .. }
            | Self::WriteUnrecovered { path, .. }
            | Self::Poisoned { path }
            | Self::Body { path, .. }
            | Self::SeqExhausted { path } => path,
        }
    }
}

/// Why a record body cannot be spliced into a record line.
///
/// The reserved keys are a runtime check rather than a type-level guarantee because bodies are
/// any [`serde::Serialize`] value.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Serializing the body failed.
    #[error("the body cannot be serialized as JSON: {0}")]
    Serialize(serde_json::Error),
    /// The body serializes to something other than a JSON object.
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// The body sets a key the log stamps itself.
    #[error(
        "the body sets `{key}`, which the audit log stamps itself (seq, prev_hash, timestamp and hash are reserved)"
    )]
    ReservedKey {
        /// The reserved key.
        key: String,
    },
    /// The body sets the same key twice, which would make the record ambiguous.
    #[error("the body sets `{key}` more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
}

/// Why a log failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input does not start with a Mandate `log_start` record.
    #[error(transparent)]
    NotALog(NotALog),
    /// Reading the input failed.
    #[error(transparent)]
    Io(ReadFailed),
    /// The input is a Mandate audit log whose chain is broken.
    #[error(transparent)]
    Broken(ChainBroken),
}

impl VerifyError {
    /// The seq of the first bad record: the seq the chain expected at the line where it broke.
    /// `None` when the input is not an audit log at all or could not be read.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.seq),
            Self::NotALog(_) | Self::Io(_) => None,
        }
    }

    /// The 1-based line number at fault, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Broken(broken) => Some(broken.line),
            Self::NotALog(not) => (!matches!(not.reason, NotALogReason::Empty)).then_some(1),
            Self::Io(_) => None,
        }
    }

    /// Attaches the file name so that the message says which log is at fault.
    pub(crate) fn with_path(self, path: &Path) -> Self {
        let path = Some(path.to_path_buf());
        match self {
            Self::NotALog(e) => Self::NotALog(NotALog { path, ..e }),
            Self::Io(e) => Self::Io(ReadFailed { path, ..e }),
            Self::Broken(e) => Self::Broken(ChainBroken { path, ..e }),
        }
    }
}

/// Renders "audit log `path`" or just "audit log" when the input has no name.
struct LogName<'a>(&'a Option<PathBuf>);

impl fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "audit log `{}`", path.display()),
            None => f.write_str("audit log"),
        }
    }
}

/// The input is not a Mandate audit log: its first line is not a `log_start` record.
#[derive(Debug, thiserror::Error)]
#[error("{}not a mandate audit log: {reason}", match path {
    Some(path) => format!("`{}` is ", path.display()),
    None => String::new(),
})]
pub struct NotALog {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What is wrong with line 1.
    pub reason: NotALogReason,
}

/// Why line 1 is not the start of a Mandate audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotALogReason {
    /// The input is empty.
    #[error("it is empty")]
    Empty,
    /// Line 1 does not end with a `hash` field.
    #[error("line 1 is not a hash-chained record")]
    NotFramed,
    /// Line 1 is not a JSON object with `seq` and `prev_hash`.
    #[error("line 1 is not a record: {message}")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
    },
    /// Line 1 is a record but not a `log_start` record.
    #[error("line 1 is {}, not `log_start`", match found {
        Some(kind) => format!("a `{kind}` record"),
        None => "a record without a `kind`".to_owned(),
    })]
    NotLogStart {
        /// The `kind` line 1 has, if any.
        found: Option<String>,
    },
    /// Line 1 is a `log_start` record of another format.
    #[error("line 1 declares format {}, expected `mandate-audit/1`", match found {
        Some(format) => format!("`{format}`"),
        None => "nothing".to_owned(),
    })]
    UnknownFormat {
        /// The `format` line 1 declares, if any.
        found: Option<String>,
    },
}

/// Reading the input failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {error}", LogName(path))]
pub struct ReadFailed {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// What the operating system said.
    pub error: io::Error,
}

/// The chain breaks at a line: everything before it verified, this line does not.
#[derive(Debug, thiserror::Error)]
#[error("{} is broken at line {line} (seq {seq}): {problem}", LogName(path))]
pub struct ChainBroken {
    /// The file, when verifying a file.
    pub path: Option<PathBuf>,
    /// The 1-based line number.
    pub line: u64,
    /// The first bad seq: the seq the chain expected on this line.
    pub seq: u64,
    /// What is wrong with the line.
    pub problem: ChainProblem,
}

/// What is wrong with the line where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    /// The recorded hash is not the hash of the line's bytes.
    #[error("the hash does not match the record's bytes: the record was altered")]
    HashMismatch,
    /// The line holds another seq than the one after the previous record.
    #[error("expected seq {expected}, found {found}: a record was deleted, inserted or reordered")]
    SeqOutOfOrder {
        /// The previous record's seq plus one.
        expected: u64,
        /// The seq the line holds.
        found: u64,
    },
    /// The line's `prev_hash` is not the previous record's hash.
    #[error(
        "`prev_hash` is `{found}` but the previous record's hash is `{expected}`: a record was replaced or forged"
    )]
    PrevHashMismatch {
        /// The previous record's hash.
        expected: String,
        /// The `prev_hash` the line holds.
        found: String,
    },
    /// The line is not a record.
    #[error("malformed record: {0}")]
    Malformed(Malformed),
    /// The file does not end with a newline: its last record was cut short.
    #[error("the last line has no newline: the file was truncated mid-record")]
    TornTail,
    /// A line follows the record with the largest possible seq.
    #[error("a record follows seq {}, the largest possible seq", u64::MAX)]
    SeqExhausted,
}

/// How a line fails to be a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The line does not end with `,"hash":"<64 lowercase hex>"}`.
    #[error("the line does not end with a `hash` field")]
    NotFramed,
    /// The line is not UTF-8, so it is not JSON.
    #[error("invalid UTF-8 at column {column}")]
    InvalidUtf8 {
        /// The 1-based column (byte) of the first invalid byte.
        column: usize,
    },
    /// The line is not JSON, or lacks `seq` or `prev_hash`.
    #[error("{message} (column {column})")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
        /// The 1-based column (byte) in the line.
        column: usize,
    },
}

impl Malformed {
    /// Describes a UTF-8 error in a single line.
    pub(crate) fn from_utf8(error: std::str::Utf8Error) -> Self {
        Self::InvalidUtf8 {
            column: error.valid_up_to() + 1,
        }
    }

    /// Describes a JSON error about a single line.
    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        Self::InvalidJson {
            message: json_message(error),
            column: error.column(),
        }
    }
}

/// A JSON error's message without serde_json's "at line 1 column N" suffix, which would be
/// confused with the file's line number.
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}
