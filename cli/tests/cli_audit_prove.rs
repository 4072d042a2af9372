//! `mandate audit prove` on a log written by a real guard: a match exits 0,
//! another value exits 1, and what cannot be checked exits 2 naming why.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{mandate, policies_dir, s, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mandate::audit::{AuditLog, RecordReader};
use mandate::pipeline::{Guard, RedactionKey, SensitivePaths, Session, commitment};
use mandate::policy::Policies;
use mandate::tools::{Workspace, example_registry};
use serde_json::{Value, json};

const SECRET: &str = "the board meets on Tuesday";

/// A log in `dir` whose record 4 is the decision of a `send_email` call
/// (held for a reviewer, denied: no reviewer is configured) with its body
/// redacted under the salt key saved at `dir/salt.key`. Returns the log.
fn write_log(dir: &Path) -> PathBuf {
    let key = RedactionKey::generate().unwrap();
    key.save(&dir.join("salt.key")).unwrap();
    let log = dir.join("audit.jsonl");
    let guard = Guard::builder(
        Policies::load_dir(&policies_dir()).unwrap(),
        AuditLog::open(&log).unwrap(),
    )
    .tools(example_registry(&Workspace::new(dir)).unwrap())
    .redaction_key(key)
    .build()
    .unwrap();
    let session = Session::from_file(&policies_dir().join("session.json")).unwrap();
    let arguments = serde_json::json!({"to": "bob@example.com", "subject": "s", "body": SECRET});
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let session = guard.start_session(session, None).await.unwrap();
        let result = session.call("send_email", &arguments.to_string()).await;
        assert!(result.is_err(), "{result:?}");
    });
    let records: Vec<Vec<u8>> = RecordReader::open(&log)
        .unwrap()
        .map(|r| r.unwrap().bytes)
        .collect();
    let decision = String::from_utf8(records[3].clone()).unwrap();
    assert!(decision.starts_with(r#"{"seq":4,"#), "{decision}");
    assert!(decision.contains(r#""kind":"decision""#), "{decision}");
    assert!(
        !records
            .concat()
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );
    log
}

fn prove(log: &Path, seq: &str, path: &str, value: &str, key: &Path) -> Output {
    mandate(&[
        "audit",
        "prove",
        s(log),
        "--seq",
        seq,
        "--path",
        path,
        "--value",
        value,
        "--salt-key",
        s(key),
    ])
}

/// Checks exit code 2 and a lowercase `error: ` message; returns it.
fn error(output: &Output) -> String {
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{}{err}", stdout(output));
    let first = err
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(!first.starts_with(char::is_uppercase), "{err}");
    err
}

#[test]
fn prove_matches_the_original_body_and_not_another() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let key = dir.path().join("salt.key");
    let value = serde_json::to_string(SECRET).unwrap();

    let out = prove(&log, "4", "arguments.body", &value, &key);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("match: "), "{text}");
    assert!(
        text.contains("record 4") && text.contains("arguments.body"),
        "{text}"
    );

    let out = prove(
        &log,
        "4",
        "arguments.body",
        r#""the board meets on Monday""#,
        &key,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).starts_with("no match: "), "{}", stdout(&out));
}

#[test]
fn prove_says_what_is_wrong_with_the_key_seq_path_or_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let key = dir.path().join("salt.key");
    let value = serde_json::to_string(SECRET).unwrap();

    let other = dir.path().join("other.key");
    RedactionKey::generate().unwrap().save(&other).unwrap();
    let err = error(&prove(&log, "4", "arguments.body", &value, &other));
    assert!(err.contains("was redacted with salt key"), "{err}");

    let not_a_key = dir.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let err = error(&prove(&log, "4", "arguments.body", &value, &not_a_key));
    assert!(err.contains("is not a mandate salt key"), "{err}");

    let err = error(&prove(&log, "99", "arguments.body", &value, &key));
    assert!(err.contains("seq 99 is not in audit log"), "{err}");

    let err = error(&prove(
        &log,
        "4",
        "arguments.to",
        r#""bob@example.com""#,
        &key,
    ));
    assert!(
        err.contains("`arguments.to` in record 4 is not redacted"),
        "{err}"
    );
    assert!(err.contains("`arguments.body`"), "{err}");

    let err = error(&prove(&log, "4", "arguments.body", SECRET, &key));
    assert!(err.contains("`--value` is not valid json"), "{err}");
    assert!(err.contains("needs its quotes"), "{err}");
}

