//! End-to-end tests of the audit log: write with [`AuditLog`], tamper with the bytes, verify.
//! The writer's own behaviours (group commit, segments, repair, faults, checkpoints) are tested
//! in `writer/tests/`.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::chain::{BodyFields, encode_line, hash_prefix, now_millis};
use super::*;

/// The first (here: only) segment of the log in `dir`.
fn first_segment(dir: &Path) -> PathBuf {
    dir.join(segment_name(1))
}

/// A log of six records: `log_start` and five bodies of different shapes, in one segment.
/// Returns the segment's path and bytes.
fn sample_log(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    log.append(&json!({"kind": "session_start", "session_id": "s-1"}))
        .unwrap();
    log.append(&json!({})).unwrap();
    log.append(&json!({"kind": "decision", "decision": {"effect": "deny", "policies": ["p1"]}}))
        .unwrap();
    log.append(&json!({"kind": "outcome", "text": "line\nbreak \"quoted\" ünïcode"}))
        .unwrap();
    log.append(&json!({"kind": "session_end"})).unwrap();
    log.close().unwrap();
    let path = first_segment(&log_dir);
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

/// Byte ranges of each line, newline included.
fn line_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            spans.push(start..i + 1);
            start = i + 1;
        }
    }
    assert_eq!(start, bytes.len(), "sample logs end with a newline");
    spans
}

fn verify_bytes(bytes: &[u8]) -> Result<VerifyReport, VerifyError> {
    verify_reader(bytes)
}

fn broken(result: Result<VerifyReport, VerifyError>) -> ChainBroken {
    match result {
        Err(VerifyError::Broken(broken)) => broken,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn not_a_log(result: Result<VerifyReport, VerifyError>) -> NotALog {
    match result {
        Err(VerifyError::NotALog(not)) => not,
        other => panic!("expected not a log, got {other:?}"),
    }
}

/// Whether permission bits bind this process (they do not for root).
fn permissions_apply(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    fs::write(&probe, b"").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o444)).unwrap();
    let applies = fs::OpenOptions::new().append(true).open(&probe).is_err();
    fs::remove_file(&probe).unwrap();
    applies
}

#[test]
fn appended_records_verify_and_chain_together() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    assert_eq!(log.path(), log_dir);
    assert_eq!(log.head().0, 1);
    let path = first_segment(&log_dir);

    #[derive(Serialize)]
    struct Decision<'a> {
        kind: &'a str,
        tool: &'a str,
        arguments: Vec<u32>,
        approved: Option<bool>,
    }
    let first = log.append(&json!({"kind": "session_start"})).unwrap();
    let second = log
        .append(&Decision {
            kind: "decision",
            tool: "fs.read",
            arguments: vec![1, 2],
            approved: None,
        })
        .unwrap();
    let third = log.append(&json!({})).unwrap();
    assert_eq!((first.seq, second.seq, third.seq), (2, 3, 4));
    assert_eq!(log.head(), (4, third.hash.clone()));

    let report = verify_file(&log_dir).unwrap();
    assert_eq!(
        (report.records, report.head_seq, &report.head_hash),
        (4, 4, &third.hash)
    );

    let text = fs::read_to_string(&path).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["kind"], "log_start");
    assert_eq!(records[0]["format"], "mandate-audit/1");
    assert_eq!(records[0]["prev_hash"], GENESIS_HASH);
    assert_eq!(records[2]["tool"], "fs.read");
    assert_eq!(records[2]["approved"], Value::Null);
    for pair in records.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    for (line, record) in text.lines().zip(&records) {
        let keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.iter()
                .all(|k| ["seq", "prev_hash", "timestamp", "hash"].contains(k)
                    || !RESERVED_KEYS.contains(k))
        );
        assert!(line.starts_with(&format!("{{\"seq\":{},\"prev_hash\":\"", record["seq"])));
        let (prefix, _) = line.rsplit_once(",\"hash\":\"").unwrap();
        assert_eq!(record["hash"], hash_prefix(prefix.as_bytes()));
    }
    // The empty body adds no fields.
    assert_eq!(records[3].as_object().unwrap().len(), 4);
}

