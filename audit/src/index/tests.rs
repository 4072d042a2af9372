//! Unit tests of the index on small hand-written logs. The comparison with a
//! brute-force scan of generated logs is in `tests/tests/audit_query.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::chain::{BodyFields, GENESIS_HASH, encode_line};
use crate::segments::{list_segments, segment_name};

/// A log written record by record, with control over every byte.
struct TestLog {
    dir: tempfile::TempDir,
    seq: u64,
    prev: String,
    segment: PathBuf,
    time: Timestamp,
}

impl TestLog {
    /// A log holding its `log_start` record.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join(segment_name(1));
        std::fs::write(&segment, b"").unwrap();
        let mut log = TestLog {
            dir,
            seq: 0,
            prev: GENESIS_HASH.to_owned(),
            segment,
            time: Timestamp::from_second(1_790_000_000).unwrap(),
        };
        log.append(json!({"kind": "log_start", "format": "mandate-audit/1"}));
        log
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The next record's line, newline included, without writing it.
    fn next_line(&self, body: &Value) -> (Vec<u8>, String) {
        let line = encode_line(
            self.seq + 1,
            &self.prev,
            self.time,
            &BodyFields::new(body).unwrap(),
        );
        (line.bytes, line.hash)
    }

    /// Appends a record; returns its seq.
    fn append(&mut self, body: Value) -> u64 {
        let (bytes, hash) = self.next_line(&body);
        self.write_raw(&bytes);
        self.advance(hash);
        self.seq
    }

    fn advance(&mut self, hash: String) {
        self.seq += 1;
        self.prev = hash;
        self.time = self
            .time
            .checked_add(jiff::SignedDuration::from_millis(10))
            .unwrap();
    }

    fn write_raw(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.segment)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// Starts a new segment with its `segment_start` record.
    fn rotate(&mut self) {
        self.segment = self.path().join(segment_name(self.seq + 1));
        std::fs::write(&self.segment, b"").unwrap();
        self.append(json!({"kind": "segment_start"}));
    }

    /// A decision record of call `n` of session `s`; returns its seq.
    fn decision(&mut self, s: &str, n: u32, effect: &str, approval: Value) -> u64 {
        self.append(json!({
            "kind": "decision", "session_id": s, "trace_id": format!("t-{s}"),
            "user": {"id": "alice", "email": "alice@example.com"},
            "agent": {"id": "summarizer", "name": "Summarizer", "version": "1"},
            "call_id": format!("{s}:{n}"),
            "action": {"type": "tool_call", "tool": "send_email", "arguments": {},
                       "resource": "Mailbox::\"alice\""},
            "decision": {"effect": effect, "decided_by": "policy",
                         "determining_policies": [{"id": "email-needs-approval", "reason": "r"}],
                         "errors": [], "policy_digest": "00"},
            "approval": approval,
        }))
    }

    fn outcome(&mut self, s: &str, n: u32, decision_seq: u64, status: &str) -> u64 {
        self.append(json!({
            "kind": "outcome", "session_id": s, "call_id": format!("{s}:{n}"),
            "outcome": {"decision_seq": decision_seq, "status": status, "latency_us": 1234,
                        "error": if status == "failed" { Value::from("boom") } else { Value::Null }},
        }))
    }
}

fn not_required() -> Value {
    json!({"required": false, "outcome": "not_required"})
}

fn all() -> CallQuery {
    CallQuery::default()
}

fn seqs(rows: &[CallRow]) -> Vec<u64> {
    rows.iter().map(|r| r.decision_seq).collect()
}

