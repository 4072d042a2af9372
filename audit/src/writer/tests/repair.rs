//! Crash repair on open: a torn tail is set aside and recorded; anything a crash cannot leave
//! is refused.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;
use crate::{AuditConfig, AuditError, AuditLog, Damage, TORN_DIR};

/// A log of `log_start` and three notes; returns its segment's bytes.
fn three_notes(dir: &Path) -> Vec<u8> {
    let log = AuditLog::open(dir).unwrap();
    for n in 1..=3 {
        log.append(&body(n, 40)).unwrap();
    }
    log.close().unwrap();
    fs::read(first_segment(dir)).unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn torn_files(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir.join(TORN_DIR)) {
        Ok(entries) => {
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            files
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_torn_last_line_is_set_aside_and_the_repair_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let intact = three_notes(dir.path());
    let segment = first_segment(dir.path());
    let torn = br#"{"seq":5,"prev_hash":"00112233","timestamp":"2026-"#;
    append_bytes(&segment, torn);

    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.head().0, 5, "the repair record is seq 5");
    let next = log.append(&body(9, 10)).unwrap();
    assert_eq!(next.seq, 6);
    drop(log);

    let files = torn_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(fs::read(&files[0]).unwrap(), torn);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("{}.torn-", segment_name(1))),
        "{name}"
    );
    let bytes = fs::read(&segment).unwrap();
    assert!(bytes.starts_with(&intact));
    assert!(!bytes.windows(torn.len()).any(|w| w == torn));

    let repair = &records_of(dir.path(), "repair")[0];
    assert_eq!(repair["seq"], 5);
    assert_eq!(repair["segment"], segment_name(1));
    assert_eq!(repair["truncated_at"], intact.len() as u64);
    assert_eq!(repair["torn_bytes"], torn.len() as u64);
    assert_eq!(repair["torn_sha256"], hex::encode(Sha256::digest(torn)));
    assert_eq!(repair["set_aside"], format!("{TORN_DIR}/{name}"));
    assert_eq!(verified(dir.path()).head_seq, 6);
}

#[test]
fn trailing_nul_bytes_are_a_torn_tail_too() {
    for tail in [
        vec![0u8; 4096],
        [&br#"{"seq":5,"prev"#[..], &[0u8; 100]].concat(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let intact = three_notes(dir.path());
        append_bytes(&first_segment(dir.path()), &tail);
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.head().0, 5);
        drop(log);
        assert_eq!(fs::read(&torn_files(dir.path())[0]).unwrap(), tail);
        let repair = &records_of(dir.path(), "repair")[0];
        assert_eq!(repair["truncated_at"], intact.len() as u64);
        verified(dir.path());
    }
}

#[test]
fn a_torn_tail_that_no_crash_could_leave_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    three_notes(dir.path());
    let segment = first_segment(dir.path());
    append_bytes(&segment, b"appended by someone else");
    let before = fs::read(&segment).unwrap();
    let error = AuditLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Damaged {
                line: 5,
                seq: 5,
                problem: Damage::NotFramed,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fs::read(&segment).unwrap(), before);
    assert!(torn_files(dir.path()).is_empty());
}

#[test]
fn a_complete_last_record_that_was_altered_is_refused_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let intact = three_notes(dir.path());
    let altered = String::from_utf8(intact)
        .unwrap()
        .replace("\"n\":3", "\"n\":4");
    fs::write(first_segment(dir.path()), &altered).unwrap();
    let error = AuditLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Tampered {
                line: 4,
                seq: 4,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("refusing to append to audit log segment `"),
        "{message}"
    );
    assert!(message.contains("mandate audit verify"), "{message}");
    assert_eq!(
        fs::read_to_string(first_segment(dir.path())).unwrap(),
        altered
    );
    assert!(torn_files(dir.path()).is_empty());
}

#[test]
fn damage_before_the_last_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let intact = String::from_utf8(three_notes(dir.path())).unwrap();
    let mut lines: Vec<&str> = intact.lines().collect();
    lines.swap(1, 2);
    fs::write(first_segment(dir.path()), lines.join("\n") + "\n").unwrap();
    let error = AuditLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Damaged {
                line: 2,
                seq: 2,
                problem: Damage::SeqOutOfOrder { found: 3 },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("line 2 (seq 2) holds seq 3"),
        "{error}"
    );
}

