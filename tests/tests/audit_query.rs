//! The query index against a brute-force scan of the log: on generated logs of
//! several seeds and segment sizes, every random combination of filters finds
//! exactly the calls, in the order, that reading every record finds; and the
//! index stays equal to that scan as the log grows, is replaced, is trimmed by
//! retention (a log written by `AuditLog`, rotating and signing checkpoints),
//! or is reindexed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use mandate::audit::synthetic::{SyntheticSpec, write_synthetic_log};
use mandate::audit::{
    AuditConfig, AuditIndex, AuditLog, CallEffect, CallQuery, CallRow, CheckpointSigner,
    IndexError, RecordReader, Retention, list_segments,
};
use serde_json::{Value, json};

/// One call as the brute-force scan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    decision_seq: u64,
    call_id: String,
    time: Timestamp,
    user: Option<String>,
    agent: Option<String>,
    session: Option<String>,
    tool: String,
    effect: CallEffect,
    approved_by: Option<String>,
    outcome_seq: Option<u64>,
    status: Option<String>,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Reads every record of the log and joins decisions with outcomes: the
/// straightforward answer the index must agree with.
fn scan(log: &Path) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut by_seq: HashMap<u64, usize> = HashMap::new();
    for raw in RecordReader::open(log).unwrap() {
        let record: Value = serde_json::from_slice(&raw.unwrap().bytes).unwrap();
        let seq = record["seq"].as_u64().unwrap();
        match record["kind"].as_str() {
            Some("decision") => {
                let approved = record["approval"]["outcome"] == "approved";
                by_seq.insert(seq, calls.len());
                calls.push(Call {
                    decision_seq: seq,
                    call_id: text(&record, "/call_id").unwrap(),
                    time: record["timestamp"].as_str().unwrap().parse().unwrap(),
                    user: text(&record, "/user/id"),
                    agent: text(&record, "/agent/id"),
                    session: text(&record, "/session_id"),
                    tool: text(&record, "/action/tool").unwrap(),
                    effect: match record["decision"]["effect"].as_str() {
                        Some("allow") => CallEffect::Allow,
                        _ => CallEffect::Deny,
                    },
                    approved_by: text(&record, "/approval/reviewer").filter(|_| approved),
                    outcome_seq: None,
                    status: None,
                });
            }
            Some("outcome") => {
                let decision = record["outcome"]["decision_seq"].as_u64().unwrap();
                // Retention may have removed the decision from the log.
                let Some(&i) = by_seq.get(&decision) else {
                    continue;
                };
                let call = &mut calls[i];
                assert_eq!(Some(&call.call_id), text(&record, "/call_id").as_ref());
                call.outcome_seq = Some(seq);
                call.status = text(&record, "/outcome/status");
            }
            _ => {}
        }
    }
    calls
}

/// The scan's answer to `q`.
fn brute_force(calls: &[Call], q: &CallQuery) -> Vec<Call> {
    let is = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    calls
        .iter()
        .filter(|c| {
            is(&q.user, &c.user)
                && is(&q.agent, &c.agent)
                && is(&q.session, &c.session)
                && is(&q.tool, &Some(c.tool.clone()))
                && is(&q.approved_by, &c.approved_by)
                && q.effect.is_none_or(|e| e == c.effect)
                && q.since.is_none_or(|t| c.time >= t)
                && q.until.is_none_or(|t| c.time < t)
        })
        .take(q.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap()))
        .cloned()
        .collect()
}

/// The index's answer in the scan's terms.
fn as_calls(rows: &[CallRow]) -> Vec<Call> {
    rows.iter()
        .map(|r| Call {
            decision_seq: r.decision_seq,
            call_id: r.call_id.clone(),
            time: r.time,
            user: r.user_id.clone(),
            agent: r.agent_id.clone(),
            session: r.session_id.clone(),
            tool: r.tool.clone(),
            effect: r.effect,
            approved_by: r.approved_by.clone(),
            outcome_seq: r.outcome_seq,
            status: r.status.clone(),
        })
        .collect()
}

/// splitmix64: random filters without a dependency, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<'a>(&mut self, calls: &'a [Call]) -> &'a Call {
        &calls[usize::try_from(self.below(calls.len() as u64)).unwrap()]
    }
}