#[test]
fn a_call_row_joins_its_decision_and_its_outcome() {
    let mut log = TestLog::new();
    log.append(json!({"kind": "session_start", "session_id": "s"}));
    let approved = json!({"required": true, "outcome": "approved", "reviewer": "bob",
                          "reason": "fine"});
    let d = log.decision("s", 1, "allow", approved);
    let o = log.outcome("s", 1, d, "failed");
    let denied = json!({"required": true, "outcome": "denied", "reviewer": "carol"});
    let d2 = log.decision("s", 2, "deny", denied);

    let mut index = AuditIndex::open(log.path()).unwrap();
    let caught_up = index.catch_up().unwrap();
    assert_eq!(caught_up.records, 5);
    assert_eq!(caught_up.calls, 2);
    assert_eq!(caught_up.head_seq, Some(d2));
    assert_eq!(caught_up.rebuilt, None);

    let rows = index.query(&all()).unwrap();
    assert_eq!(
        rows[0],
        CallRow {
            call_id: "s:1".into(),
            decision_seq: d,
            outcome_seq: Some(o),
            time: Timestamp::from_millisecond(1_790_000_000_000 + 20).unwrap(),
            session_id: Some("s".into()),
            trace_id: Some("t-s".into()),
            user_id: Some("alice".into()),
            agent_id: Some("summarizer".into()),
            tool: "send_email".into(),
            resource: Some("Mailbox::\"alice\"".into()),
            effect: CallEffect::Allow,
            decided_by: Some("policy".into()),
            determining_policies: vec!["email-needs-approval".into()],
            message: None,
            approval_required: true,
            approval_outcome: Some("approved".into()),
            reviewer: Some("bob".into()),
            approved_by: Some("bob".into()),
            status: Some("failed".into()),
            latency_us: Some(1234),
            error: Some("boom".into()),
        }
    );
    // A denial has no outcome, and a reviewer who said no did not approve it.
    assert_eq!(rows[1].decision_seq, d2);
    assert_eq!(rows[1].effect, CallEffect::Deny);
    assert_eq!(rows[1].reviewer.as_deref(), Some("carol"));
    assert_eq!(rows[1].approved_by, None);
    assert_eq!(
        (rows[1].outcome_seq, rows[1].status.as_deref()),
        (None, None)
    );

    let by_bob = CallQuery {
        approved_by: Some("bob".into()),
        ..all()
    };
    assert_eq!(seqs(&index.query(&by_bob).unwrap()), [d]);
    let by_carol = CallQuery {
        approved_by: Some("carol".into()),
        ..all()
    };
    assert!(index.query(&by_carol).unwrap().is_empty());
}

#[test]
fn json_rows_carry_every_column_and_millisecond_times() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let row = serde_json::to_value(&index.query(&all()).unwrap()[0]).unwrap();
    assert_eq!(row["time"], "2026-09-21T14:13:20.010Z");
    assert_eq!(row["effect"], "deny");
    assert_eq!(row["outcome_seq"], Value::Null);
    assert_eq!(row.as_object().unwrap().len(), 21);
}

#[test]
fn an_outcome_arriving_after_its_decision_was_indexed_fills_in_the_row() {
    let mut log = TestLog::new();
    let d = log.decision("s", 1, "allow", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    assert_eq!(index.query(&all()).unwrap()[0].status, None);

    let o = log.outcome("s", 1, d, "ok");
    let caught_up = index.catch_up().unwrap();
    assert_eq!((caught_up.records, caught_up.calls), (1, 0));
    let row = &index.query(&all()).unwrap()[0];
    assert_eq!(
        (row.outcome_seq, row.status.as_deref()),
        (Some(o), Some("ok"))
    );
}

#[test]
fn a_line_still_being_written_is_left_for_the_next_catch_up() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    let body = json!({"kind": "decision", "call_id": "s:2", "session_id": "s",
                      "action": {"tool": "t"}, "decision": {"effect": "deny"}});
    let (line, hash) = log.next_line(&body);
    let (head, tail) = line.split_at(line.len() / 2);
    log.write_raw(head);

    let mut index = AuditIndex::open(log.path()).unwrap();
    let caught_up = index.catch_up().unwrap();
    assert_eq!((caught_up.records, caught_up.head_seq), (2, Some(2)));

    log.write_raw(tail);
    log.advance(hash);
    let caught_up = index.catch_up().unwrap();
    assert_eq!((caught_up.records, caught_up.calls), (1, 1));
    assert_eq!(index.query(&all()).unwrap()[1].call_id, "s:2");
}

