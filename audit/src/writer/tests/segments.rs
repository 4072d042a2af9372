//! Segments rotate by size and age and the chain runs on across them; retention deletes whole
//! old segments only after recording what it removes.

use std::time::Duration;

use super::*;
use crate::{AuditConfig, AuditLog, Fault, FaultPlan, Retention};

fn open(dir: &Path, max_bytes: u64, retention: Retention) -> AuditLog {
    AuditLog::open_with(
        dir,
        AuditConfig {
            segment_max_bytes: max_bytes,
            retention,
            ..AuditConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn segments_rotate_by_size_and_the_chain_runs_on_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2000, Retention::default());
    for n in 0..30 {
        log.append(&body(n, 300)).unwrap();
    }
    drop(log);

    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() >= 5, "{} segments", segments.len());
    let mut previous: Option<(String, String)> = None;
    for segment in &segments {
        let bytes = fs::read(&segment.path).unwrap();
        assert!(
            bytes.len() <= 2000,
            "{} holds {} bytes",
            segment.path.display(),
            bytes.len()
        );
        let lines: Vec<Value> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let first = &lines[0];
        let name = segment
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(name, segment_name(first["seq"].as_u64().unwrap()));
        match &previous {
            None => assert_eq!(first["kind"], "log_start"),
            Some((previous_name, previous_hash)) => {
                assert_eq!(first["kind"], "segment_start");
                assert_eq!(first["previous_segment"], previous_name.as_str());
                assert_eq!(first["prev_hash"], previous_hash.as_str());
            }
        }
        let last = lines.last().unwrap();
        previous = Some((name, last["hash"].as_str().unwrap().to_owned()));
    }
    let report = verified(dir.path());
    assert_eq!(report.segments, segments.len() as u64);
    assert_eq!(report.head_seq, 30 + segments.len() as u64);

    // Reopening appends to the last segment (allowed to grow now).
    let log = open(dir.path(), 10_000, Retention::default());
    let next = log.append(&body(99, 10)).unwrap();
    assert_eq!(next.seq, report.head_seq + 1);
    drop(log);
    assert_eq!(list_segments(dir.path()).unwrap().len(), segments.len());
    assert_eq!(verified(dir.path()).head_hash, next.hash);
}

#[test]
fn segments_rotate_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(
        dir.path(),
        AuditConfig {
            segment_max_age: Some(Duration::from_millis(50)),
            ..AuditConfig::default()
        },
    )
    .unwrap();
    log.append(&body(1, 10)).unwrap();
    log.append(&body(2, 10)).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    std::thread::sleep(Duration::from_millis(80));
    log.append(&body(3, 10)).unwrap();
    assert_eq!(
        segment_files(dir.path()),
        [segment_name(1), segment_name(4)]
    );
    drop(log);
    assert_eq!(verified(dir.path()).head_seq, 5);
}

#[test]
fn a_record_larger_than_a_segment_still_gets_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 500, Retention::default());
    log.append(&body(1, 2000)).unwrap();
    log.append(&body(2, 2000)).unwrap();
    drop(log);
    // Each big record got a segment of its own.
    assert_eq!(
        segment_files(dir.path()),
        [segment_name(1), segment_name(2), segment_name(4)]
    );
    assert_eq!(verified(dir.path()).head_seq, 5);
}