/// A random combination of filters, with values taken from the log (and now
/// and then one that matches nothing), times on and next to record times.
fn random_query(rng: &mut Rng, calls: &[Call]) -> CallQuery {
    let value = |rng: &mut Rng, field: fn(&Call) -> Option<String>| {
        if rng.one_in(3) {
            Some(if rng.one_in(8) {
                "nobody".to_owned()
            } else {
                field(rng.pick(calls)).unwrap_or_default()
            })
        } else {
            None
        }
    };
    let time = |rng: &mut Rng| {
        let t = rng.pick(calls).time;
        let nudge = i64::try_from(rng.below(3)).unwrap() - 1;
        t.checked_add(jiff::SignedDuration::from_millis(nudge))
            .unwrap()
    };
    CallQuery {
        user: value(rng, |c| c.user.clone()),
        agent: value(rng, |c| c.agent.clone()),
        session: value(rng, |c| c.session.clone()),
        tool: value(rng, |c| Some(c.tool.clone())),
        approved_by: if rng.one_in(4) {
            calls
                .iter()
                .filter_map(|c| c.approved_by.clone())
                .nth(usize::try_from(rng.below(20)).unwrap())
        } else {
            None
        },
        effect: match rng.below(4) {
            0 => Some(CallEffect::Allow),
            1 => Some(CallEffect::Deny),
            _ => None,
        },
        since: rng.one_in(3).then(|| time(rng)),
        until: rng.one_in(3).then(|| time(rng)),
        limit: rng.one_in(4).then(|| rng.below(30)),
    }
}

/// Checks `queries` random queries, plus the empty one, against the scan.
fn assert_index_equals_scan(index: &AuditIndex, log: &Path, rng: &mut Rng, queries: usize) {
    let calls = scan(log);
    assert!(!calls.is_empty());
    let everything = index.query(&CallQuery::default()).unwrap();
    assert_eq!(
        as_calls(&everything),
        calls,
        "all calls of {}",
        log.display()
    );
    let mut matched = 0;
    for _ in 0..queries {
        let q = random_query(rng, &calls);
        let want = brute_force(&calls, &q);
        matched += usize::from(!want.is_empty());
        assert_eq!(as_calls(&index.query(&q).unwrap()), want, "{q:?}");
        let unlimited = CallQuery {
            limit: None,
            ..q.clone()
        };
        assert_eq!(
            index.count(&unlimited).unwrap(),
            brute_force(&calls, &unlimited).len() as u64,
            "{q:?}"
        );
    }
    // Filters that match nothing every time would prove little.
    assert!(
        matched > queries / 4,
        "only {matched} of {queries} queries matched"
    );
}

fn spec(seed: u64, records: u64, segment_records: u64) -> SyntheticSpec {
    SyntheticSpec {
        records,
        seed,
        users: 12,
        agents: 4,
        segment_records,
        ..SyntheticSpec::default()
    }
}

fn remove_segments(log: &Path) {
    for segment in list_segments(log).unwrap() {
        std::fs::remove_file(segment.path).unwrap();
    }
}

#[test]
fn random_queries_find_exactly_what_a_scan_of_the_log_finds() {
    let mut rng = Rng(42);
    // One segment, segments shorter than a session, and two sizes in between.
    for (seed, segment_records) in [(1, u64::MAX), (2, 97), (3, 1000), (4, 333)] {
        let log = tempfile::tempdir().unwrap();
        write_synthetic_log(log.path(), &spec(seed, 2000, segment_records)).unwrap();
        let mut index = AuditIndex::open(log.path()).unwrap();
        let caught_up = index.catch_up().unwrap();
        assert_eq!(caught_up.records, 2000);
        assert_eq!(caught_up.head_seq, Some(2000));
        assert_index_equals_scan(&index, log.path(), &mut rng, 150);
    }
}

#[test]
fn catch_up_takes_only_the_records_appended_since_the_last_one() {
    let log = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let mut index: Option<AuditIndex> = None;
    let mut indexed = 0;
    // The generator is deterministic, so a longer log of the same seed is the
    // shorter one with records appended (a decision's outcome may arrive later).
    for records in [1500, 1501, 1502, 2222, 4000] {
        write_synthetic_log(log.path(), &spec(7, records, 250)).unwrap();
        let index = index.get_or_insert_with(|| AuditIndex::open(log.path()).unwrap());
        let caught_up = index.catch_up().unwrap();
        assert_eq!(caught_up.records, records - indexed, "after {records}");
        assert_eq!(caught_up.rebuilt, None);
        assert_eq!(caught_up.head_seq, Some(records));
        indexed = records;
        assert_index_equals_scan(index, log.path(), &mut rng, 40);
    }
    let caught_up = index.unwrap().catch_up().unwrap();
    assert_eq!(caught_up.records, 0);
}

#[test]
fn reindex_gives_the_same_rows_as_the_index_built_incrementally() {
    let log = tempfile::tempdir().unwrap();
    write_synthetic_log(log.path(), &spec(11, 700, 300)).unwrap();
    let mut incremental = AuditIndex::open(log.path()).unwrap();
    incremental.catch_up().unwrap();
    write_synthetic_log(log.path(), &spec(11, 2500, 300)).unwrap();
    incremental.catch_up().unwrap();
    let before = incremental.query(&CallQuery::default()).unwrap();
    drop(incremental);

    let (fresh, caught_up) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(caught_up.records, 2500);
    assert_eq!(fresh.query(&CallQuery::default()).unwrap(), before);
    assert_eq!(as_calls(&before), scan(log.path()));
}