#[test]
fn the_returned_timestamp_is_the_one_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path().join("audit")).unwrap();
    let appended = log.append(&json!({"kind": "x"})).unwrap();
    let text = fs::read_to_string(first_segment(log.path())).unwrap();
    let record: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let written = record["timestamp"].as_str().unwrap();
    assert_eq!(written.len(), "2026-11-26T16:25:49.123Z".len());
    assert!(written.ends_with('Z'));
    assert_eq!(
        written.parse::<jiff::Timestamp>().unwrap(),
        appended.timestamp
    );
}

#[test]
fn reopening_a_log_continues_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let head = {
        let log = AuditLog::open(&path).unwrap();
        log.append(&json!({"kind": "a"})).unwrap();
        log.append(&json!({"kind": "b"})).unwrap();
        log.head()
    };
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head(), head);
    let next = log.append(&json!({"kind": "c"})).unwrap();
    assert_eq!(next.seq, 4);
    let text = fs::read_to_string(first_segment(&path)).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["prev_hash"], head.1);
    assert_eq!(verify_file(&path).unwrap().head_seq, 4);

    // A log holding only its log_start record reopens too.
    let fresh = dir.path().join("fresh");
    let head = AuditLog::open(&fresh).unwrap().head();
    assert_eq!(AuditLog::open(&fresh).unwrap().head(), head);
}

#[test]
fn opening_an_empty_directory_or_segment_starts_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let empty_dir = dir.path().join("empty");
    fs::create_dir(&empty_dir).unwrap();
    let log = AuditLog::open(&empty_dir).unwrap();
    assert_eq!(log.head().0, 1);
    drop(log);
    assert_eq!(verify_file(&empty_dir).unwrap().records, 1);

    // A first segment created but never written (a crash right after creating it).
    let empty_segment = dir.path().join("empty-segment");
    fs::create_dir(&empty_segment).unwrap();
    fs::write(first_segment(&empty_segment), b"").unwrap();
    let log = AuditLog::open(&empty_segment).unwrap();
    assert_eq!(log.head().0, 1);
    drop(log);
    assert_eq!(verify_file(&empty_segment).unwrap().records, 1);
}

#[test]
fn every_single_byte_change_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    verify_bytes(&bytes).unwrap();
    for position in 0..bytes.len() {
        for mask in [0x01, 0x20, 0x80] {
            let mut tampered = bytes.clone();
            tampered[position] ^= mask;
            assert!(
                verify_bytes(&tampered).is_err(),
                "flipping {mask:#04x} at byte {position} went unnoticed"
            );
        }
    }
}

#[test]
fn every_deleted_record_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    let spans = line_spans(&bytes);
    for (index, span) in spans.iter().enumerate().take(spans.len() - 1) {
        let mut tampered = bytes.clone();
        tampered.drain(span.clone());
        let broken = broken(verify_bytes(&tampered));
        let seq = index as u64 + 1;
        assert_eq!((broken.seq, broken.line), (seq, seq));
        assert_eq!(
            broken.problem,
            ChainProblem::SeqOutOfOrder {
                expected: seq,
                found: seq + 1
            }
        );
    }
}

#[test]
fn deleting_the_last_record_leaves_a_shorter_valid_chain() {
    // Documented limitation: only a head kept elsewhere reveals this.
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    let spans = line_spans(&bytes);
    let full = verify_bytes(&bytes).unwrap();
    let report = verify_bytes(&bytes[..spans[spans.len() - 1].start]).unwrap();
    assert_eq!(report.head_seq, full.head_seq - 1);
    assert_ne!(report.head_hash, full.head_hash);
}

#[test]
fn every_swap_of_adjacent_records_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    let spans = line_spans(&bytes);
    for index in 0..spans.len() - 1 {
        let mut tampered = bytes[..spans[index].start].to_vec();
        tampered.extend_from_slice(&bytes[spans[index + 1].clone()]);
        tampered.extend_from_slice(&bytes[spans[index].clone()]);
        tampered.extend_from_slice(&bytes[spans[index + 1].end..]);
        let broken = broken(verify_bytes(&tampered));
        let seq = index as u64 + 1;
        assert_eq!(broken.seq, seq);
        assert_eq!(
            broken.problem,
            ChainProblem::SeqOutOfOrder {
                expected: seq,
                found: seq + 1
            }
        );
    }
}