#[test]
fn a_negative_number_is_taken_as_the_value_not_as_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let key = dir.path().join("salt.key");
    let out = prove(&log, "4", "arguments.body", "-12", &key);
    // The body was a string: -12 is a value that does not match, not an
    // unknown option `-1`.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).starts_with("no match: "), "{out:?}");
}

/// A log at `dir/audit.jsonl` whose record 2 is a decision of call `sess:1`
/// whose `body` holds `commitment` (what redaction left there), and the
/// salt key saved at `dir/salt.key`.
fn log_with_body(dir: &Path, key: &RedactionKey, commitment: &Value) -> PathBuf {
    key.save(&dir.join("salt.key")).unwrap();
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let seq = log
        .append(&json!({
            "kind": "decision",
            "call_id": "sess:1",
            "action": {"type": "tool_call", "tool": "send_email",
                       "arguments": {"to": "bob@example.com", "body": commitment}},
        }))
        .unwrap()
        .seq;
    assert_eq!(seq, 2);
    log.close().unwrap();
    path
}

/// Runs the second verifier's `prove` (Python, standard library only) on a
/// commitment object; `None` when `python3` cannot be run here.
fn python_prove(key: &Path, value: &str, commitment: &Value) -> Option<Output> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED the second verifier: `python3` cannot be run");
        return None;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifiers/python/mandate_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["prove", "--salt-key", s(key), "--call-id", "sess:1"])
        .args(["--path", "arguments.body", "--value", value])
        .args(["--commitment", &commitment.to_string()])
        .output()
        .unwrap();
    Some(out)
}

#[test]
fn a_value_with_numbers_and_non_bmp_keys_is_proven_by_the_host_and_by_the_second_verifier() {
    // Numbers whose RFC 8785 form differs from a naive one (1e20 in full,
    // 1e21 with an exponent, -0 as 0, a double that needs 17 digits, an
    // integer beyond 2^53), and keys whose UTF-16 order differs from their
    // UTF-8 order (U+1F600 sorts before U+FB33 in UTF-16 only).
    let text = r#"{"\ud83d\ude00": [1e20, 1e21, 0.1, -0.0, 333333333.33333329],
                   "\ufb33": {"b": 1, "a": 9007199254740993}, "amount": 12.50, "z": "\u007f"}"#;
    let value: Value = serde_json::from_str(text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = RedactionKey::generate().unwrap();
    // The guard's own redaction writes the commitment object.
    let redacted = SensitivePaths::parse(&["body".into()]).unwrap().redact(
        &json!({"body": value}),
        &key,
        "sess:1",
    );
    let commitment = redacted["body"].clone();
    assert!(
        commitment["nonce"].as_str().is_some_and(|n| n.len() == 32),
        "{commitment}"
    );
    let log = log_with_body(dir.path(), &key, &commitment);
    let key_file = dir.path().join("salt.key");

    let out = prove(&log, "2", "arguments.body", text, &key_file);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("(v2 commitment)"), "{}", stdout(&out));
    let other = text.replace("12.50", "12.51");
    assert_eq!(
        prove(&log, "2", "arguments.body", &other, &key_file)
            .status
            .code(),
        Some(1)
    );

    let Some(out) = python_prove(&key_file, text, &commitment) else {
        return;
    };
    assert_eq!(
        out.status.code(),
        Some(0),
        "the second verifier disagrees: {out:?}"
    );
    let out = python_prove(&key_file, &other, &commitment).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_v1_commitment_without_a_nonce_is_still_proven_the_old_way() {
    let dir = tempfile::tempdir().unwrap();
    let key = RedactionKey::generate().unwrap();
    let value = json!({"b": [1, 2.5], "a": "x"});
    let v1 = json!({
        "redacted": commitment(&key, "sess:1", "arguments.body", &value),
        "key_id": key.key_id(),
    });
    let log = log_with_body(dir.path(), &key, &v1);
    let key_file = dir.path().join("salt.key");

    let out = prove(&log, "2", "arguments.body", &value.to_string(), &key_file);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("(v1 commitment)"), "{}", stdout(&out));
    let out = prove(
        &log,
        "2",
        "arguments.body",
        r#"{"b":[1,2.5],"a":"y"}"#,
        &key_file,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A damaged nonce is not taken for v1: the record is refused as malformed.
    let mut damaged = v1.clone();
    damaged["nonce"] = json!("not hex");
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_body(dir.path(), &key, &damaged);
    let err = error(&prove(
        &log,
        "2",
        "arguments.body",
        &value.to_string(),
        &dir.path().join("salt.key"),
    ));
    assert!(err.contains("malformed commitment"), "{err}");
}
