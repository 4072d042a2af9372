//! `mandate audit keygen` and `mandate audit verify --key` as an auditor runs them: a key pair
//! is made once and never overwritten; a log whose checkpoints that key signed verifies, and a
//! log cut short, rewritten wholesale, or signed by someone else is refused, naming the seq.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{mandate, s, stderr, stdout, success};

use std::path::{Path, PathBuf};
use std::process::Output;

use jiff::Timestamp;
use mandate::audit::synthetic::{SyntheticSpec, write_synthetic_log};
use mandate::audit::{CHECKPOINT_FILE, CheckpointSigner, list_segments};
use sha2::{Digest, Sha256};

/// Checks that verification failed (exit code 1) naming a first bad seq; returns stderr.
fn tampered(output: &Output, seq: u64) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    // `tampered: seq N (<file>:<line>): <what>`, the first problem first.
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("tampered: seq {seq} ("))
            || first.starts_with(&format!("tampered: seq {seq}: ")),
        "{err}"
    );
    err
}

/// Runs `mandate audit keygen --out <dir>/key`; returns the signing and public key paths.
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("key");
    let out = success(&mandate(&["audit", "keygen", "--out", s(&key)]));
    let public = dir.join("key.pub");
    assert!(
        out.contains(&format!("public key  {}", s(&public))),
        "{out}"
    );
    let key_id = CheckpointSigner::load(&key).unwrap().key_id().to_owned();
    assert!(out.contains(&format!("key id      {key_id}")), "{out}");
    (key, public)
}

/// A synthetic log of 300 records in 3 segments, closed with a checkpoint record (seq 301)
/// signed by `signer`, and the checkpoint file beside it. Returns the log directory.
fn signed_log(dir: &Path, name: &str, seed: u64, signer: &CheckpointSigner) -> PathBuf {
    let log = dir.join(name);
    let spec = SyntheticSpec {
        records: 300,
        segment_records: 100,
        seed,
        ..SyntheticSpec::default()
    };
    let (seq, hash) = write_synthetic_log(&log, &spec).unwrap();
    // Signed at the record's own timestamp, as the writer does.
    let at: Timestamp = "2026-09-21T12:00:00Z".parse().unwrap();
    let signed = signer.sign(seq, &hash, at);
    let body = serde_json::json!({
        "kind": "checkpoint",
        "checkpoint": signed.checkpoint,
        "signature": signed.signature,
    });
    let body = serde_json::to_string(&body).unwrap();
    let prefix = format!(
        "{{\"seq\":{},\"prev_hash\":\"{hash}\",\"timestamp\":\"2026-09-21T12:00:00.000Z\",{}",
        seq + 1,
        &body[1..body.len() - 1]
    );
    let own = hex::encode(Sha256::digest(prefix.as_bytes()));
    let last = list_segments(&log).unwrap().pop().unwrap().path;
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(format!("{prefix},\"hash\":\"{own}\"}}\n").as_bytes());
    std::fs::write(&last, bytes).unwrap();
    let mut line = serde_json::to_value(&signed).unwrap();
    line["record_seq"] = (seq + 1).into();
    std::fs::write(log.join(CHECKPOINT_FILE), format!("{line}\n")).unwrap();
    log
}

#[test]
fn keygen_makes_a_key_pair_once_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(text.starts_with("mandate-ed25519-public:"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    }

    let again = mandate(&["audit", "keygen", "--out", s(&key)]);
    assert_eq!(again.status.code(), Some(2));
    let err = stderr(&again);
    assert!(
        err.starts_with(&format!(
            "error: `{}` already exists: refusing to overwrite",
            s(&key)
        )),
        "{err}"
    );
    // The public half alone is not overwritten either.
    std::fs::remove_file(&key).unwrap();
    let again = mandate(&["audit", "keygen", "--out", s(&key)]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(!key.exists());
    assert_eq!(std::fs::read_to_string(&public).unwrap(), text);
}

#[test]
fn verify_with_the_key_checks_the_checkpoints_and_the_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    let key_id = CheckpointSigner::load(&key).unwrap().key_id().to_owned();

    let out = success(&mandate(&["audit", "verify", "--key", s(&public), s(&log)]));
    assert!(
        out.starts_with("ok: 301 records, chain intact; head seq 301"),
        "{out}"
    );
    assert!(out.contains("seqs 1 to 301 in 3 segments"), "{out}");
    assert!(
        out.contains(&format!(
            "1 checkpoints in the log, signatures verified with key {key_id}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "checkpoint file `{}`: 1 signed checkpoints",
            s(&log.join(CHECKPOINT_FILE))
        )),
        "{out}"
    );

    // Without the key the signatures are not checked, and the output says so.
    let out = success(&mandate(&["audit", "verify", s(&log)]));
    assert!(
        out.contains("their signatures were not checked (pass --key)"),
        "{out}"
    );
}

