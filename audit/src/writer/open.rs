//! Opening a log directory for appending: create it or find where it ends, repair a torn tail,
//! and refuse a log whose end was altered or whose active segment is damaged.

use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use super::super::chain::{BodyFields, FORMAT, GENESIS_HASH, LOG_START_KIND, RECORD_START};
use super::super::checkpoint::{CHECKPOINT_FILE, CHECKPOINT_KIND};
use super::super::config::AuditConfig;
use super::super::error::{AuditError, Damage};
use super::super::segments::{SEGMENT_START_KIND, Segment, TORN_DIR, list_segments};
use super::bodies::REPAIR_KIND;
use super::core::{Core, Shared};
use super::history::check_history;
use super::lines::{Line, last_line, parse_line, whole_lines_end};
use super::repair::repair;
use super::segment::{ActiveSegment, sync_dir};
use crate::{INDEX_FILE, LOCK_FILE, Modes};

/// Opens (creating if needed) the log in `dir` and returns its writer, with every record the
/// opening needs (`log_start`, a segment's start, `repair`, `retention`) durable.
pub(super) fn open(
    dir: &Path,
    config: AuditConfig,
    shared: Arc<Shared>,
) -> Result<Core, AuditError> {
    let opened = |error| AuditError::Open {
        path: dir.to_path_buf(),
        error,
    };
    let read = |error| AuditError::Read {
        path: dir.to_path_buf(),
        error,
    };
    let modes = Modes::new(config.group_readable);
    prepare_dir(dir, modes)?;
    // The lock is a file inside the private directory, not the directory itself: another user
    // cannot open it, so cannot hold the lock to keep the writer out.
    let lock = modes
        .options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(opened)?;
    check_own(&lock, &dir.join(LOCK_FILE)).map_err(opened)?;
    modes.set_file(&lock).map_err(opened)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(AuditError::Locked {
                path: dir.to_path_buf(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(opened(error)),
    }
    let segments = list_segments(dir).map_err(read)?;
    let Some(last) = segments.last() else {
        // What the log leaves next to its segments shows that there were segments.
        if [CHECKPOINT_FILE, TORN_DIR, INDEX_FILE]
            .iter()
            .any(|name| dir.join(name).exists())
        {
            return Err(AuditError::SegmentsMissing {
                path: dir.to_path_buf(),
            });
        }
        let active = ActiveSegment::create(dir, 1, None, modes).map_err(opened)?;
        let mut core = Core::new(
            dir.to_path_buf(),
            config,
            lock,
            active,
            (0, GENESIS_HASH.to_owned()),
            false,
            shared,
        );
        // Writes the `log_start` record.
        core.commit(&[], false).map_err(|f| f.to_error())?;
        return Ok(core);
    };
    let previous = segments.len().checked_sub(2).and_then(|i| segments.get(i));
    let scan = scan(last, previous)?;

    check_torn_start(last, &scan)?;
    // Before anything is appended (a repair record, a retention, a checkpoint signing the
    // head), the history the writer would sign over must be intact.
    let verifier = config.checkpoint_signer.as_ref().map(|s| s.public_key());
    check_history(dir, &segments, verifier.as_ref())?;
    let recorded: HashSet<String> = scan.set_aside.iter().cloned().collect();
    let repairs =
        repair(dir, &last.path, scan.cut, &recorded, modes).map_err(|error| AuditError::Open {
            path: last.path.clone(),
            error,
        })?;
    let (head, started, head_is_checkpoint) = match &scan.last {
        Some(line) => (
            (line.seq, line.hash.clone()),
            scan.started.unwrap_or_else(Timestamp::now),
            line.kind.as_deref() == Some(CHECKPOINT_KIND),
        ),
        None => (empty_segment_head(last, previous)?, Timestamp::now(), false),
    };
    let active = ActiveSegment::open(
        last.path.clone(),
        last.first_seq,
        previous.and_then(|p| Some(p.path.file_name()?.to_str()?.to_owned())),
        started,
    )
    .map_err(|error| AuditError::Open {
        path: last.path.clone(),
        error,
    })?;
    let empty = active.len == 0;
    let mut core = Core::new(
        dir.to_path_buf(),
        config,
        lock,
        active,
        head,
        head_is_checkpoint,
        shared,
    );
    let bodies = repairs
        .iter()
        .map(BodyFields::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| AuditError::Body {
            path: dir.to_path_buf(),
            error,
        })?;
    if empty || !bodies.is_empty() {
        // An empty active segment gets its start record here, before any repair record.
        core.commit(&bodies, false).map_err(|f| f.to_error())?;
    }
    core.apply_retention().map_err(|f| f.to_error())?;
    Ok(core)
}

/// Makes sure `dir` is a directory, creating it (durably) if it does not exist.
fn prepare_dir(dir: &Path, modes: Modes) -> Result<(), AuditError> {
    let opened = |error| AuditError::Open {
        path: dir.to_path_buf(),
        error,
    };
    match std::fs::metadata(dir) {
        // Any user could replace the segments of a directory everyone may write.
        Ok(metadata) if metadata.is_dir() && metadata.permissions().mode() & 0o002 != 0 => {
            Err(opened(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "every user may write the directory (mode {:04o}), so anyone could replace \
                     its records; `chmod 700` it",
                    metadata.permissions().mode() & 0o7777
                ),
            )))
        }
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(AuditError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // Only the log directory itself: a mistyped parent should fail, not grow a tree.
            modes.create_dir(dir).map_err(opened)?;
            let parent = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            sync_dir(parent).map_err(opened)
        }
        Err(error) => Err(opened(error)),
    }
}