#[test]
fn a_torn_line_before_a_later_segment_is_refused() {
    let mut log = TestLog::new();
    log.write_raw(b"{\"seq\":2,\"prev_hash\"");
    log.seq += 1;
    log.rotate();
    let mut index = AuditIndex::open(log.path()).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::BadRecord {
                problem: RecordProblem::TornInside,
                seq: Some(2),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_record_whose_hash_does_not_match_is_refused_and_what_came_before_is_kept() {
    let mut log = TestLog::new();
    let kept = log.decision("s", 1, "deny", not_required());
    let (line, hash) = log.next_line(&json!({"kind": "session_end", "session_id": "s"}));
    let forged = String::from_utf8(line)
        .unwrap()
        .replace("session_end", "session_xxx");
    log.write_raw(forged.as_bytes());
    log.advance(hash);

    let mut index = AuditIndex::open(log.path()).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::BadRecord {
                problem: RecordProblem::HashMismatch,
                seq: Some(3),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("mandate audit verify"), "{err}");
    assert_eq!(index.head().unwrap().map(|h| h.0), Some(kept));
    assert_eq!(seqs(&index.query(&all()).unwrap()), [kept]);
}

#[test]
fn a_record_that_does_not_link_to_the_previous_one_is_refused() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    log.prev = "ab".repeat(32);
    log.decision("s", 2, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::BadRecord {
                problem: RecordProblem::PrevHashMismatch,
                seq: Some(3),
                ..
            }
        ),
        "{err}"
    );

    let mut log = TestLog::new();
    log.seq += 1;
    log.decision("s", 1, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::BadRecord {
                problem: RecordProblem::SeqGap {
                    expected: 2,
                    found: 3
                },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_decision_without_an_effect_is_refused_naming_the_field() {
    let mut log = TestLog::new();
    log.append(
        json!({"kind": "decision", "call_id": "s:1", "action": {"tool": "t"},
                      "decision": {"effect": "maybe"}}),
    );
    let mut index = AuditIndex::open(log.path()).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(err.to_string().contains("`decision.effect`"), "{err}");
}

#[test]
fn records_of_other_kinds_may_use_the_same_field_names_for_other_shapes() {
    let mut log = TestLog::new();
    log.append(json!({"kind": "guest_fault", "decision": "trap", "outcome": 3}));
    let d = log.decision("s", 1, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    assert_eq!(index.catch_up().unwrap().records, 3);
    assert_eq!(seqs(&index.query(&all()).unwrap()), [d]);
}

#[test]
fn retention_removes_the_calls_it_removed_from_the_log() {
    let mut log = TestLog::new();
    let gone = log.decision("s", 1, "deny", not_required());
    log.rotate();
    let kept = log.decision("s", 2, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    assert_eq!(seqs(&index.query(&all()).unwrap()), [gone, kept]);

    log.append(
        json!({"kind": "retention", "removed_segments": [segment_name(1)],
                      "removed_through_seq": gone + 1, "removed_through_hash": "00"}),
    );
    std::fs::remove_file(log.path().join(segment_name(1))).unwrap();
    let caught_up = index.catch_up().unwrap();
    assert_eq!((caught_up.records, caught_up.rebuilt), (1, None));
    assert_eq!(seqs(&index.query(&all()).unwrap()), [kept]);

    // A fresh build from what remains gives the same answer.
    let (fresh, _) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(fresh.query(&all()).unwrap(), index.query(&all()).unwrap());
}

#[test]
fn small_batches_give_the_same_index_as_one_batch() {
    let mut log = TestLog::new();
    for n in 0..20 {
        let d = log.decision("s", n, "allow", not_required());
        if n % 3 == 0 {
            log.rotate();
        }
        log.outcome("s", n, d, "ok");
    }
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.batch_records = 3;
    let caught_up = index.catch_up().unwrap();
    assert_eq!(caught_up.records, log.seq);
    let small = index.query(&all()).unwrap();
    let (whole, _) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(small, whole.query(&all()).unwrap());
    assert_eq!(small.len(), 20);
    assert!(small.iter().all(|r| r.status.as_deref() == Some("ok")));
}

#[test]
fn two_handles_on_one_index_take_each_record_once() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    let mut a = AuditIndex::open(log.path()).unwrap();
    let mut b = AuditIndex::open(log.path()).unwrap();
    assert_eq!(a.catch_up().unwrap().records, 2);
    assert_eq!(b.catch_up().unwrap().records, 0);
    log.decision("s", 2, "deny", not_required());
    assert_eq!(b.catch_up().unwrap().records, 1);
    assert_eq!(a.catch_up().unwrap().records, 0);
    assert_eq!(a.query(&all()).unwrap().len(), 2);
}

#[test]
fn a_log_cut_short_under_its_index_is_refused_until_it_is_reindexed() {
    let mut log = TestLog::new();
    let first = log.decision("s", 1, "deny", not_required());
    let len = std::fs::metadata(&log.segment).unwrap().len();
    log.decision("s", 2, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();

    std::fs::OpenOptions::new()
        .write(true)
        .open(&log.segment)
        .unwrap()
        .set_len(len)
        .unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(&err, IndexError::LogChanged { seq: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("mandate audit verify"), "{err}");
    drop(index);
    let (index, caught_up) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(caught_up.records, 2);
    assert_eq!(seqs(&index.query(&all()).unwrap()), [first]);
}

/// Rewrites `from` as `to` (same length) in the first line of `path` holding it, in place.
fn edit_in_place(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let text = std::fs::read_to_string(path).unwrap();
    let edited = text.replacen(from, to, 1);
    assert_ne!(edited, text, "no `{from}` in {path:?}");
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(edited.as_bytes()).unwrap();
}

#[test]
fn a_record_edited_in_place_after_indexing_is_refused_naming_its_segment_and_seq() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    let edited = log.append(json!({"kind": "note", "user": "bob"}));
    log.decision("s", 2, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();

    edit_in_place(&log.segment, "\"bob\"", "\"rob\"");
    let err = index.catch_up().unwrap_err();
    let IndexError::LogChanged { segment, seq, .. } = &err else {
        panic!("not refused as changed: {err}");
    };
    assert_eq!((segment, *seq), (&log.segment, edited), "{err}");
    assert!(
        err.to_string().contains("no longer matches its hash"),
        "{err}"
    );
    // Every later catch-up refuses too: the index never answers from the stale rows.
    assert!(matches!(
        index.catch_up().unwrap_err(),
        IndexError::LogChanged { .. }
    ));
    // A rebuild reads the log as it is, and refuses at the altered record.
    drop(index);
    let err = AuditIndex::reindex(log.path()).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::BadRecord {
                problem: RecordProblem::HashMismatch,
                seq: Some(s),
                ..
            } if s == edited
        ),
        "{err}"
    );
}

/// Two logs that differ in one value, each record re-chained: every line of the second hashes
/// and links, only the values differ.
fn twin_logs(user: &str) -> TestLog {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    log.append(json!({"kind": "note", "user": user}));
    log.rotate();
    log.decision("s", 2, "deny", not_required());
    log
}

#[test]
fn a_log_rewritten_with_every_record_rechained_is_refused() {
    let log = twin_logs("bob");
    let forged = twin_logs("rob");
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    // The forger keeps the second segment's start, so only the first segment is rewritten.
    let first = log.path().join(segment_name(1));
    std::fs::write(
        &first,
        std::fs::read(forged.path().join(segment_name(1))).unwrap(),
    )
    .unwrap();

    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(&err, IndexError::LogChanged { segment, .. } if *segment == first),
        "{err}"
    );
}

#[test]
fn an_unchanged_log_is_not_read_again_and_an_append_rereads_only_its_segment() {
    let mut log = twin_logs("bob");
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    // A fingerprint is trusted once the file's change time is old enough to have ticked.
    std::thread::sleep(unchanged::SETTLE + std::time::Duration::from_millis(100));
    let settled = index.catch_up().unwrap();
    assert_eq!((settled.records, settled.rechecked), (0, 2));
    let unchanged = index.catch_up().unwrap();
    assert_eq!((unchanged.records, unchanged.rechecked), (0, 0));

    log.decision("s", 3, "deny", not_required());
    let appended = index.catch_up().unwrap();
    assert_eq!((appended.records, appended.rechecked), (1, 1));
}

#[test]
fn a_segment_removed_from_the_start_of_the_log_takes_its_calls_out_of_the_index() {
    let log = twin_logs("bob");
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    assert_eq!(index.query(&all()).unwrap().len(), 2);
    std::fs::remove_file(log.path().join(segment_name(1))).unwrap();

    index.catch_up().unwrap();
    let rows = index.query(&all()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].call_id, "s:2");
}

#[test]
fn a_segment_gone_from_between_others_is_refused() {
    let mut log = twin_logs("bob");
    log.rotate();
    log.decision("s", 3, "deny", not_required());
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let middle = list_segments(log.path()).unwrap()[1].path.clone();
    std::fs::remove_file(&middle).unwrap();

    let err = index.catch_up().unwrap_err();
    assert!(
        matches!(&err, IndexError::LogChanged { segment, .. } if *segment == middle),
        "{err}"
    );
}

#[test]
fn an_index_of_another_layout_is_rebuilt() {
    let mut log = TestLog::new();
    log.decision("s", 1, "deny", not_required());
    {
        let mut index = AuditIndex::open(log.path()).unwrap();
        index.catch_up().unwrap();
        index.conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let mut index = AuditIndex::open(log.path()).unwrap();
    let caught_up = index.catch_up().unwrap();
    assert_eq!(caught_up.rebuilt, Some(RebuildReason::LayoutChanged));
    assert_eq!(caught_up.records, 2);
    assert_eq!(index.query(&all()).unwrap().len(), 1);
}

#[test]
fn a_directory_without_segments_is_not_a_log_and_gets_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::NotALogDirectory { .. }), "{err}");
    assert!(!dir.path().join(INDEX_FILE).exists());

    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, b"").unwrap();
    let err = AuditIndex::open(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");

    let err = AuditIndex::open(dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, IndexError::LogUnreadable { .. }), "{err}");
}