#[test]
fn truncation_inside_a_record_is_a_torn_tail_naming_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_log(&dir);
    let spans = line_spans(&bytes);
    for (index, span) in spans.iter().enumerate() {
        for cut in span.start + 1..span.end {
            let broken = broken(verify_bytes(&bytes[..cut]));
            let seq = index as u64 + 1;
            assert_eq!((broken.seq, broken.line), (seq, seq), "cut at {cut}");
            assert_eq!(broken.problem, ChainProblem::TornTail, "cut at {cut}");
        }
    }
    // Through a file, the message names the file, the line and the seq.
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(bytes.len() as u64 - 10).unwrap();
    let error = verify_file(&path).unwrap_err();
    assert_eq!(error.first_bad_seq(), Some(6));
    assert_eq!(error.line(), Some(6));
    assert_eq!(
        error.to_string(),
        format!(
            "audit log `{}` is broken at line 6 (seq 6): the last line has no newline: the file was truncated mid-record",
            path.display()
        )
    );
}

#[test]
fn a_forged_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    let head = verify_bytes(&bytes).unwrap();
    let body = BodyFields::new(&json!({"kind": "forged"})).unwrap();

    // Correctly hashed, but linked to the wrong record.
    let wrong_prev = hash_prefix(b"not the head");
    let mut tampered = bytes.clone();
    tampered.extend_from_slice(&encode_line(7, &wrong_prev, now_millis(), &body).bytes);
    let broken_chain = broken(verify_bytes(&tampered));
    assert_eq!(broken_chain.seq, 7);
    assert_eq!(
        broken_chain.problem,
        ChainProblem::PrevHashMismatch {
            expected: head.head_hash.clone(),
            found: wrong_prev
        }
    );

    // Correctly linked, but claiming an existing seq.
    let mut tampered = bytes.clone();
    tampered.extend_from_slice(&encode_line(6, &head.head_hash, now_millis(), &body).bytes);
    let broken_chain = broken(verify_bytes(&tampered));
    assert_eq!(
        broken_chain.problem,
        ChainProblem::SeqOutOfOrder {
            expected: 7,
            found: 6
        }
    );

    // Inserted in the middle with valid links to its predecessor.
    let spans = line_spans(&bytes);
    let second: Value = serde_json::from_slice(&bytes[spans[1].clone()]).unwrap();
    let inserted = encode_line(3, second["hash"].as_str().unwrap(), now_millis(), &body);
    let mut tampered = bytes[..spans[2].start].to_vec();
    tampered.extend_from_slice(&inserted.bytes);
    tampered.extend_from_slice(&bytes[spans[2].start..]);
    let broken_chain = broken(verify_bytes(&tampered));
    assert_eq!((broken_chain.seq, broken_chain.line), (4, 4));
}

#[test]
fn invalid_utf8_is_reported_as_a_malformed_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = sample_log(&dir);
    let head = verify_bytes(&bytes).unwrap();
    let mut prefix = format!(
        "{{\"seq\":7,\"prev_hash\":\"{}\",\"timestamp\":\"x\",\"text\":\"",
        head.head_hash
    )
    .into_bytes();
    prefix.extend_from_slice(b"\xff\xfe\"");
    let mut tampered = bytes.clone();
    tampered.extend_from_slice(&prefix);
    tampered.extend_from_slice(format!(",\"hash\":\"{}\"}}\n", hash_prefix(&prefix)).as_bytes());
    let broken = broken(verify_bytes(&tampered));
    assert_eq!(broken.seq, 7);
    // Column of the 0xff byte: after the prefix minus its last three bytes (0xff 0xfe ").
    let column = prefix.len() - 2;
    assert_eq!(
        broken.problem,
        ChainProblem::Malformed(Malformed::InvalidUtf8 { column })
    );
}

