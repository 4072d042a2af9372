//! A checkpoint file shipped elsewhere, held against the log: what makes a log rewritten from
//! some point on, or cut short, detectable.
//!
//! Every line is verified with the public key before the log is read. The checkpoints are then
//! sorted into checks at the seqs they vouch for, so the walk along the chain only compares one
//! number per record until it reaches the next check.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::json_message;
use crate::checkpoint::{CheckpointVerifier, SignedCheckpoint};

use super::error::{CheckpointFileError, Evidence};
use super::line::HexHash;
use super::records;

/// The longest checkpoint file line accepted; a signed checkpoint takes about 300 bytes.
const MAX_LINE: u64 = 64 * 1024;

/// One thing the checkpoint file says about the record at `seq`.
#[derive(Debug)]
struct Check {
    seq: u64,
    file_line: u64,
    what: What,
    /// Another check of the same line already failed: one problem per line of the file.
    skip: bool,
}

#[derive(Debug)]
enum What {
    /// The record at `seq` has this hash.
    Hash(String),
    /// The record at `seq` is this checkpoint.
    Record(SignedCheckpoint),
}

/// A contradiction between the checkpoint file and the log, before the caller adds where in
/// the log it is.
#[derive(Debug)]
pub(super) struct Mismatch {
    pub(super) seq: u64,
    pub(super) file_line: u64,
    pub(super) evidence: Evidence,
    pub(super) confirmed_through: Option<u64>,
}

/// The checkpoint file says the log reaches further than it does.
#[derive(Debug)]
pub(super) struct Beyond {
    pub(super) vouched_seq: u64,
    pub(super) file_line: u64,
}

/// The verified checkpoints of a checkpoint file and how far the walk has got through them.
#[derive(Debug)]
pub(super) struct CheckpointFile {
    path: PathBuf,
    checks: Vec<Check>,
    next: usize,
    /// Signed checkpoints in the file.
    pub(super) entries: u64,
    /// Checkpoints whose record is still in the log and matched.
    pub(super) matched: u64,
    /// The largest seq a checkpoint of the file confirmed.
    pub(super) confirmed_through: Option<u64>,
}

impl CheckpointFile {
    /// Reads the checkpoint file at `path` and verifies every line with `key`.
    pub(super) fn load(path: &Path, key: &CheckpointVerifier) -> Result<Self, CheckpointFileError> {
        let read = |error| CheckpointFileError::Read {
            path: path.to_path_buf(),
            error,
        };
        let mut reader = BufReader::new(File::open(path).map_err(read)?);
        let mut checks = Vec::new();
        let mut entries = 0;
        let mut buf = Vec::new();
        for file_line in 1.. {
            buf.clear();
            let len = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(read)?;
            if len == 0 {
                break;
            }
            let malformed = |message: String| CheckpointFileError::Malformed {
                path: path.to_path_buf(),
                line: file_line,
                message,
            };
            let Some(line) = buf.strip_suffix(b"\n") else {
                return Err(malformed(if len as u64 > MAX_LINE {
                    format!("the line is longer than {MAX_LINE} bytes")
                } else {
                    "the last line has no newline: the file was cut short mid-line".to_owned()
                }));
            };
            let entry = records::file_entry(line).map_err(|e| malformed(json_message(&e)))?;
            let signed = SignedCheckpoint {
                checkpoint: entry.checkpoint,
                signature: entry.signature,
            };
            key.verify(&signed)
                .map_err(|error| CheckpointFileError::Signature {
                    path: path.to_path_buf(),
                    line: file_line,
                    error,
                })?;
            entries += 1;
            checks.push(Check {
                seq: signed.checkpoint.seq,
                file_line,
                what: What::Hash(signed.checkpoint.head_hash.clone()),
                skip: false,
            });
            if let Some(record_seq) = entry.record_seq {
                checks.push(Check {
                    seq: record_seq,
                    file_line,
                    what: What::Record(signed),
                    skip: false,
                });
            }
        }
        checks.sort_by_key(|check| (check.seq, check.file_line));
        Ok(Self {
            path: path.to_path_buf(),
            checks,
            next: 0,
            entries,
            matched: 0,
            confirmed_through: None,
        })
    }

