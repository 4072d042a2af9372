//! `mandate audit query` and `mandate audit reindex` as a user runs them: the
//! table and JSON answers agree with the index, bad input is named with what
//! was expected, and a broken index is one `reindex` away from working.

// Tests may unwrap; clippy counts only `#[test]` functions as tests, not
// the helpers of an integration test file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{mandate, s, stderr, stdout, success};

use std::path::Path;
use std::process::Output;

use mandate::audit::synthetic::{SyntheticSpec, write_synthetic_log};
use mandate::audit::{AuditIndex, CallEffect, CallQuery, INDEX_FILE};
use serde_json::Value;

/// Checks that the run failed with exit code 2 and an `error: ` message that
/// starts in lowercase; returns the message.
fn failure(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    let first = err
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("no `error: ` prefix: {err}"));
    assert!(!first.starts_with(char::is_uppercase), "{err}");
    err
}

/// A generated log of `records` records (12 users, 3 agents) in a fresh directory.
fn log(records: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_log(dir.path(), &spec(records)).unwrap();
    dir
}

fn spec(records: u64) -> SyntheticSpec {
    SyntheticSpec {
        records,
        seed: 9,
        users: 12,
        agents: 3,
        segment_records: 400,
        ..SyntheticSpec::default()
    }
}

/// What the library says about `query` on `log`.
fn count(log: &Path, query: &CallQuery) -> u64 {
    let mut index = AuditIndex::open(log).unwrap();
    index.catch_up().unwrap();
    index.count(query).unwrap()
}

#[test]
fn query_prints_aligned_columns_and_a_count_line() {
    let log = log(1500);
    let out = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--user",
        "user-3",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    let expected = count(
        log.path(),
        &CallQuery {
            user: Some("user-3".into()),
            ..CallQuery::default()
        },
    );
    assert!(expected > 1);
    assert_eq!(lines.len() as u64, expected + 2, "{out}");
    assert_eq!(lines.last(), Some(&format!("{expected} calls").as_str()));

    let header = lines[0];
    let columns = [
        "time", "seq", "session", "user", "agent", "tool", "resource", "decision", "approval",
        "status", "latency",
    ];
    let starts: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .find(&format!("{c} "))
                .or_else(|| header.rfind(c))
                .unwrap()
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{header}");
    let user_column = starts[3];
    for row in &lines[1..lines.len() - 1] {
        let chars: Vec<char> = row.chars().collect();
        for &start in &starts[1..] {
            assert_eq!(chars[start - 1], ' ', "column at {start} in {row:?}");
            assert_ne!(chars[start], ' ', "column at {start} in {row:?}");
        }
        let user: String = chars[user_column..]
            .iter()
            .take_while(|c| **c != ' ')
            .collect();
        assert_eq!(user, "user-3", "{row}");
    }
}

#[test]
fn query_json_prints_one_object_per_call_with_every_column() {
    let log = log(1500);
    let out = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--tool",
        "send_email",
        "--decision",
        "deny",
        "--format",
        "json",
    ]));
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = count(
        log.path(),
        &CallQuery {
            tool: Some("send_email".into()),
            effect: Some(CallEffect::Deny),
            ..CallQuery::default()
        },
    );
    assert!(expected > 1);
    assert_eq!(rows.len() as u64, expected);
    let mut previous = 0;
    for row in &rows {
        assert_eq!(row.as_object().unwrap().len(), 21, "{row}");
        assert_eq!(row["tool"], "send_email");
        assert_eq!(row["effect"], "deny");
        assert_eq!(row["status"], Value::Null);
        let seq = row["decision_seq"].as_u64().unwrap();
        assert!(seq > previous, "rows are in log order");
        previous = seq;
    }
}

#[test]
fn limit_cuts_the_answer_and_says_how_many_there_are() {
    let log = log(1500);
    let all = count(log.path(), &CallQuery::default());
    let out = success(&mandate(&["audit", "query", s(log.path()), "--limit", "2"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[3],
        format!("2 of {all} calls shown; raise --limit to see more")
    );

    let json = mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--limit",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(success(&json).lines().count(), 2);
    assert!(
        stderr(&json).contains(&format!("2 of {all} calls")),
        "{}",
        stderr(&json)
    );
}

#[test]
fn query_takes_in_records_appended_since_the_last_query() {
    let log = log(600);
    let before = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--limit",
        "100000",
    ]));
    write_synthetic_log(log.path(), &spec(1800)).unwrap();
    let after = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--limit",
        "100000",
    ]));
    let calls = |out: &str| out.lines().count() - 2;
    assert!(calls(&after) > calls(&before));
    assert_eq!(
        calls(&after) as u64,
        count(log.path(), &CallQuery::default())
    );
}