#[test]
fn files_that_are_not_audit_logs_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "0".repeat(64);
    let framed = |prefix: &str| {
        format!(
            "{prefix},\"hash\":\"{}\"}}\n",
            hash_prefix(prefix.as_bytes())
        )
    };
    let cases: Vec<(&str, String, NotALogReason)> = vec![
        ("empty", String::new(), NotALogReason::Empty),
        (
            "text",
            "hello world\nsecond line\n".into(),
            NotALogReason::NotFramed,
        ),
        (
            "text without newline",
            "hello".into(),
            NotALogReason::NotFramed,
        ),
        (
            "json",
            "{\"kind\":\"log_start\"}\n".into(),
            NotALogReason::NotFramed,
        ),
        (
            "json with a hash but no seq",
            format!("{{\"kind\":\"log_start\",\"hash\":\"{hash}\"}}\n"),
            NotALogReason::InvalidJson {
                message: "missing field `seq`".into(),
            },
        ),
        (
            "another kind of record",
            framed(&format!(
                "{{\"seq\":1,\"prev_hash\":\"{hash}\",\"kind\":\"decision\""
            )),
            NotALogReason::NotLogStart {
                found: Some("decision".into()),
            },
        ),
        (
            "another format",
            framed(&format!(
                "{{\"seq\":1,\"prev_hash\":\"{hash}\",\"kind\":\"log_start\",\"format\":\"other/9\""
            )),
            NotALogReason::UnknownFormat {
                found: Some("other/9".into()),
            },
        ),
    ];
    for (name, content, reason) in cases {
        let path = dir.path().join(format!("{name}.txt"));
        fs::write(&path, &content).unwrap();
        let error = verify_file(&path).unwrap_err();
        assert_eq!(error.first_bad_seq(), None, "{name}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "`{}` is not a mandate audit log: ",
                path.display()
            )),
            "{name}: {message}"
        );
        assert_eq!(not_a_log(Err(error)).reason, reason, "{name}");

        // As the first segment of a log, opening it for appending refuses and leaves it
        // untouched.
        if !content.is_empty() {
            let log_dir = dir.path().join(format!("{name}.log"));
            fs::create_dir(&log_dir).unwrap();
            let segment = first_segment(&log_dir);
            fs::write(&segment, &content).unwrap();
            let error = AuditLog::open(&log_dir).unwrap_err();
            assert!(
                matches!(
                    error,
                    AuditError::Damaged {
                        line: 1,
                        seq: 1,
                        ..
                    } | AuditError::Tampered {
                        line: 1,
                        seq: 1,
                        ..
                    }
                ),
                "{name}: {error:?}"
            );
            assert_eq!(fs::read_to_string(&segment).unwrap(), content, "{name}");
            assert!(!log_dir.join(TORN_DIR).exists(), "{name}");
        }
    }
}

#[test]
fn a_log_start_with_a_nonzero_prev_hash_breaks_the_chain_at_seq_1() {
    // Line 1 with a correct hash but a nonzero prev_hash: a log_start cannot follow anything.
    let prefix = format!(
        "{{\"seq\":1,\"prev_hash\":\"{}\",\"kind\":\"log_start\",\"format\":\"mandate-audit/1\"",
        "1".repeat(64)
    );
    let line = format!(
        "{prefix},\"hash\":\"{}\"}}\n",
        hash_prefix(prefix.as_bytes())
    );
    let broken = broken(verify_bytes(line.as_bytes()));
    assert_eq!(broken.seq, 1);
    assert!(matches!(
        broken.problem,
        ChainProblem::PrevHashMismatch { .. }
    ));
}

#[test]
fn verifying_a_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.jsonl");
    let error = verify_file(&path).unwrap_err();
    assert!(matches!(error, VerifyError::Io(_)));
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read audit log `{}`: ", path.display()))
    );
}

#[test]
fn open_repairs_a_torn_tail_but_refuses_an_altered_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_log(&dir);
    let log_dir = path.parent().unwrap().to_path_buf();
    let spans = line_spans(&bytes);
    let last = spans[spans.len() - 1].clone();

    // Altered: the last record's bytes no longer match its hash. A crash cannot do that.
    let mut altered = bytes.clone();
    altered[last.start + 10] ^= 0x01;
    fs::write(&path, &altered).unwrap();
    let error = AuditLog::open(&log_dir).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Tampered {
                line: 6,
                seq: 6,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("line 6, seq 6"), "{message}");
    assert!(message.contains("does not match its hash"), "{message}");
    assert_eq!(fs::read(&path).unwrap(), altered);

    // Altered before the last record: damaged, also refused.
    let mut altered = bytes.clone();
    altered[spans[2].start + 10] ^= 0x01;
    fs::write(&path, &altered).unwrap();
    let error = AuditLog::open(&log_dir).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Damaged {
                line: 3,
                seq: 3,
                problem: Damage::HashMismatch,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), altered);

    // Torn: the last record lost its end. It is set aside and the repair recorded.
    fs::write(&path, &bytes[..last.end - 5]).unwrap();
    let log = AuditLog::open(&log_dir).unwrap();
    assert_eq!(log.head().0, 6);
    drop(log);
    let text = fs::read_to_string(&path).unwrap();
    let repair: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(repair["kind"], "repair");
    assert_eq!(repair["truncated_at"], last.start);
    let torn = log_dir.join(repair["set_aside"].as_str().unwrap());
    assert_eq!(fs::read(torn).unwrap(), &bytes[last.start..last.end - 5]);
    assert_eq!(verify_file(&log_dir).unwrap().head_seq, 6);
}