    /// The checkpoint file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The seq of the next record the file says something about; `u64::MAX` when none.
    pub(super) fn next_seq(&self) -> u64 {
        self.checks
            .get(self.next)
            .map_or(u64::MAX, |check| check.seq)
    }

    /// Skips what the file says about records that are gone from the start of the log
    /// (removed by retention), except that the hash of the last of them is still known: it
    /// is the `prev_hash` of the oldest record kept.
    pub(super) fn start_at(&mut self, first_seq: u64, prev_hash: &[u8]) -> Result<(), Mismatch> {
        while let Some(check) = self.checks.get(self.next) {
            if check.seq >= first_seq {
                break;
            }
            if check.seq.checked_add(1) == Some(first_seq)
                && let What::Hash(signed) = &check.what
            {
                if signed.as_bytes() != prev_hash {
                    let error = self.mismatch(check, hash_evidence(prev_hash, signed));
                    self.next += 1;
                    let file_line = error.file_line;
                    for later in self.checks.iter_mut().skip(self.next) {
                        later.skip |= later.file_line == file_line;
                    }
                    return Err(error);
                }
                self.confirm(check.seq);
            }
            self.next += 1;
        }
        Ok(())
    }

    /// Holds the record at `seq`, with hash `hash` (and, if it is a checkpoint record, the
    /// checkpoint it holds), against what the file says about it.
    pub(super) fn check(
        &mut self,
        seq: u64,
        hash: &HexHash,
        checkpoint: Option<&SignedCheckpoint>,
    ) -> Result<(), Mismatch> {
        while let Some(check) = self.checks.get(self.next) {
            if check.seq > seq {
                break;
            }
            self.next += 1;
            if check.seq < seq || check.skip {
                // Its record was a bad line, already reported, that the walk skipped; or this
                // line of the file already failed at another seq.
                continue;
            }
            let mismatch = match &check.what {
                What::Hash(signed) if signed.as_bytes() != hash => {
                    Some(hash_evidence(hash, signed))
                }
                What::Hash(_) => {
                    self.matched += 1;
                    None
                }
                What::Record(signed) if checkpoint != Some(signed) => {
                    Some(Evidence::NotTheCheckpoint)
                }
                What::Record(_) => None,
            };
            if let Some(evidence) = mismatch {
                // One mismatch per record: the checks left for it would say the same.
                let error = self.mismatch(check, evidence);
                while self.checks.get(self.next).is_some_and(|c| c.seq == seq) {
                    self.next += 1;
                }
                let file_line = error.file_line;
                for later in self.checks.iter_mut().skip(self.next) {
                    later.skip |= later.file_line == file_line;
                }
                return Err(error);
            }
            self.confirm(seq);
        }
        Ok(())
    }

    /// After the walk: anything the file says about records past `head_seq` means the log was
    /// cut short.
    pub(super) fn finish(&self, head_seq: u64) -> Result<(), Beyond> {
        let beyond = self
            .checks
            .iter()
            .filter(|check| check.seq > head_seq)
            .max_by_key(|check| (check.seq, check.file_line));
        match beyond {
            Some(check) => Err(Beyond {
                vouched_seq: check.seq,
                file_line: check.file_line,
            }),
            None => Ok(()),
        }
    }

    fn confirm(&mut self, seq: u64) {
        self.confirmed_through = Some(self.confirmed_through.map_or(seq, |c| c.max(seq)));
    }

    fn mismatch(&self, check: &Check, evidence: Evidence) -> Mismatch {
        Mismatch {
            seq: check.seq,
            file_line: check.file_line,
            evidence,
            confirmed_through: self.confirmed_through,
        }
    }
}

fn hash_evidence(found: &[u8], signed: &str) -> Evidence {
    Evidence::Hash {
        found: String::from_utf8_lossy(found).into_owned(),
        signed: signed.to_owned(),
    }
}