#[test]
fn a_missing_segment_between_the_last_two_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = || AuditConfig {
        segment_max_bytes: 600,
        ..AuditConfig::default()
    };
    let log = AuditLog::open_with(dir.path(), config()).unwrap();
    while segment_files(dir.path()).len() < 3 {
        log.append(&body(0, 300)).unwrap();
    }
    drop(log);
    let files = list_segments(dir.path()).unwrap();
    fs::remove_file(&files[1].path).unwrap();
    let error = AuditLog::open_with(dir.path(), config()).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Damaged {
                problem: Damage::SeqOutOfOrder { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(files[0].path.to_str().unwrap()),
        "{error}"
    );
}

#[test]
fn a_segment_left_empty_or_torn_by_a_crash_during_rotation_gets_its_start_record() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&body(1, 10)).unwrap();
        log.head()
    };
    // Created, and its directory entry synced, but nothing written yet.
    let next = dir.path().join(segment_name(head.0 + 1));
    fs::write(&next, b"").unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.head().0, head.0 + 1);
    drop(log);
    let start = &records(dir.path())[head.0 as usize];
    assert_eq!(start["kind"], "segment_start");
    assert_eq!(start["previous_segment"], segment_name(1));
    assert_eq!(start["prev_hash"], head.1);
    verified(dir.path());

    // A segment whose start record itself was torn: set aside, then started again.
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&body(1, 10)).unwrap();
        log.head()
    };
    let next = dir.path().join(segment_name(head.0 + 1));
    let torn = format!("{{\"seq\":{},\"prev_hash\":\"{}", head.0 + 1, &head.1[..10]);
    fs::write(&next, &torn).unwrap();
    AuditLog::open(dir.path()).unwrap();
    assert_eq!(
        kinds(dir.path()),
        ["log_start", "note", "segment_start", "repair"]
    );
    assert_eq!(
        fs::read(&torn_files(dir.path())[0]).unwrap(),
        torn.as_bytes()
    );
    verified(dir.path());
}

#[test]
fn a_repair_interrupted_by_a_crash_is_finished_on_the_next_open() {
    // Crash after copying the torn bytes, before cutting them off: the copy is reused.
    let dir = tempfile::tempdir().unwrap();
    three_notes(dir.path());
    let torn = br#"{"seq":5,"prev_hash":"ab"#;
    append_bytes(&first_segment(dir.path()), torn);
    fs::create_dir(dir.path().join(TORN_DIR)).unwrap();
    let copy = dir
        .path()
        .join(TORN_DIR)
        .join(format!("{}.torn-0000000000001", segment_name(1)));
    fs::write(&copy, torn).unwrap();
    AuditLog::open(dir.path()).unwrap();
    assert_eq!(torn_files(dir.path()), std::slice::from_ref(&copy));
    let repairs = records_of(dir.path(), "repair");
    assert_eq!(repairs.len(), 1);
    assert_eq!(
        repairs[0]["set_aside"],
        format!("{TORN_DIR}/{}", copy.file_name().unwrap().to_str().unwrap())
    );

    // Crash after cutting them off, before the repair record: the record is written now.
    let dir = tempfile::tempdir().unwrap();
    let intact = three_notes(dir.path());
    fs::create_dir(dir.path().join(TORN_DIR)).unwrap();
    let copy = dir
        .path()
        .join(TORN_DIR)
        .join(format!("{}.torn-0000000000002", segment_name(1)));
    fs::write(&copy, torn).unwrap();
    AuditLog::open(dir.path()).unwrap();
    let repairs = records_of(dir.path(), "repair");
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0]["truncated_at"], intact.len() as u64);
    assert_eq!(repairs[0]["torn_bytes"], torn.len() as u64);

    // Once recorded, a copy is not recorded again.
    AuditLog::open(dir.path()).unwrap();
    assert_eq!(records_of(dir.path(), "repair").len(), 1);
    verified(dir.path());
}