#[test]
fn open_refuses_paths_that_cannot_hold_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    fs::write(&file, b"").unwrap();
    let error = AuditLog::open(&file).unwrap_err();
    assert!(
        matches!(error, AuditError::NotADirectory { .. }),
        "{error:?}"
    );
    assert!(error.to_string().starts_with(&format!(
        "cannot open audit log `{}`: it is a file, but an audit log is a directory",
        file.display()
    )));

    let missing_parent = dir.path().join("no/such/dir/audit");
    let error = AuditLog::open(&missing_parent).unwrap_err();
    assert!(matches!(error, AuditError::Open { .. }), "{error:?}");
    assert!(!dir.path().join("no").exists());

    if Path::new("/dev/null").exists() {
        let error = AuditLog::open("/dev/null").unwrap_err();
        assert!(
            matches!(error, AuditError::NotADirectory { .. }),
            "{error:?}"
        );
    }
}

#[test]
fn a_second_writer_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let first = AuditLog::open(&path).unwrap();
    let error = AuditLog::open(&path).unwrap_err();
    assert!(matches!(error, AuditError::Locked { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "audit log `{}` is already open for appending elsewhere",
            path.display()
        )
    );
    drop(first);
    AuditLog::open(&path).unwrap().close().unwrap();
    // Closing releases the lock as dropping does.
    AuditLog::open(&path).unwrap();
}

/// Set in the child that [`read_only_files_and_directories_are_refused`]
/// starts as an unprivileged user when the tests run as root.
const UNPRIVILEGED_CHILD: &str = "MANDATE_TEST_UNPRIVILEGED_CHILD";

#[test]
fn read_only_files_and_directories_are_refused() {
    let probe = tempfile::tempdir().unwrap();
    if permissions_apply(probe.path()) {
        read_only_refusals();
        println!("read-only refusals checked as an unprivileged user");
        return;
    }
    // Permission bits do not bind this user (root, as in CI): a test that
    // returned here would check nothing. Run the same checks again as
    // `nobody`, in a child of this test binary, and require them to pass.
    assert!(
        std::env::var_os(UNPRIVILEGED_CHILD).is_none(),
        "permission bits do not apply even to the unprivileged child"
    );
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "env"])
        .arg(format!("{UNPRIVILEGED_CHILD}=1"))
        .arg("TMPDIR=/tmp")
        .arg(&exe)
        .args([
            "--exact",
            "tests::read_only_files_and_directories_are_refused",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `runuser -u nobody` (needed as root): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the checks failed as `nobody`:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("read-only refusals checked as an unprivileged user")
            && stdout.contains("1 passed"),
        "the child did not run the checks:\n{stdout}\n{stderr}"
    );
}

