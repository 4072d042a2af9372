//! Signed checkpoints: after every so many records, after so much time, and at close; in the log
//! and in `checkpoints.jsonl`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{
    AuditConfig, AuditLog, CHECKPOINT_FILE, CheckpointSigner, SignedCheckpoint, VerifyOptions,
    verify_log,
};

fn config(signer: &Arc<CheckpointSigner>, every_records: u64, every: Duration) -> AuditConfig {
    AuditConfig {
        checkpoint_signer: Some(Arc::clone(signer)),
        checkpoint_every_records: every_records,
        checkpoint_every: every,
        ..AuditConfig::default()
    }
}

/// The kinds of the last two records.
fn log_tail_kinds(dir: &Path) -> Vec<String> {
    let kinds = kinds(dir);
    kinds[kinds.len() - 2..].to_vec()
}

/// The lines of `checkpoints.jsonl`.
fn checkpoint_lines(dir: &Path) -> Vec<Value> {
    fs::read_to_string(dir.join(CHECKPOINT_FILE))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every checkpoint record vouches for the record before it with a valid signature, and the
/// checkpoint file holds the same checkpoints with the seqs of their records.
fn assert_checkpoints_sound(dir: &Path, signer: &CheckpointSigner) -> usize {
    let records = records(dir);
    let verifier = signer.public_key();
    let mut in_log = Vec::new();
    for pair in records.windows(2) {
        let (before, record) = (&pair[0], &pair[1]);
        if record["kind"] != "checkpoint" {
            continue;
        }
        let signed: SignedCheckpoint = serde_json::from_value(record.clone()).unwrap();
        assert_eq!(signed.checkpoint.seq, before["seq"].as_u64().unwrap());
        assert_eq!(
            signed.checkpoint.head_hash,
            before["hash"].as_str().unwrap()
        );
        assert_eq!(signed.checkpoint.key_id, signer.key_id());
        verifier.verify(&signed).unwrap();
        in_log.push((record["seq"].as_u64().unwrap(), signed));
    }
    let in_file: Vec<(u64, SignedCheckpoint)> = checkpoint_lines(dir)
        .into_iter()
        .map(|line| {
            let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["checkpoint", "signature", "record_seq"]);
            let seq = line["record_seq"].as_u64().unwrap();
            (seq, serde_json::from_value(line).unwrap())
        })
        .collect();
    assert_eq!(in_file, in_log);
    let report = verify_log(
        dir,
        &VerifyOptions {
            key: Some(verifier),
            ..VerifyOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("the log does not verify with its key: {e}"));
    assert_eq!(report.checkpoints.in_log, in_log.len() as u64);
    in_log.len()
}

#[test]
fn checkpoints_follow_every_so_many_records_and_go_into_the_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log =
        AuditLog::open_with(dir.path(), config(&signer, 5, Duration::from_secs(3600))).unwrap();
    for n in 0..15 {
        log.append(&body(n, 20)).unwrap();
    }
    log.close().unwrap();
    // log_start and 15 notes: a checkpoint after every 5 records since the last one, and one
    // at close for the last note.
    let seqs: Vec<u64> = records_of(dir.path(), "checkpoint")
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [6, 12, 18, 20]);
    assert_eq!(log_tail_kinds(dir.path()), ["note", "checkpoint"]);
    assert_eq!(assert_checkpoints_sound(dir.path(), &signer), 4);
}

#[test]
fn a_checkpoint_follows_when_time_passes_without_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = AuditLog::open_with(
        dir.path(),
        config(&signer, 1_000_000, Duration::from_millis(100)),
    )
    .unwrap();
    log.append(&body(1, 20)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // Wait on the head, not the file: the line is on disk a moment before the
    // writer moves its head past it.
    while log.head().0 < 3 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint came");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(log.head().0, 3);
    assert_eq!(records_of(dir.path(), "checkpoint").len(), 1);
    // Nothing new: no further checkpoint.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log.head().0, 3);
    log.close().unwrap();
    assert_eq!(assert_checkpoints_sound(dir.path(), &signer), 1);
}

#[test]
fn close_writes_a_final_checkpoint_unless_the_head_already_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let open = || {
        AuditLog::open_with(
            dir.path(),
            config(&signer, 1_000_000, Duration::from_secs(3600)),
        )
        .unwrap()
    };
    let log = open();
    log.append(&body(1, 20)).unwrap();
    log.close().unwrap();
    assert_eq!(kinds(dir.path()), ["log_start", "note", "checkpoint"]);
    open().close().unwrap();
    assert_eq!(kinds(dir.path()).len(), 3);
    // Dropping closes too.
    let log = open();
    log.append(&body(2, 20)).unwrap();
    drop(log);
    assert_eq!(kinds(dir.path()).last().unwrap(), "checkpoint");
    assert_eq!(assert_checkpoints_sound(dir.path(), &signer), 2);
}

#[test]
fn without_a_signer_no_checkpoint_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 0..20 {
        log.append(&body(n, 20)).unwrap();
    }
    log.close().unwrap();
    assert!(records_of(dir.path(), "checkpoint").is_empty());
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
}