#[test]
fn time_bounds_are_half_open_and_sub_millisecond_bounds_round_up() {
    let mut log = TestLog::new();
    let a = log.decision("s", 1, "deny", not_required()); // at +10 ms
    let b = log.decision("s", 2, "deny", not_required()); // at +20 ms
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let at = |ms: i64, ns: i32| {
        Timestamp::new(1_790_000_000, i32::try_from(ms).unwrap() * 1_000_000 + ns).unwrap()
    };
    let between = |since, until| {
        seqs(
            &index
                .query(&CallQuery {
                    since,
                    until,
                    ..all()
                })
                .unwrap(),
        )
    };
    assert_eq!(between(Some(at(10, 0)), None), [a, b]);
    assert_eq!(between(Some(at(10, 1)), None), [b]);
    assert_eq!(between(None, Some(at(20, 0))), [a]);
    assert_eq!(between(None, Some(at(20, 1))), [a, b]);
    assert_eq!(between(Some(at(20, 0)), Some(at(20, 0))), Vec::<u64>::new());
}

#[test]
fn limit_keeps_the_first_rows_in_log_order_and_count_ignores_it() {
    let mut log = TestLog::new();
    let seqs_written: Vec<u64> = (0..5)
        .map(|n| log.decision("s", n, "deny", not_required()))
        .collect();
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let q = CallQuery {
        limit: Some(2),
        ..all()
    };
    assert_eq!(seqs(&index.query(&q).unwrap()), seqs_written[..2]);
    assert_eq!(index.count(&q).unwrap(), 5);
}