fn read_only_refusals() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_log(&dir);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    assert!(matches!(
        AuditLog::open(path.parent().unwrap()),
        Err(AuditError::Open { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), bytes);

    let locked_dir = dir.path().join("locked");
    fs::create_dir(&locked_dir).unwrap();
    fs::set_permissions(&locked_dir, fs::Permissions::from_mode(0o555)).unwrap();
    assert!(matches!(
        AuditLog::open(locked_dir.join("audit")),
        Err(AuditError::Open { .. })
    ));
    fs::set_permissions(&locked_dir, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_failed_write_or_sync_is_removed_and_the_head_does_not_advance() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    log.append(&json!({"kind": "a"})).unwrap();
    let head = log.head();
    let path = first_segment(&log_dir);
    let before = fs::read(&path).unwrap();

    for fault in [
        Fault::Io,
        Fault::SyncFails,
        Fault::PermissionDenied,
        Fault::DiskFull,
    ] {
        log.faults().set(Some(FaultPlan::always(fault)));
        let error = log.append(&json!({"kind": "lost"})).unwrap_err();
        assert!(matches!(error, AuditError::Write { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with(&format!(
                "cannot write audit log segment `{}`: ",
                path.display()
            )),
            "{error}"
        );
        assert!(error.to_string().contains("(injected)"), "{error}");
        assert_eq!(log.head(), head);
        assert_eq!(fs::read(&path).unwrap(), before, "{fault:?}");
    }

    log.faults().set(None);
    let next = log.append(&json!({"kind": "b"})).unwrap();
    // The outage record comes first.
    assert_eq!(next.seq, head.0 + 2);
    assert_eq!(verify_file(&log_dir).unwrap().head_hash, next.hash);
}

#[test]
fn a_write_that_cannot_be_rolled_back_is_retried_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    let head = log.head();
    let path = first_segment(&log_dir);
    let before = fs::read(&path).unwrap();

    log.faults().set(Some(FaultPlan {
        fault: Fault::RollbackFails,
        skip: 0,
        count: Some(2),
    }));
    let error = log.append(&json!({"kind": "half"})).unwrap_err();
    assert!(
        matches!(error, AuditError::WriteUnrecovered { .. }),
        "{error:?}"
    );
    assert!(
        fs::read(&path).unwrap().len() > before.len(),
        "half a record is left"
    );
    assert_eq!(log.head(), head);

    // The next append tries the truncation again first; it fails again.
    let error = log.append(&json!({"kind": "after"})).unwrap_err();
    assert!(
        matches!(error, AuditError::WriteUnrecovered { .. }),
        "{error:?}"
    );
    assert_eq!(log.head(), head);

    // Then it succeeds: the partial record is gone and the chain goes on.
    let next = log.append(&json!({"kind": "later"})).unwrap();
    assert_eq!(next.seq, head.0 + 2);
    drop(log);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(std::str::from_utf8(&before).unwrap()));
    assert!(!text.contains("half"));
    assert_eq!(verify_file(&log_dir).unwrap().head_seq, next.seq);
}

#[test]
fn bodies_that_would_clash_with_the_frame_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    let path = first_segment(&log_dir);
    let before = fs::read(&path).unwrap();
    for key in RESERVED_KEYS {
        let error = log.append(&json!({ key: 1 })).unwrap_err();
        assert!(
            matches!(error, AuditError::Body { error: BodyError::ReservedKey { ref key }, .. } if RESERVED_KEYS.contains(&key.as_str())),
            "{error:?}"
        );
    }
    let error = log.append(&json!(["not", "an", "object"])).unwrap_err();
    assert!(matches!(
        error,
        AuditError::Body {
            error: BodyError::NotAnObject,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "cannot append to audit log `{}`: the body is not a JSON object",
            log_dir.display()
        )
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(log.head().0, 1);
}

#[test]
fn concurrent_appends_get_distinct_consecutive_seqs() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let log = AuditLog::open(&path).unwrap();
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let log = &log;
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| log.append(&json!({"thread": thread, "i": i})).unwrap().seq)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    seqs.sort_unstable();
    let expected: Vec<u64> = (2..=THREADS * PER_THREAD + 1).collect();
    assert_eq!(seqs, expected);
    let report = verify_file(&path).unwrap();
    assert_eq!(report.records, THREADS * PER_THREAD + 1);
    assert_eq!(log.head(), (report.head_seq, report.head_hash));
}

#[test]
fn audit_log_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AuditLog>();
    assert_send_sync::<AuditError>();
    assert_send_sync::<VerifyError>();
}

#[test]
fn error_messages_are_lowercase_without_a_final_period() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_log(&dir);
    let mut errors: Vec<String> = Vec::new();
    for position in (0..bytes.len()).step_by(7) {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x01;
        fs::write(&path, &tampered).unwrap();
        errors.push(verify_file(&path).unwrap_err().to_string());
    }
    errors.push(AuditLog::open(&path).unwrap_err().to_string());
    let mut altered = bytes.clone();
    altered[line_spans(&bytes)[2].start + 10] ^= 0x01;
    fs::write(&path, &altered).unwrap();
    errors.push(
        AuditLog::open(path.parent().unwrap())
            .unwrap_err()
            .to_string(),
    );
    for message in errors {
        let first = message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}
