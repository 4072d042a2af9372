//! `verify_file` on a log written by a real run, intact and tampered with.

mod common;

use std::path::PathBuf;

use common::{Env, email_call, read_call};
use mandate::audit::{ChainProblem, VerifyError, verify_file};
use serde_json::json;
use tokio::sync::OnceCell;

/// The records of the run: log_start, session_start, then the allowed read
/// (decision 3, outcome 4), the denied read (5), the email held (its
/// `approval_requested` 6, its decision 7), the unknown tool (8), and
/// session_end (9).
const RECORDS: u64 = 9;

static LOG: OnceCell<Vec<u8>> = OnceCell::const_new();

/// The bytes of the log of one real run, made once per test binary.
async fn real_log() -> &'static [u8] {
    LOG.get_or_init(|| async {
        let env = Env::example();
        let results = env
            .script(json!([
                read_call("doc_88pk3r"),
                read_call("doc_4hq2zt"),
                email_call("hi"),
                {"tool": "format_disk"},
            ]))
            .await;
        assert!(results[0].get("ok").is_some(), "{results:?}");
        assert_eq!(
            common::kinds(&env.records()),
            [
                "log_start",
                "session_start",
                "decision",
                "outcome",
                "decision",
                "approval_requested",
                "decision",
                "decision",
                "session_end"
            ]
        );
        common::log_bytes(&env.audit_path)
    })
    .await
}

/// The log's lines, each with its newline.
fn lines(log: &[u8]) -> Vec<Vec<u8>> {
    log.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Writes `bytes` to a fresh file and verifies it.
fn verify_bytes(
    bytes: &[u8],
) -> (
    tempfile::TempDir,
    PathBuf,
    Result<mandate::audit::VerifyReport, VerifyError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let result = verify_file(&path);
    (dir, path, result)
}

/// Verifies tampered `bytes` and returns the error, checking that it names
/// the file and the seq it reports.
fn broken(bytes: &[u8]) -> VerifyError {
    let (_dir, path, result) = verify_bytes(bytes);
    let error = result.expect_err("a tampered log must not verify");
    let message = error.to_string();
    let seq = error.first_bad_seq().unwrap();
    assert!(message.contains(&format!("(seq {seq})")), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    error
}

fn problem(error: &VerifyError) -> &ChainProblem {
    match error {
        VerifyError::Broken(b) => &b.problem,
        other => panic!("expected a broken chain, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_of_a_real_run_verifies_with_its_record_count() {
    let log = real_log().await;
    let (_dir, _path, result) = verify_bytes(log);
    let report = result.unwrap();
    assert_eq!(report.records, RECORDS);
    assert_eq!(report.head_seq, RECORDS);
    assert_eq!(lines(log).len() as u64, RECORDS);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_changed_byte_names_the_record_it_is_in() {
    let mut lines = lines(real_log().await);
    let line = &mut lines[4]; // seq 5
    let middle = line.len() / 2;
    assert!(
        middle < line.len() - 80,
        "the middle is in the body, not the hash"
    );
    line[middle] = if line[middle] == b'x' { b'y' } else { b'x' };
    let error = broken(&lines.concat());
    assert_eq!(error.first_bad_seq(), Some(5));
    assert_eq!(error.line(), Some(5));
    assert_eq!(problem(&error), &ChainProblem::HashMismatch);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_line_names_the_seq_of_the_deleted_record() {
    let mut lines = lines(real_log().await);
    lines.remove(4); // seq 5
    let error = broken(&lines.concat());
    assert_eq!(error.first_bad_seq(), Some(5));
    assert_eq!(
        problem(&error),
        &ChainProblem::SeqOutOfOrder {
            expected: 5,
            found: 6
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_swapped_lines_name_the_first_swapped_seq() {
    let mut lines = lines(real_log().await);
    lines.swap(3, 4); // seq 4 and 5
    let error = broken(&lines.concat());
    assert_eq!(error.first_bad_seq(), Some(4));
    assert_eq!(
        problem(&error),
        &ChainProblem::SeqOutOfOrder {
            expected: 4,
            found: 5
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tail_truncated_mid_record_names_the_last_seq() {
    let log = real_log().await;
    let last = lines(log).last().unwrap().len();
    let cut = &log[..log.len() - last / 2];
    let error = broken(cut);
    assert_eq!(error.first_bad_seq(), Some(RECORDS));
    assert_eq!(problem(&error), &ChainProblem::TornTail);
}

/// A call whose decision record would be longer than any reader accepts fails closed: the
/// writer refuses the record with a typed error, nothing of it is written, the agent is told
/// the audit log refused, and the log still verifies.
#[tokio::test]
async fn a_call_whose_record_would_exceed_the_record_limit_fails_closed_and_the_log_verifies() {
    use mandate::audit::MAX_RECORD_BYTES;
    use mandate::pipeline::ToolCallError;

    let env = Env::example();
    let mut session = common::session();
    // The operator's session data (in the session's records and in every decision's
    // request context) plus arguments under their own limit: together over the record limit.
    session.scopes.push("s".repeat(5 * 1024 * 1024));
    let handle = env.guard.start_session(session, None).await.unwrap();
    let head = env.guard.audit().head();
    let arguments =
        json!({"document_id": "doc_88pk3r", "summary": "d".repeat(7 * 1024 * 1024)}).to_string();

    let error = handle
        .call("write_summary", &arguments)
        .await
        .expect_err("the call ran though its record could not be written");

    let ToolCallError::AuditUnavailable(message) = &error else {
        panic!("not an audit error: {}", &error.to_string()[..200]);
    };
    assert!(
        message.contains(&MAX_RECORD_BYTES.to_string()),
        "the error does not name the limit: {message}"
    );
    assert_eq!(env.guard.audit().head(), head, "a record was written");
    let log = common::log_bytes(&env.audit_path);
    assert!(
        log.split(|&b| b == b'\n')
            .all(|line| line.len() < MAX_RECORD_BYTES),
        "a record over the limit is in the log"
    );
    env.assert_verifies(head.0);
}