#[test]
fn verify_with_the_key_catches_a_log_cut_short_after_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    // The newest segment deleted: what is left is a valid chain, seqs 1 to 200.
    let last = list_segments(&log).unwrap().pop().unwrap().path;
    std::fs::remove_file(last).unwrap();
    success(&mandate(&["audit", "verify", s(&log)]));

    let out = mandate(&["audit", "verify", "--key", s(&public), s(&log)]);
    let err = tampered(&out, 201);
    assert!(err.contains("ends at seq 200 but checkpoint file"), "{err}");
    assert!(
        err.contains("vouches for seq 301: records were removed from the end"),
        "{err}"
    );
}

#[test]
fn verify_with_a_shipped_checkpoint_file_catches_a_log_rewritten_wholesale() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let signer = CheckpointSigner::load(&key).unwrap();
    let original = signed_log(dir.path(), "original", 1, &signer);
    let shipped = dir.path().join("shipped.jsonl");
    std::fs::copy(original.join(CHECKPOINT_FILE), &shipped).unwrap();
    // Another log of the same length, every hash valid, its own checkpoints stripped.
    let forged = dir.path().join("forged");
    write_synthetic_log(
        &forged,
        &SyntheticSpec {
            records: 300,
            segment_records: 100,
            seed: 2,
            ..SyntheticSpec::default()
        },
    )
    .unwrap();
    success(&mandate(&[
        "audit",
        "verify",
        "--key",
        s(&public),
        "--allow-unsigned-tail",
        s(&forged),
    ]));

    let out = mandate(&[
        "audit",
        "verify",
        "--key",
        s(&public),
        "--checkpoints",
        s(&shipped),
        s(&forged),
    ]);
    let err = tampered(&out, 300);
    assert!(err.contains("the record at seq 300 has hash"), "{err}");
    assert!(
        err.contains("the log was rewritten from seq 300 or earlier"),
        "{err}"
    );
}

#[test]
fn verify_refuses_checkpoints_signed_with_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = keygen(other.path());

    let out = mandate(&["audit", "verify", "--key", s(&other_public), s(&log)]);
    // The checkpoint file is checked first and names its line.
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("tampered: seq - ("), "{err}");
    assert!(
        err.contains("line 1: checkpoint at seq 300 was signed by key"),
        "{err}"
    );

    // Without the file, the checkpoint record in the log is refused, naming its seq.
    std::fs::remove_file(log.join(CHECKPOINT_FILE)).unwrap();
    let out = mandate(&["audit", "verify", "--key", s(&other_public), s(&log)]);
    let err = tampered(&out, 301);
    assert!(
        err.contains(":101): checkpoint at seq 300 was signed by key"),
        "{err}"
    );
}