#[test]
fn retention_records_what_it_removes_and_the_remainder_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Retention {
        keep_segments: Some(2),
        max_age: None,
    };
    let log = open(dir.path(), 1500, keep.clone());
    for n in 0..40 {
        log.append(&body(n, 300)).unwrap();
        // Retention follows a rotation before the append that caused it returns.
        assert!(segment_files(dir.path()).len() <= 2);
    }
    drop(log);

    let segments = list_segments(dir.path()).unwrap();
    assert_eq!(segments.len(), 2);
    let retention = records_of(dir.path(), "retention");
    assert!(!retention.is_empty());
    // The oldest remaining segment starts right after what the last retention record removed.
    let oldest = records(dir.path()).into_iter().next().unwrap();
    let last = retention.last().unwrap();
    assert_eq!(
        last["removed_through_seq"].as_u64().unwrap() + 1,
        oldest["seq"].as_u64().unwrap()
    );
    assert_eq!(last["removed_through_hash"], oldest["prev_hash"]);
    let removed = last["removed_segments"].as_array().unwrap();
    assert!(!removed.is_empty());
    for name in removed {
        assert!(!dir.path().join(name.as_str().unwrap()).exists());
    }
    let report = verified(dir.path());
    assert_eq!(report.first_seq, oldest["seq"].as_u64().unwrap());

    // Keeping a single segment works across a reopen too.
    let one = Retention {
        keep_segments: Some(1),
        max_age: None,
    };
    let log = open(dir.path(), 1500, one);
    assert_eq!(segment_files(dir.path()).len(), 1);
    log.append(&body(100, 10)).unwrap();
    drop(log);
    let log = open(dir.path(), 1500, keep);
    log.append(&body(101, 10)).unwrap();
    drop(log);
    verified(dir.path());
}

#[test]
fn segments_are_not_deleted_until_the_retention_record_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        1000,
        Retention {
            keep_segments: Some(2),
            max_age: None,
        },
    );
    while segment_files(dir.path()).len() < 2 {
        log.append(&body(0, 300)).unwrap();
    }
    // The next rotation's write succeeds, the retention record's write fails.
    log.faults().set(Some(FaultPlan {
        fault: Fault::Io,
        skip: 1,
        count: Some(1),
    }));
    let before = segment_files(dir.path());
    while segment_files(dir.path()).len() == before.len() {
        log.append(&body(1, 300)).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.faults().plan().is_some() {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        segment_files(dir.path()).len(),
        3,
        "deleted without a record"
    );
    assert!(records_of(dir.path(), "retention").is_empty());

    // Tried again later (here: at close).
    log.append(&body(2, 10)).unwrap();
    log.close().unwrap();
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(records_of(dir.path(), "retention").len(), 1);
    verified(dir.path());
}

#[test]
fn retention_by_age_removes_segments_whose_newest_record_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        1000,
        Retention {
            keep_segments: None,
            max_age: Some(Duration::from_millis(300)),
        },
    );
    while segment_files(dir.path()).len() < 3 {
        log.append(&body(0, 300)).unwrap();
    }
    assert_eq!(segment_files(dir.path()).len(), 3);
    std::thread::sleep(Duration::from_millis(400));
    let before = segment_files(dir.path());
    while segment_files(dir.path()).last() == before.last() {
        log.append(&body(1, 300)).unwrap();
    }
    drop(log);
    // The segments whose newest record is old went; the new active one stays.
    let after = segment_files(dir.path());
    assert!(!after.contains(&before[0]), "{after:?}");
    assert!(!after.contains(&before[1]), "{after:?}");
    assert!(after.len() <= 2, "{after:?}");
    assert_ne!(after.last(), before.last());
    assert!(!records_of(dir.path(), "retention").is_empty());
    verified(dir.path());
}

#[test]
fn a_rotation_whose_first_commit_fails_leaves_no_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Each record needs a segment of its own.
    let log = open(dir.path(), 1000, Retention::default());
    log.append(&body(1, 600)).unwrap();
    let before = segment_files(dir.path());
    for fault in [Fault::Io, Fault::SyncFails] {
        log.faults().set(Some(FaultPlan::always(fault)));
        log.append(&body(2, 600)).unwrap_err();
        assert_eq!(segment_files(dir.path()), before, "{fault:?}");
    }
    log.faults().set(None);
    log.append(&body(3, 600)).unwrap();
    drop(log);
    assert_eq!(segment_files(dir.path()).len(), before.len() + 1);
    assert_eq!(
        kinds(dir.path()),
        [
            "log_start",
            "segment_start",
            "note",
            "segment_start",
            "audit_outage",
            "note"
        ]
    );
    verified(dir.path());
}
