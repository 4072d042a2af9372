//! Before it appends, the writer checks the history it would sign over: every record after the
//! last checkpoint it can verify (all of them without a signer), and refuses a tampered one.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;
use crate::{AuditConfig, AuditError, AuditLog, CheckpointSigner};

fn config(signer: Option<&Arc<CheckpointSigner>>, every_records: u64) -> AuditConfig {
    AuditConfig {
        segment_max_bytes: 2000,
        checkpoint_signer: signer.cloned(),
        checkpoint_every_records: every_records,
        checkpoint_every: Duration::from_secs(3600),
        ..AuditConfig::default()
    }
}

fn decision(n: u64) -> Value {
    serde_json::json!({"kind": "decision", "n": n, "reviewer": "bob", "text": "x".repeat(300)})
}

/// Every line of the log, oldest first, with the segment it is in.
fn lines(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for segment in list_segments(dir).unwrap() {
        let text = fs::read_to_string(&segment.path).unwrap();
        for line in text.lines() {
            out.push((segment.path.clone(), line.to_owned()));
        }
    }
    out
}

fn rehash(line: &str) -> String {
    let at = line.rfind(r#","hash":""#).unwrap();
    let prefix = &line[..at];
    format!(
        r#"{prefix},"hash":"{}"}}"#,
        hex::encode(Sha256::digest(prefix.as_bytes()))
    )
}

fn hash_of(line: &str) -> String {
    let at = line.rfind(r#","hash":""#).unwrap();
    line[at + 9..at + 9 + 64].to_owned()
}

fn set_prev_hash(line: &str, prev: &str) -> String {
    let at = line.find(r#""prev_hash":""#).unwrap() + 13;
    format!("{}{}{}", &line[..at], prev, &line[at + 64..])
}

/// Writes `lines` back into their segments, each segment rewritten whole.
fn write_back(lines: &[(PathBuf, String)]) {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for (path, line) in lines {
        match files.last_mut() {
            Some((last, text)) if last == path => {
                text.push_str(line);
                text.push('\n');
            }
            _ => files.push((path.clone(), format!("{line}\n"))),
        }
    }
    for (path, text) in files {
        fs::write(path, text).unwrap();
    }
}

/// Edits the record with `seq` and re-chains every record after it, as an attacker without the
/// signing key can.
fn forge_and_rechain(dir: &Path, seq: u64, edit: impl Fn(&str) -> String) {
    let mut all = lines(dir);
    let index = all
        .iter()
        .position(|(_, l)| l.starts_with(&format!(r#"{{"seq":{seq},"#)))
        .unwrap();
    all[index].1 = rehash(&edit(&all[index].1));
    for i in index + 1..all.len() {
        let prev = hash_of(&all[i - 1].1);
        all[i].1 = rehash(&set_prev_hash(&all[i].1, &prev));
    }
    write_back(&all);
}

fn refused_at(result: Result<AuditLog, AuditError>) -> (u64, String) {
    match result {
        Ok(_) => panic!("the log was opened"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("mandate audit verify"), "{message}");
            match error {
                AuditError::Damaged { seq, .. } | AuditError::Tampered { seq, .. } => {
                    (seq, message)
                }
                AuditError::CheckpointedRecordMissing { seq, .. } => (seq, message),
                other => panic!("unexpected error: {other}"),
            }
        }
    }
}

#[test]
fn a_record_altered_in_an_earlier_segment_of_an_unsigned_log_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(dir.path(), config(None, 0)).unwrap();
    for n in 0..30 {
        log.append(&decision(n)).unwrap();
    }
    log.close().unwrap();
    assert!(segment_files(dir.path()).len() >= 4);

    // `bob` -> `rob` in seq 3 (second segment or earlier, never the active one), its own hash
    // recomputed, the rest left alone.
    let mut all = lines(dir.path());
    let index = all
        .iter()
        .position(|(_, l)| l.starts_with(r#"{"seq":3,"#))
        .unwrap();
    assert_ne!(all[index].0, all.last().unwrap().0);
    all[index].1 = rehash(&all[index].1.replace(r#""bob""#, r#""rob""#));
    write_back(&all);

    let (seq, message) = refused_at(AuditLog::open_with(dir.path(), config(None, 0)));
    assert_eq!(seq, 4, "{message}");
}

#[test]
fn a_decision_forged_and_rechained_while_the_log_was_closed_is_refused_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = AuditLog::open_with(dir.path(), config(Some(&signer), 5)).unwrap();
    for n in 0..30 {
        log.append(&decision(n)).unwrap();
    }
    log.close().unwrap();
    let head = records(dir.path()).len() as u64;

    // Re-chained through the end: every hash is consistent, only the signed checkpoints are not.
    let forged = records(dir.path())
        .iter()
        .find(|r| r["kind"] == "decision" && r["n"] == 20)
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    forge_and_rechain(dir.path(), forged, |l| l.replace(r#""bob""#, r#""rob""#));

    let (seq, message) = refused_at(AuditLog::open_with(dir.path(), config(Some(&signer), 5)));
    assert!(
        seq > forged && seq <= head,
        "refused at seq {seq}: {message}"
    );
    assert!(message.contains("checkpoint"), "{message}");
}

#[test]
fn a_forged_retention_record_is_refused_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = AuditLog::open_with(dir.path(), config(Some(&signer), 5)).unwrap();
    for n in 0..30 {
        log.append(&decision(n)).unwrap();
    }
    log.close().unwrap();

    // Delete the two oldest segments, then append a keyless retention record explaining it.
    let segments = list_segments(dir.path()).unwrap();
    let removed: Vec<String> = segments[..2]
        .iter()
        .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    for segment in &segments[..2] {
        fs::remove_file(&segment.path).unwrap();
    }
    let all = lines(dir.path());
    let first: Value = serde_json::from_str(&all[0].1).unwrap();
    let (active, last) = all.last().unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    let seq = last["seq"].as_u64().unwrap() + 1;
    let line = rehash(&format!(
        r#"{{"seq":{seq},"prev_hash":"{}","timestamp":"2026-01-01T00:00:00.000Z","kind":"retention","removed_segments":{},"removed_through_seq":{},"removed_through_hash":"{}","hash":"{}"}}"#,
        last["hash"].as_str().unwrap(),
        serde_json::to_string(&removed).unwrap(),
        first["seq"].as_u64().unwrap() - 1,
        first["prev_hash"].as_str().unwrap(),
        "0".repeat(64),
    ));
    let mut text = fs::read_to_string(active).unwrap();
    text.push_str(&line);
    text.push('\n');
    fs::write(active, text).unwrap();

    let (refused, message) = refused_at(AuditLog::open_with(dir.path(), config(Some(&signer), 5)));
    assert!(refused <= seq, "{message}");
}

#[test]
fn opening_a_log_does_not_read_the_records_a_signed_checkpoint_covers() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = AuditLog::open_with(dir.path(), config(Some(&signer), 5)).unwrap();
    for n in 0..30 {
        log.append(&decision(n)).unwrap();
    }
    log.close().unwrap();

    // Damage a record body in the first segment, long covered by later checkpoints: only a
    // reader of the whole log would notice, and opening must not be one.
    let first = first_segment(dir.path());
    let text = fs::read_to_string(&first).unwrap();
    fs::write(&first, text.replacen(r#""bob""#, r#""BOB""#, 1)).unwrap();

    let log = AuditLog::open_with(dir.path(), config(Some(&signer), 5)).unwrap();
    log.append(&decision(99)).unwrap();
    log.close().unwrap();
}

#[test]
fn a_log_cut_short_before_its_last_signed_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let log = AuditLog::open_with(dir.path(), config(Some(&signer), 5)).unwrap();
    for n in 0..30 {
        log.append(&decision(n)).unwrap();
    }
    log.close().unwrap();

    // Drop the last segment whole: what remains is a sound chain, but checkpoints.jsonl vouches
    // for records beyond it.
    let segments = list_segments(dir.path()).unwrap();
    fs::remove_file(&segments.last().unwrap().path).unwrap();
    refused_at(AuditLog::open_with(dir.path(), config(Some(&signer), 5)));
}

#[test]
fn a_log_the_writer_wrote_reopens_with_and_without_a_signer() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    for round in 0..3 {
        let config = config((round != 1).then_some(&signer), 5);
        let log = AuditLog::open_with(dir.path(), config).unwrap();
        for n in 0..12 {
            log.append(&decision(n)).unwrap();
        }
        log.close().unwrap();
    }
    verified(dir.path());
}

#[test]
fn with_a_signer_a_checkpoint_follows_each_retention_record_and_the_log_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let config = || AuditConfig {
        retention: crate::Retention {
            keep_segments: Some(2),
            max_age: None,
        },
        ..config(Some(&signer), 1000)
    };
    for _ in 0..2 {
        let log = AuditLog::open_with(dir.path(), config()).unwrap();
        for n in 0..20 {
            log.append(&decision(n)).unwrap();
        }
        log.close().unwrap();
    }
    let all = records(dir.path());
    let retentions: Vec<usize> = (0..all.len())
        .filter(|&i| all[i]["kind"] == "retention")
        .collect();
    assert!(!retentions.is_empty(), "no retention record remains");
    for i in retentions {
        assert_eq!(all[i + 1]["kind"], "checkpoint", "{}", all[i]);
        assert_eq!(all[i + 1]["checkpoint"]["seq"], all[i]["seq"]);
    }
    let report = verified(dir.path());
    assert!(report.first_seq > 1);
}
