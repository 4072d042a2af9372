//! The writer refuses a record longer than [`MAX_RECORD_BYTES`], the most any reader accepts.

use super::*;
use crate::{AuditLog, MAX_RECORD_BYTES};

/// A body whose record, at the seqs of a fresh log, is `line_len` bytes with its newline.
fn body_of_line_len(log: &AuditLog, line_len: usize) -> Value {
    let probe = body(2, 0);
    // The preview is the whole line, newline included.
    let framing = log.preview(&probe).unwrap().len();
    body(2, line_len - framing)
}

#[test]
fn a_record_just_over_the_limit_is_refused_and_nothing_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let log = AuditLog::open(&dir).unwrap();
    let before = fs::read(first_segment(&dir)).unwrap();
    let over = body_of_line_len(&log, MAX_RECORD_BYTES + 1);

    let error = log
        .append(&over)
        .expect_err("a record over the limit was written");

    let message = error.to_string();
    assert!(
        message.contains(&MAX_RECORD_BYTES.to_string()),
        "the error does not name the limit: {message}"
    );
    assert_eq!(
        fs::read(first_segment(&dir)).unwrap(),
        before,
        "bytes were written"
    );
    assert_eq!(log.head().0, 1, "the head moved");
    // The writer is still usable and the next record chains onto seq 1.
    assert_eq!(log.append(&body(2, 10)).unwrap().seq, 2);
    log.close().unwrap();
    let report = verified(&dir);
    assert_eq!(report.records, 2);
}

#[test]
fn a_refused_record_does_not_fail_the_records_committed_with_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let log = AuditLog::open(&dir).unwrap();
    let over = body_of_line_len(&log, MAX_RECORD_BYTES + 1);
    std::thread::scope(|scope| {
        let big = scope.spawn(|| log.append(&over));
        let small: Vec<_> = (0..4)
            .map(|n| {
                let log = &log;
                scope.spawn(move || log.append(&body(n, 100)))
            })
            .collect();
        assert!(big.join().unwrap().is_err());
        for append in small {
            append.join().unwrap().unwrap();
        }
    });
    log.close().unwrap();
    assert_eq!(verified(&dir).records, 5);
}

#[test]
fn a_record_that_fits_the_limit_at_any_seq_and_time_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let log = AuditLog::open(&dir).unwrap();
    // The writer reckons with the longest seq (20 digits, 19 more than seq 2) and timestamp
    // (3 more than this year's): a line 22 bytes under the limit here fits at any of them.
    let longest = body_of_line_len(&log, MAX_RECORD_BYTES - 22);
    assert_eq!(log.append(&longest).unwrap().seq, 2);
    log.close().unwrap();
    let lines = fs::read(first_segment(&dir)).unwrap();
    let last = lines[..lines.len() - 1]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap()
        .len();
    assert_eq!(last + 1, MAX_RECORD_BYTES - 22);
    assert_eq!(verified(&dir).records, 2);
}
