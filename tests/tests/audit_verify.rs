//! The verifier on logs the real writer wrote: rotated into segments, signed checkpoints every
//! few records and at close, old segments deleted by retention. What the writer leaves
//! verifies with its key; a log cut short, rewritten, trimmed without a retention record or
//! checked with another key does not.
//!
//! (Byte-level mutations of every kind are in the verifier's unit tests, which can forge
//! records with correct hashes.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mandate::audit::{
    AuditConfig, AuditLog, CHECKPOINT_FILE, CheckpointSigner, Origin, Retention, VerifyError,
    VerifyOptions, list_segments, verify_file, verify_log,
};
use serde_json::json;

/// A log of `records` appended records (plus what the writer adds), rotated every ~2 KB,
/// checkpointed every 5 records and at close.
fn write_log(
    dir: &Path,
    signer: Option<&Arc<CheckpointSigner>>,
    records: u64,
    keep: Option<usize>,
) {
    let config = AuditConfig {
        segment_max_bytes: 2048,
        checkpoint_signer: signer.cloned(),
        checkpoint_every_records: 5,
        retention: Retention {
            keep_segments: keep,
            max_age: None,
        },
        ..AuditConfig::default()
    };
    let log = AuditLog::open_with(dir, config).unwrap();
    for n in 0..records {
        log.append(&json!({
            "kind": "decision",
            "call_id": format!("sess-1:{n}"),
            "user": {"id": "alice"},
            "action": {"tool": "read_document", "arguments": {"document_id": format!("doc_{n}")}},
        }))
        .unwrap();
    }
    log.close().unwrap();
}

fn with_key(
    log: &Path,
    signer: &CheckpointSigner,
    file: Option<PathBuf>,
) -> Result<mandate::audit::VerifyReport, VerifyError> {
    verify_log(
        log,
        &VerifyOptions {
            key: Some(signer.public_key()),
            checkpoints: file,
            progress: None,
            allow_unsigned_tail: false,
        },
    )
}

#[test]
fn a_log_the_writer_closed_verifies_with_its_key_up_to_its_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = dir.path().join("audit");
    write_log(&log, Some(&signer), 40, None);

    let report = with_key(&log, &signer, None).unwrap();
    assert!(report.segments >= 3, "{report:?}");
    assert!(report.checkpoints.in_log >= 8, "{report:?}");
    assert_eq!(report.checkpoints.file, Some(log.join(CHECKPOINT_FILE)));
    assert_eq!(
        report.checkpoints.file_checkpoints,
        report.checkpoints.in_log
    );
    // Closing wrote a checkpoint as the last record: every record is vouched for.
    assert_eq!(report.checkpoints.last_vouched_seq, Some(report.head_seq));
    assert_eq!(report.checkpoints.key_id.as_deref(), Some(signer.key_id()));
}

#[test]
fn a_closed_log_cut_at_any_record_boundary_is_caught_by_its_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = dir.path().join("audit");
    write_log(&log, Some(&signer), 12, None);
    let head = verify_file(&log).unwrap().head_seq;
    let segments = list_segments(&log).unwrap();
    let originals: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| std::fs::read(&s.path).unwrap())
        .collect();

    let mut cuts = 0;
    for (i, segment) in segments.iter().enumerate() {
        let bytes = &originals[i];
        let ends: Vec<usize> = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(at, _)| at + 1)
            .collect();
        for end in ends {
            if i + 1 == segments.len() && end == bytes.len() {
                continue; // not cut at all
            }
            // Restore everything, then cut here and drop the later segments.
            for (s, original) in segments.iter().zip(&originals) {
                std::fs::write(&s.path, original).unwrap();
            }
            std::fs::write(&segment.path, &bytes[..end]).unwrap();
            for later in &segments[i + 1..] {
                std::fs::remove_file(&later.path).unwrap();
            }
            // The chain alone cannot see a cut between records ...
            let short = verify_file(&log).unwrap();
            assert!(short.head_seq < head);
            // ... the checkpoint file, which vouches for the last record, can.
            let error = with_key(&log, &signer, None).unwrap_err();
            assert!(matches!(error, VerifyError::CutShort(_)), "{error}");
            assert_eq!(error.first_bad_seq(), Some(short.head_seq + 1));
            cuts += 1;
        }
    }
    assert_eq!(cuts, head - 1);
}

#[test]
fn a_log_rewritten_wholesale_is_an_unsigned_tail_with_the_key_and_contradicted_by_the_shipped_file()
{
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let original = dir.path().join("original");
    write_log(&original, Some(&signer), 12, None);
    let shipped = dir.path().join("shipped.jsonl");
    std::fs::copy(original.join(CHECKPOINT_FILE), &shipped).unwrap();

    // The same calls written again without the key: every hash valid, no checkpoints.
    let forged = dir.path().join("forged");
    write_log(&forged, None, 12, None);
    verify_file(&forged).unwrap();
    // With the key, no record is covered by a signed checkpoint.
    let error = with_key(&forged, &signer, None).unwrap_err();
    assert!(matches!(error, VerifyError::UnsignedTail(_)), "{error}");
    assert_eq!(error.first_bad_seq(), Some(1));

    let error = with_key(&forged, &signer, Some(shipped)).unwrap_err();
    assert!(matches!(error, VerifyError::Rewritten(_)), "{error}");
    assert!(
        error.to_string().contains("the log was rewritten from seq"),
        "{error}"
    );
}

#[test]
fn retention_leaves_a_log_that_verifies_and_deleting_more_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = dir.path().join("audit");
    write_log(&log, Some(&signer), 40, Some(2));
    // Reopening applies retention again, after the last rotation.
    write_log(&log, Some(&signer), 0, Some(2));
    let segments = list_segments(&log).unwrap();
    assert!(segments.len() <= 2, "{segments:?}");

    // The checkpoint file still vouches for removed records; those are skipped.
    let report = with_key(&log, &signer, None).unwrap();
    assert!(report.first_seq > 1, "{report:?}");
    assert!(
        matches!(report.origin, Origin::Retention { .. }),
        "{report:?}"
    );

    // The oldest remaining segment deleted by hand: nothing accounts for it.
    std::fs::remove_file(&segments[0].path).unwrap();
    let error = verify_file(&log).unwrap_err();
    assert!(matches!(error, VerifyError::UnexplainedStart(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("records were removed from the start of the log"),
        "{error}"
    );
}

#[test]
fn checkpoints_signed_with_another_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let stranger = CheckpointSigner::generate().unwrap();
    let log = dir.path().join("audit");
    write_log(&log, Some(&signer), 12, None);
    std::fs::remove_file(log.join(CHECKPOINT_FILE)).unwrap();

    let error = with_key(&log, &stranger, None).unwrap_err();
    let seq = error.first_bad_seq().unwrap();
    let message = error.to_string();
    assert!(
        message.contains(&format!("(seq {seq}): checkpoint at seq {}", seq - 1)),
        "{message}"
    );
    assert!(message.contains("was signed by key"), "{message}");
}