/// The plan SQLite picks for `query`, as text.
fn plan(index: &AuditIndex, query: &CallQuery) -> String {
    let (clause, values) = super::query::conditions(query);
    let sql = format!("EXPLAIN QUERY PLAN SELECT * FROM calls{clause} ORDER BY decision_seq");
    let mut stmt = index.conn.prepare(&sql).unwrap();
    let details: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(values), |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    details.join("; ")
}

#[test]
fn every_filter_is_served_by_an_index_even_after_a_cut_short_first_build() {
    let mut log = TestLog::new();
    for n in 0..400 {
        log.decision(&format!("s{}", n % 40), n, "deny", not_required());
    }
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    // The last few calls only: with statistics, SQLite knows this bound keeps
    // few rows and takes the time index rather than scanning every call.
    let recent = Some(
        log.time
            .checked_sub(jiff::SignedDuration::from_millis(50))
            .unwrap(),
    );
    let x = || Some("x".to_owned());
    let cases = [
        ("calls_by_user", CallQuery { user: x(), ..all() }),
        (
            "calls_by_agent",
            CallQuery {
                agent: x(),
                ..all()
            },
        ),
        (
            "calls_by_session",
            CallQuery {
                session: x(),
                ..all()
            },
        ),
        ("calls_by_tool", CallQuery { tool: x(), ..all() }),
        (
            "calls_by_approver",
            CallQuery {
                approved_by: x(),
                ..all()
            },
        ),
        (
            "calls_by_time",
            CallQuery {
                since: recent,
                ..all()
            },
        ),
        (
            "calls_by_time",
            CallQuery {
                until: Some(Timestamp::from_second(1_790_000_000).unwrap()),
                ..all()
            },
        ),
        (
            "calls_by_user (user_id=? AND time_ms>?)",
            CallQuery {
                user: x(),
                since: recent,
                ..all()
            },
        ),
    ];
    for (expected, query) in &cases {
        let plan = plan(&index, query);
        assert!(plan.contains(expected), "{query:?}: {plan}");
    }

    // A first build drops the indexes and makes them at the end; if it is
    // killed in between, the next open makes them.
    schema::drop_indexes(&mut index.conn).unwrap();
    assert!(!plan(&index, &cases[0].1).contains("calls_by_user"));
    drop(index);
    let index = AuditIndex::open(log.path()).unwrap();
    for (expected, query) in &cases {
        assert!(plan(&index, query).contains(expected), "{query:?}");
    }
}

#[test]
fn a_call_allowed_by_a_standing_grant_counts_as_approved_by_its_reviewer() {
    let mut log = TestLog::new();
    log.append(json!({"kind": "session_start", "session_id": "s"}));
    let granted = json!({"required": true, "outcome": "approved_by_grant", "reviewer": "carol",
                         "scope": "session"});
    log.decision("s", 1, "allow", granted);
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let rows = index.query(&all()).unwrap();
    assert_eq!(
        rows[0].approval_outcome.as_deref(),
        Some("approved_by_grant")
    );
    assert_eq!(rows[0].approved_by.as_deref(), Some("carol"));
}