/// Refuses a file (the lock) that another user owns: they could change its mode and hold it.
fn check_own(file: &File, path: &Path) -> io::Result<()> {
    let owner = file.metadata()?.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner == me {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "`{}` is owned by uid {owner}, not by uid {me} who opens the log",
            path.display()
        ),
    ))
}

/// What the active segment holds up to its torn tail.
#[derive(Debug)]
struct Scan {
    /// Where its whole lines end; torn bytes follow.
    cut: u64,
    /// Its last whole record, if it has one.
    last: Option<Line>,
    /// When its first record was written.
    started: Option<Timestamp>,
    /// The `set_aside` paths of its `repair` records.
    set_aside: Vec<String>,
}

/// Reads the active segment line by line up to its torn tail, checking each record's hash and
/// its link to the one before (and the first one's link to the previous segment).
fn scan(segment: &Segment, previous: Option<&Segment>) -> Result<Scan, AuditError> {
    let path = &segment.path;
    let read = |error| AuditError::Read {
        path: path.clone(),
        error,
    };
    let file = File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    let cut = whole_lines_end(&file, len).map_err(read)?;
    (&file).seek(SeekFrom::Start(0)).map_err(read)?;
    let mut reader = BufReader::new((&file).take(cut));
    let mut scan = Scan {
        cut,
        last: None,
        started: None,
        set_aside: Vec::new(),
    };
    let mut offset = 0u64;
    let mut number = 0u64;
    let mut prev_hash: Option<String> = None;
    let mut buf = Vec::new();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        number += 1;
        let seq = segment.first_seq.saturating_add(number - 1);
        let damaged = |problem| AuditError::Damaged {
            path: path.clone(),
            line: number,
            seq,
            problem,
        };
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let record = match parse_line(line) {
            Ok(record) => record,
            Err(Damage::HashMismatch) if offset == cut => {
                return Err(AuditError::Tampered {
                    path: path.clone(),
                    line: number,
                    seq,
                });
            }
            Err(problem) => return Err(damaged(problem)),
        };
        if record.seq != seq {
            return Err(damaged(Damage::SeqOutOfOrder { found: record.seq }));
        }
        let expected_prev = match &prev_hash {
            Some(hash) => Some(hash.clone()),
            None => {
                check_start(&record, segment.first_seq).map_err(&damaged)?;
                scan.started = record.timestamp;
                start_link(segment, previous)?
            }
        };
        if let Some(expected) = expected_prev
            && record.prev_hash != expected
        {
            return Err(damaged(Damage::PrevHashMismatch {
                expected,
                found: record.prev_hash,
            }));
        }
        if record.kind.as_deref() == Some(REPAIR_KIND)
            && record.segment.as_deref() == Some(&name)
            && let Some(set_aside) = &record.set_aside
        {
            scan.set_aside.push(set_aside.clone());
        }
        prev_hash = Some(record.hash.clone());
        scan.last = Some(record);
    }
    Ok(scan)
}