#[test]
fn a_replaced_log_is_refused_until_it_is_reindexed() {
    let mut rng = Rng(3);
    // Same segment names, other records: the records indexed are no longer the log's.
    let log = tempfile::tempdir().unwrap();
    write_synthetic_log(log.path(), &spec(1, 2000, 500)).unwrap();
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    remove_segments(log.path());
    write_synthetic_log(log.path(), &spec(2, 2600, 500)).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(matches!(err, IndexError::LogChanged { .. }), "{err}");
    assert!(err.to_string().contains("mandate audit reindex"), "{err}");
    drop(index);
    let (index, caught_up) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(caught_up.records, 2600);
    assert_index_equals_scan(&index, log.path(), &mut rng, 40);

    // Other segment names: the first one is there with other records.
    let mut index = index;
    remove_segments(log.path());
    write_synthetic_log(log.path(), &spec(3, 1200, 700)).unwrap();
    let err = index.catch_up().unwrap_err();
    assert!(matches!(err, IndexError::LogChanged { .. }), "{err}");
    drop(index);
    let (index, caught_up) = AuditIndex::reindex(log.path()).unwrap();
    assert_eq!(caught_up.records, 1200);
    assert_index_equals_scan(&index, log.path(), &mut rng, 40);
}

#[test]
fn queries_answer_from_the_index_without_reading_the_log() {
    let log = tempfile::tempdir().unwrap();
    write_synthetic_log(log.path(), &spec(5, 1000, u64::MAX)).unwrap();
    let mut index = AuditIndex::open(log.path()).unwrap();
    index.catch_up().unwrap();
    let calls = scan(log.path());
    let user = calls[0].user.clone();
    let q = CallQuery {
        user: user.clone(),
        ..CallQuery::default()
    };
    let before = index.query(&q).unwrap();
    remove_segments(log.path());
    assert_eq!(index.query(&q).unwrap(), before);
    assert_eq!(as_calls(&before), brute_force(&calls, &q));
}

#[test]
fn a_log_written_by_the_audit_writer_is_indexed_as_it_grows_rotates_and_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let config = AuditConfig {
        segment_max_bytes: 16 * 1024,
        retention: Retention {
            keep_segments: Some(4),
            max_age: None,
        },
        checkpoint_signer: Some(Arc::new(CheckpointSigner::generate().unwrap())),
        checkpoint_every_records: 25,
        ..AuditConfig::default()
    };
    let log = AuditLog::open_with(&log_dir, config).unwrap();
    let mut index = AuditIndex::open(&log_dir).unwrap();
    let mut rng = Rng(17);
    for n in 0..240u64 {
        let session = format!("s-{}", n % 7);
        let identity = json!({
            "session_id": session, "trace_id": format!("t-{session}"),
            "user": {"id": format!("user-{}", n % 5), "email": "u@example.com"},
            "agent": {"id": format!("agent-{}", n % 3), "name": "A", "version": "1"},
        });
        let call_id = format!("{session}:{n}");
        let allowed = rng.below(4) != 0;
        let tool = if n % 2 == 0 {
            "read_document"
        } else {
            "send_email"
        };
        let mut decision = identity.clone();
        decision.as_object_mut().unwrap().extend(
            json!({
                "kind": "decision", "call_id": call_id,
                "action": {"type": "tool_call", "tool": tool,
                           "arguments": {"padding": "x".repeat(200)}, "resource": "Document::\"d\""},
                "decision": {"effect": if allowed { "allow" } else { "deny" }, "decided_by": "policy",
                             "determining_policies": [{"id": "p"}], "errors": [], "policy_digest": "00"},
                "approval": {"required": true, "outcome": "approved", "reviewer": format!("user-{}", n % 4)},
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        let appended = log.append(&decision).unwrap();
        if allowed {
            let mut outcome = identity;
            outcome.as_object_mut().unwrap().extend(
                json!({
                    "kind": "outcome", "call_id": call_id,
                    "outcome": {"decision_seq": appended.seq, "status": "ok", "latency_us": 10},
                })
                .as_object()
                .unwrap()
                .clone(),
            );
            log.append(&outcome).unwrap();
        }
        if n % 20 == 19 {
            let caught_up = index.catch_up().unwrap();
            assert_eq!(caught_up.rebuilt, None, "after call {n}");
            assert_eq!(caught_up.head_seq, Some(log.head().0));
            assert_index_equals_scan(&index, &log_dir, &mut rng, 20);
        }
    }
    log.close().unwrap();
    // Retention did trim the log, so the index had to follow it.
    let oldest = list_segments(&log_dir).unwrap()[0].first_seq;
    assert!(oldest > 1, "no segment was removed");
    index.catch_up().unwrap();
    assert_index_equals_scan(&index, &log_dir, &mut rng, 20);
    let (fresh, _) = AuditIndex::reindex(&log_dir).unwrap();
    assert_eq!(
        fresh.query(&CallQuery::default()).unwrap(),
        index.query(&CallQuery::default()).unwrap()
    );
}