#[test]
fn verify_needs_the_key_for_a_checkpoint_file_and_a_readable_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    let file = log.join(CHECKPOINT_FILE);

    let out = mandate(&["audit", "verify", "--checkpoints", s(&file), s(&log)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: --checkpoints"), "{err}");
    assert!(err.contains("needs --key"), "{err}");

    // The signing key is not a public key.
    let out = mandate(&["audit", "verify", "--key", s(&key), s(&log)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("is not a mandate public key"), "{err}");
}

/// A log that is not there cannot be read: exit 2, as for any unreadable input, not 1, which
/// says the log was tampered with.
#[test]
fn verify_of_a_missing_log_exits_2_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-log");
    let out = mandate(&["audit", "verify", s(&missing)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: cannot read"), "{err}");
    assert!(err.contains(s(&missing)), "{err}");
    assert!(!err.contains("tampered"), "{err}");
}

/// Appends a record with `body` to the last segment of `log`, linked and hashed as the writer
/// would, as anyone who can write the files can.
fn append_record(log: &Path, body: &serde_json::Value) {
    let last = list_segments(log).unwrap().pop().unwrap().path;
    let mut bytes = std::fs::read(&last).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let head: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let body = serde_json::to_string(body).unwrap();
    let prefix = format!(
        "{{\"seq\":{},\"prev_hash\":\"{}\",\"timestamp\":\"2026-09-21T12:00:01.000Z\",{}",
        head["seq"].as_u64().unwrap() + 1,
        head["hash"].as_str().unwrap(),
        &body[1..body.len() - 1]
    );
    let own = hex::encode(Sha256::digest(prefix.as_bytes()));
    bytes.extend_from_slice(format!("{prefix},\"hash\":\"{own}\"}}\n").as_bytes());
    std::fs::write(&last, bytes).unwrap();
}

/// Issue 12 item 1: the oldest segment deleted and a keyless `retention` record appended to
/// excuse it passed `verify --key --checkpoints`; only a retention record that a signed
/// checkpoint covers excuses a missing start.
#[test]
fn verify_with_the_key_refuses_a_forged_retention_record() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    let shipped = dir.path().join("shipped.jsonl");
    std::fs::copy(log.join(CHECKPOINT_FILE), &shipped).unwrap();

    let segments = list_segments(&log).unwrap();
    let second = std::fs::read_to_string(&segments[1].path).unwrap();
    let first_kept: serde_json::Value =
        serde_json::from_str(second.lines().next().unwrap()).unwrap();
    std::fs::remove_file(&segments[0].path).unwrap();
    append_record(
        &log,
        &serde_json::json!({
            "kind": "retention",
            "removed_segments": [segments[0].path.file_name().unwrap().to_str().unwrap()],
            "removed_through_seq": segments[1].first_seq - 1,
            "removed_through_hash": first_kept["prev_hash"],
        }),
    );

    let out = mandate(&[
        "audit",
        "verify",
        "--key",
        s(&public),
        "--checkpoints",
        s(&shipped),
        s(&log),
    ]);
    let err = tampered(&out, 1);
    assert!(
        err.contains("is not covered by a signed checkpoint"),
        "{err}"
    );

    // Without a key it cannot be checked, and the summary says so.
    let out = success(&mandate(&["audit", "verify", s(&log)]));
    assert!(
        out.contains(
            "retention record at seq 302 is not covered by a checked signature: verify with --key"
        ),
        "{out}"
    );
}

/// Issue 12 item 3: with a key, a log with no checkpoint at all (a re-chained edit with every
/// checkpoint stripped and the checkpoint file deleted) passed with a note. Records no signed
/// checkpoint covers are a failure unless the user accepts an unsigned tail, and the summary
/// says how much is covered.
#[test]
fn verify_with_the_key_refuses_records_no_signed_checkpoint_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let unsigned = dir.path().join("unsigned");
    let spec = SyntheticSpec {
        records: 300,
        segment_records: 100,
        ..SyntheticSpec::default()
    };
    write_synthetic_log(&unsigned, &spec).unwrap();
    let out = mandate(&["audit", "verify", "--key", s(&public), s(&unsigned)]);
    let err = tampered(&out, 1);
    assert!(
        err.contains("has 300 records after the start of the log that no signed checkpoint covers"),
        "{err}"
    );
    assert!(err.contains("--allow-unsigned-tail"), "{err}");
    let out = success(&mandate(&[
        "audit",
        "verify",
        "--key",
        s(&public),
        "--allow-unsigned-tail",
        s(&unsigned),
    ]));
    assert!(
        out.contains("signed: no record of 300 is covered; unsigned tail: 300 records (allowed by --allow-unsigned-tail)"),
        "{out}"
    );

    // A signed log with records appended after its last checkpoint.
    let log = signed_log(dir.path(), "log", 1, &CheckpointSigner::load(&key).unwrap());
    success(&mandate(&["audit", "verify", "--key", s(&public), s(&log)]));
    for n in 0..2 {
        append_record(&log, &serde_json::json!({"kind": "decision", "n": n}));
    }
    let out = mandate(&["audit", "verify", "--key", s(&public), s(&log)]);
    tampered(&out, 302);
    let out = success(&mandate(&[
        "audit",
        "verify",
        "--key",
        s(&public),
        "--allow-unsigned-tail",
        s(&log),
    ]));
    assert!(
        out.contains("signed: seq 1..=301 of 303 covered by 1 checkpoint; unsigned tail: 2 records (allowed by --allow-unsigned-tail)"),
        "{out}"
    );
}

/// Issue 12 item 5: `verify` lists every problem, one line each, the first first, and
/// `--format json` prints them as one object; a log it cannot read at all exits 2.
#[test]
fn verify_lists_every_problem_and_prints_them_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let spec = SyntheticSpec {
        records: 60,
        segment_records: 25,
        ..SyntheticSpec::default()
    };
    write_synthetic_log(&log, &spec).unwrap();
    // Seq 4 and seq 55 (line 5 of the third segment, which starts at seq 51), far apart,
    // each with one byte changed.
    let segments = list_segments(&log).unwrap();
    for (segment, line) in [(&segments[0].path, 3), (&segments[2].path, 4)] {
        let text = std::fs::read_to_string(segment).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[line] = lines[line].replacen("\"seq\"", " \"seq\"", 1);
        std::fs::write(segment, lines.join("\n") + "\n").unwrap();
    }

    let out = mandate(&["audit", "verify", s(&log)]);
    let err = tampered(&out, 4);
    let problems: Vec<&str> = err.lines().collect();
    assert_eq!(problems.len(), 2, "{err}");
    let second = format!("tampered: seq 55 ({}:5): ", s(&segments[2].path));
    assert!(problems[1].starts_with(&second), "{err}");

    let out = mandate(&["audit", "verify", "--format", "json", s(&log)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_seq"], 4);
    let seqs: Vec<u64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 55], "{report}");
    assert_eq!(report["problems"][1]["line"], 5);
    assert_eq!(report["problems"][1]["kind"], "hash_mismatch");
    assert_eq!(report["problems"][1]["file"], s(&segments[2].path));
    assert_eq!(report["head_seq"], 60);
    assert!(report["signed_through_seq"].is_null(), "{report}");

    let fresh = dir.path().join("fresh");
    write_synthetic_log(&fresh, &spec).unwrap();
    let out = mandate(&["audit", "verify", "--format", "json", s(&fresh)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert!(report["first_bad_seq"].is_null());
    assert_eq!(
        (report["first_seq"].as_u64(), report["records"].as_u64()),
        (Some(1), Some(60))
    );

    let out = mandate(&[
        "audit",
        "verify",
        "--format",
        "json",
        s(&dir.path().join("none")),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"].as_str().unwrap().contains("cannot read"),
        "{report}"
    );
}
