//! The first line of a log, which decides whether the input is a Mandate audit log at all.

use serde::Deserialize;

use super::error::{
    ChainBroken, ChainProblem, Malformed, NotALog, NotALogReason, VerifyError, json_message,
};
use crate::chain::{
    FORMAT, HASH_HEX_LEN, LOG_START_KIND, RECORD_START, check_record_line, split_framed,
};

use super::line::{HexHash, RecordHead};

/// Line 1, as [`check_first`] read it.
pub(super) struct First {
    pub(super) seq: u64,
    pub(super) prev_hash: String,
    pub(super) hash: HexHash,
}

/// The fields that mark line 1 as the start of a Mandate audit log.
#[derive(Deserialize)]
struct LogStart {
    kind: Option<String>,
    format: Option<String>,
}

/// Checks line 1. A line that is not a record at all, or a record that is not a Mandate
/// `log_start`, means the input is not an audit log; a recognisable record that fails its own
/// hash, seq or (later) `prev_hash` means it is an audit log whose chain is broken at seq 1.
pub(super) fn check_first(line: &[u8], terminated: bool) -> Result<First, VerifyError> {
    let broken = |problem| {
        VerifyError::Broken(ChainBroken {
            path: None,
            line: 1,
            seq: 1,
            problem,
        })
    };
    if !terminated {
        // A log cut short inside its first record still starts like one.
        return if line.starts_with(RECORD_START) || RECORD_START.starts_with(line) {
            Err(broken(ChainProblem::TornTail))
        } else {
            Err(not_a_log(NotALogReason::NotFramed))
        };
    }
    let framed = split_framed(line).ok_or_else(|| not_a_log(NotALogReason::NotFramed))?;
    let invalid_json = |error: serde_json::Error| {
        not_a_log(NotALogReason::InvalidJson {
            message: json_message(&error),
        })
    };
    let text = std::str::from_utf8(line).map_err(|error| {
        not_a_log(NotALogReason::InvalidJson {
            message: Malformed::from_utf8(error).to_string(),
        })
    })?;
    let head: RecordHead = serde_json::from_str(text).map_err(invalid_json)?;
    // Line 1 is a record of this log from here on: anything else wrong with it breaks the
    // chain at seq 1.
    check_record_line(line).map_err(broken)?;
    let mut hash: HexHash = [0; HASH_HEX_LEN];
    hash.copy_from_slice(framed.hash.as_bytes());
    if head.seq != 1 {
        return Err(broken(ChainProblem::SeqOutOfOrder {
            expected: 1,
            found: head.seq,
        }));
    }
    let start: LogStart = serde_json::from_str(text).map_err(invalid_json)?;
    if start.kind.as_deref() != Some(LOG_START_KIND) {
        return Err(not_a_log(NotALogReason::NotLogStart { found: start.kind }));
    }
    if start.format.as_deref() != Some(FORMAT) {
        return Err(not_a_log(NotALogReason::UnknownFormat {
            found: start.format,
        }));
    }
    Ok(First {
        seq: head.seq,
        prev_hash: head.prev_hash,
        hash,
    })
}

fn not_a_log(reason: NotALogReason) -> VerifyError {
    VerifyError::NotALog(NotALog { path: None, reason })
}