#[test]
fn a_bad_time_is_named_with_the_format_expected() {
    let log = log(50);
    for flag in ["--since", "--until"] {
        let err = failure(&mandate(&[
            "audit",
            "query",
            s(log.path()),
            flag,
            "yesterday",
        ]));
        assert!(
            err.contains(&format!("invalid {flag} `yesterday`")),
            "{err}"
        );
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(err.contains("2026-01-31T09:00:00Z"), "{err}");
    }
    // A time without an offset is not RFC 3339 either.
    let err = failure(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--since",
        "2026-01-31T09:00:00",
    ]));
    assert!(err.contains("invalid --since"), "{err}");
    // Input is checked before the index is touched.
    assert!(!log.path().join(INDEX_FILE).exists());

    let err = failure(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--since",
        "2026-02-01T00:00:00Z",
        "--until",
        "2026-01-01T00:00:00Z",
    ]));
    assert!(
        err.contains("--since") && err.contains("not before --until"),
        "{err}"
    );
}

#[test]
fn a_log_that_does_not_exist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-log");
    let err = failure(&mandate(&["audit", "query", s(&missing)]));
    assert!(err.contains("cannot read audit log"), "{err}");
    assert!(err.contains(s(&missing)), "{err}");
    let err = failure(&mandate(&["audit", "reindex", s(&missing)]));
    assert!(err.contains(s(&missing)), "{err}");
}

#[test]
fn a_directory_that_is_not_a_log_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let err = failure(&mandate(&["audit", "query", s(dir.path())]));
    assert!(err.contains("is not an audit log directory"), "{err}");
    assert!(err.contains("segment-"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn reindex_rebuilds_a_broken_index_from_the_log() {
    let log = log(800);
    let before = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--agent",
        "agent-1",
    ]));
    let index = log.path().join(INDEX_FILE);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", s(&index)));
    }
    std::fs::write(
        &index,
        b"this is not a database, but it is in the way".repeat(200),
    )
    .unwrap();

    let err = failure(&mandate(&["audit", "query", s(log.path())]));
    assert!(err.contains(s(&index)), "{err}");
    assert!(err.contains("mandate audit reindex"), "{err}");

    let out = success(&mandate(&["audit", "reindex", s(log.path())]));
    assert!(out.starts_with("indexed 800 records ("), "{out}");
    assert!(out.contains(s(&index)), "{out}");
    let after = success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--agent",
        "agent-1",
    ]));
    assert_eq!(after, before);
}

/// Rewrites, in place and at the same length, the user of the first decision record of
/// `segment` that names `from`; returns that record's seq.
fn edit_user_in_place(segment: &Path, from: &str, to: &str) -> u64 {
    assert_eq!(from.len(), to.len());
    let bytes = std::fs::read(segment).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let needle = format!("\"user\":{{\"id\":\"{from}\"");
    let at = text
        .find(&needle)
        .unwrap_or_else(|| panic!("no {needle} in {segment:?}"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line: Value = serde_json::from_str(text[line_start..].lines().next().unwrap()).unwrap();
    let edited = format!(
        "{}{}{}",
        &text[..at],
        needle.replace(from, to),
        &text[at + needle.len()..]
    );
    assert_eq!(edited.len(), text.len());
    // Written through the same file, as an editor with `:w` in place would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
        .unwrap();
    line["seq"].as_u64().unwrap()
}

#[test]
fn a_query_refuses_to_answer_from_an_index_of_records_edited_in_place_since() {
    let log = log(1500);
    let first = log.path().join("segment-00000000000000000001.jsonl");
    success(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--user",
        "user-3",
    ]));
    let seq = edit_user_in_place(&first, "user-3", "user-4");

    let err = failure(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--user",
        "user-4",
    ]));
    assert!(err.contains("segment-00000000000000000001.jsonl"), "{err}");
    assert!(err.contains(&format!("seq {seq}")), "{err}");
    assert!(err.contains("changed"), "{err}");
    assert!(err.contains("mandate audit verify"), "{err}");
}

#[test]
fn an_edit_in_the_segment_being_appended_to_is_noticed_too() {
    let log = log(1500);
    let segments = mandate::audit::list_segments(log.path()).unwrap();
    let last = &segments.last().unwrap().path;
    success(&mandate(&["audit", "query", s(log.path())]));
    let seq = edit_user_in_place(last, "user-5", "user-6");
    let err = failure(&mandate(&[
        "audit",
        "query",
        s(log.path()),
        "--user",
        "user-6",
    ]));
    assert!(err.contains(&format!("seq {seq}")), "{err}");
    assert!(err.contains("mandate audit verify"), "{err}");
}

#[test]
fn reindex_of_a_log_edited_in_place_refuses_with_the_record_that_no_longer_verifies() {
    let log = log(1500);
    let first = log.path().join("segment-00000000000000000001.jsonl");
    success(&mandate(&["audit", "query", s(log.path())]));
    let seq = edit_user_in_place(&first, "user-3", "user-4");

    let err = failure(&mandate(&["audit", "reindex", s(log.path())]));
    assert!(err.contains("segment-00000000000000000001.jsonl"), "{err}");
    assert!(err.contains(&format!("seq {seq}")), "{err}");
    assert!(err.contains("hash does not match"), "{err}");
    assert!(err.contains("mandate audit verify"), "{err}");
    assert!(!err.to_lowercase().contains("sqlite"), "{err}");
}
