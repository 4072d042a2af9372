//! Arbitrary bytes as an audit log: the verifier and the record reader must end every input in
//! a report or a typed error, never a panic, and agree with each other.
//!
//! The input is verified
//! 1. as a stream (`verify_reader`);
//! 2. as a single segment file `segment-00000000000000000001.jsonl` (`verify_file`), and read
//!    back line by line with `RecordReader`;
//! 3. as a log directory: the input split at form feeds (0x0C) into segment files, each named
//!    by the seq its first line starts with, verified without a key, with the demo log's
//!    public key, and with that key and the demo log's checkpoint file
//!    (`fixtures/demo-log/`), so inputs grown from the demo log reach the checkpoint checks.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_audit::{
    CheckpointVerifier, RecordReader, VerifyError, VerifyOptions, VerifyReport, line_seq,
    segment_name, verify_file, verify_log, verify_reader,
};
use mandate_fuzz::{fuzz_dir, reset_dir, scratch_dir};

struct Fixture {
    scratch: PathBuf,
    key: CheckpointVerifier,
    checkpoints: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let demo = fuzz_dir().join("fixtures/demo-log");
        let key = CheckpointVerifier::load(&demo.join("checkpoint-key.pub")).expect("demo key");
        // The fixture itself must verify, or the keyed runs test nothing.
        let options = VerifyOptions {
            key: Some(key.clone()),
            ..VerifyOptions::default()
        };
        verify_log(&demo, &options).expect("the demo log verifies with its key");
        Fixture {
            scratch: scratch_dir("audit-verify"),
            key,
            checkpoints: demo.join("checkpoints.jsonl"),
        }
    })
}

/// What every report must satisfy.
fn check_report(report: &VerifyReport) {
    assert!(report.records >= 1, "a verified log holds a record");
    assert!(report.first_seq >= 1 && report.first_seq <= report.head_seq);
    assert_eq!(
        report.records,
        report.head_seq - report.first_seq + 1,
        "records are counted without gaps"
    );
    assert_eq!(report.head_hash.len(), 64);
}

/// The result's outline, to compare two verifications of the same bytes.
fn outline(result: &Result<VerifyReport, VerifyError>) -> Result<(u64, u64, String), Option<u64>> {
    match result {
        Ok(r) => Ok((r.records, r.head_seq, r.head_hash.clone())),
        Err(e) => Err(e.first_bad_seq()),
    }
}

fn read_all(path: &Path) -> Vec<(Option<u64>, Vec<u8>)> {
    let reader = RecordReader::open(path).expect("open the record reader");
    let mut records = Vec::new();
    for record in reader {
        let record = record.expect("read a record from a scratch file");
        records.push((record.seq, record.bytes));
    }
    records
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();

    // 1. As a stream.
    let streamed = verify_reader(data);
    if let Ok(report) = &streamed {
        check_report(report);
        assert_eq!(report.bytes, data.len() as u64);
    }

    // 2. As one segment file: the same verdict as the stream, and the reader gives back
    //    every line.
    let single = fixture.scratch.join("single");
    reset_dir(&single);
    let file = single.join(segment_name(1));
    std::fs::write(&file, data).expect("write the segment");
    let from_file = verify_file(&file);
    if let Ok(report) = &from_file {
        check_report(report);
    }
    assert_eq!(
        outline(&streamed),
        outline(&from_file),
        "a stream and the same bytes in a segment file verify alike"
    );
    let records = read_all(&file);
    let lines: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.strip_suffix(b"\n")
            .unwrap_or(data)
            .split(|&b| b == b'\n')
            .collect()
    };
    assert_eq!(records.len(), lines.len(), "the reader returns every line");
    for ((seq, bytes), line) in records.iter().zip(&lines) {
        assert_eq!(bytes.as_slice(), *line);
        assert_eq!(*seq, line_seq(line));
    }

    // 3. As a log directory of segments split at form feeds.
    let dir = fixture.scratch.join("log");
    reset_dir(&dir);
    let mut next_name = 1u64;
    for part in data.split(|&b| b == 0x0c) {
        let named = part
            .split(|&b| b == b'\n')
            .next()
            .and_then(line_seq)
            .filter(|&seq| seq >= 1)
            .unwrap_or(next_name);
        let mut name = named;
        while dir.join(segment_name(name)).exists() {
            name = name.saturating_add(1);
        }
        std::fs::write(dir.join(segment_name(name)), part).expect("write a segment");
        next_name = name.saturating_add(1);
    }
    let plain = verify_log(&dir, &VerifyOptions::default());
    if let Ok(report) = &plain {
        check_report(report);
    }
    let keyed = verify_log(
        &dir,
        &VerifyOptions {
            key: Some(fixture.key.clone()),
            ..VerifyOptions::default()
        },
    );
    if let Ok(report) = &keyed {
        check_report(report);
        assert!(
            plain.is_ok(),
            "a log that verifies with a key verifies without"
        );
    }
    let with_file = verify_log(
        &dir,
        &VerifyOptions {
            key: Some(fixture.key.clone()),
            checkpoints: Some(fixture.checkpoints.clone()),
            ..VerifyOptions::default()
        },
    );
    if let Ok(report) = &with_file {
        check_report(report);
        assert!(
            keyed.is_ok(),
            "a log that verifies with a checkpoint file verifies without"
        );
    }
    let _ = read_all(&dir);
});