/// Refuses a tail that a crash of the writer cannot have left: the writer writes whole lines, so
/// a torn one starts like a record (`{"seq":`) or is NUL bytes the data never reached.
fn check_torn_start(segment: &Segment, scan: &Scan) -> Result<(), AuditError> {
    let read = |error| AuditError::Read {
        path: segment.path.clone(),
        error,
    };
    let mut file = File::open(&segment.path).map_err(read)?;
    let mut head = Vec::with_capacity(RECORD_START.len());
    file.seek(SeekFrom::Start(scan.cut)).map_err(read)?;
    file.take(RECORD_START.len() as u64)
        .read_to_end(&mut head)
        .map_err(read)?;
    let end = head.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let head = head.get(..end).unwrap_or_default();
    if head.is_empty() || RECORD_START.starts_with(head) || head.starts_with(RECORD_START) {
        return Ok(());
    }
    let lines = scan
        .last
        .as_ref()
        .map_or(0, |l| l.seq + 1 - segment.first_seq);
    Err(AuditError::Damaged {
        path: segment.path.clone(),
        line: lines + 1,
        seq: segment.first_seq.saturating_add(lines),
        problem: Damage::NotFramed,
    })
}

/// The first record of a segment: `log_start` for the first, `segment_start` for later ones.
pub(super) fn check_start(record: &Line, first_seq: u64) -> Result<(), Damage> {
    let expected = if first_seq == 1 {
        LOG_START_KIND
    } else {
        SEGMENT_START_KIND
    };
    if record.kind.as_deref() != Some(expected) {
        return Err(Damage::WrongStart {
            expected,
            found: record.kind.clone(),
        });
    }
    if first_seq == 1 && record.format.as_deref() != Some(FORMAT) {
        return Err(Damage::UnknownFormat {
            found: record.format.clone(),
        });
    }
    Ok(())
}

/// The `prev_hash` the first record of `segment` must hold: zeros for the first segment, the
/// previous segment's last hash otherwise; `None` when retention removed the previous segment
/// (the verifier checks that link against the `retention` record).
fn start_link(segment: &Segment, previous: Option<&Segment>) -> Result<Option<String>, AuditError> {
    if segment.first_seq == 1 {
        return Ok(Some(GENESIS_HASH.to_owned()));
    }
    match previous {
        Some(previous) => Ok(Some(previous_head(segment, previous)?.1)),
        None => Ok(None),
    }
}

/// The chain head when the active segment holds no whole record (a crash right after it was
/// created): nothing for the first segment, else the previous segment's last record.
fn empty_segment_head(
    segment: &Segment,
    previous: Option<&Segment>,
) -> Result<(u64, String), AuditError> {
    if segment.first_seq == 1 {
        return Ok((0, GENESIS_HASH.to_owned()));
    }
    match previous {
        Some(previous) => previous_head(segment, previous),
        None => Err(AuditError::Damaged {
            path: segment.path.clone(),
            line: 1,
            seq: segment.first_seq,
            problem: Damage::Missing,
        }),
    }
}

/// The last record of the segment before `segment`, which must be seq `first_seq - 1`.
fn previous_head(segment: &Segment, previous: &Segment) -> Result<(u64, String), AuditError> {
    let path: PathBuf = previous.path.clone();
    let read = |error| AuditError::Read {
        path: path.clone(),
        error,
    };
    let expected = segment.first_seq.saturating_sub(1);
    let file = File::open(&path).map_err(read)?;
    let line = last_line(&file).map_err(read)?;
    let damaged = |problem| AuditError::Damaged {
        path: path.clone(),
        line: expected.saturating_sub(previous.first_seq) + 1,
        seq: expected,
        problem,
    };
    let line = match line {
        Ok(Some(line)) => line,
        Ok(None) => return Err(damaged(Damage::Missing)),
        Err(problem) => return Err(damaged(problem)),
    };
    let record = parse_line(&line).map_err(damaged)?;
    if record.seq != expected {
        return Err(damaged(Damage::SeqOutOfOrder { found: record.seq }));
    }
    Ok((record.seq, record.hash))
}
