//! Appending records durably: records per second for 1, 8 and 64 concurrent sessions, with one
//! fsync per record (`per_record`) and with group commit (`group_commit`), in the same run. The
//! goal is group commit at 64 sessions doing at least 30 times the per-record rate.
//!
//! Each session is a tokio task appending records of about 1 KB (the shape of a decision
//! record) one after another with `append_async`, each waiting until its record is durable, as
//! the guard's sessions do. The log is a real directory under the target directory (not a
//! tmpfs), with 64 MiB segments and only the newest two kept, so the run does not fill the disk.
//!
//! Run: `cargo bench -p mandate-audit --bench audit_append`. Besides criterion's report, it prints a
//! summary: the median rate of each configuration over its measured samples, and group commit's
//! speed-up per session count. How far group commit can go depends on the disk: the slower its
//! `fdatasync`, the more one sync saves; on a disk that syncs in a fraction of a millisecond the
//! CPU (serializing, hashing) becomes the limit. `AUDIT_BENCH_DIR=<dir>` runs the same
//! measurement in another directory, e.g. on a tmpfs to see that CPU limit. Last it says whether
//! the other core was idle meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/machine.rs"]
mod machine;

use machine::Machine;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mandate_audit::{AuditConfig, AuditLog, Durability, Retention};
use serde::Serialize;
use tokio::runtime::Runtime;

const SESSIONS: [usize; 3] = [1, 8, 64];
const SAMPLES: usize = 10;

/// Records appended by all sessions together in one iteration: fewer with one sync each, so
/// that ten samples take seconds, not minutes.
fn records_per_iteration(durability: Durability) -> usize {
    match durability {
        Durability::PerRecord => 128,
        Durability::GroupCommit => 1024,
    }
}

/// A decision record's body, about 1 KB serialized.
#[derive(Serialize)]
struct Decision<'a> {
    kind: &'static str,
    session_id: &'a str,
    trace_id: &'a str,
    user: User<'a>,
    agent: Agent<'a>,
    authorization: Authorization<'a>,
    delegation_chain: [&'a str; 2],
    call_id: String,
    action: Action<'a>,
    decision: Verdict<'a>,
    approval: Approval<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    id: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct Agent<'a> {
    id: &'a str,
    name: &'a str,
    version: &'a str,
    component_digest: &'a str,
}

#[derive(Serialize)]
struct Authorization<'a> {
    scopes: [&'a str; 3],
    session_type: &'a str,
    expires_at: &'a str,
    approved_by: &'a str,
}

#[derive(Serialize)]
struct Action<'a> {
    r#type: &'a str,
    tool: &'a str,
    scope: &'a str,
    arguments: Arguments<'a>,
    resource: String,
}

#[derive(Serialize)]
struct Arguments<'a> {
    document_id: String,
    note: &'a str,
}

#[derive(Serialize)]
struct Verdict<'a> {
    effect: &'a str,
    decided_by: &'a str,
    determining_policies: [Policy<'a>; 1],
    errors: [&'a str; 0],
    policy_digest: &'a str,
}

#[derive(Serialize)]
struct Policy<'a> {
    id: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct Approval<'a> {
    required: bool,
    outcome: &'a str,
}

const DIGEST: &str = "36518b00aded4f1c9e5a77b3a2f0c1d8e9b4a6c7d2e3f4051627384950a1b2c3";

fn decision(session: &str, n: usize) -> Decision<'_> {
    Decision {
        kind: "decision",
        session_id: session,
        trace_id: session,
        user: User {
            id: "alice",
            email: "alice@example.com",
        },
        agent: Agent {
            id: "document-summarizer",
            name: "Document Summarizer",
            version: "0.1.0",
            component_digest: DIGEST,
        },
        authorization: Authorization {
            scopes: ["documents:read", "documents:write", "email:send"],
            session_type: "human_approved",
            expires_at: "2099-01-01T00:00:00Z",
            approved_by: "alice",
        },
        delegation_chain: ["user:alice", "agent:document-summarizer"],
        call_id: format!("{session}:{n}"),
        action: Action {
            r#type: "tool_call",
            tool: "read_document",
            scope: "documents:read",
            arguments: Arguments {
                document_id: format!("doc_{n:08}"),
                note: "a realistic amount of argument text that an agent might pass along to a tool",
            },
            resource: format!("Document::\"doc_{n:08}\""),
        },
        decision: Verdict {
            effect: "allow",
            decided_by: "policy",
            determining_policies: [Policy {
                id: "scope-documents-read",
                reason: "the session holds the documents:read scope",
            }],
            errors: [],
            policy_digest: DIGEST,
        },
        approval: Approval {
            required: false,
            outcome: "not_required",
        },
    }
}

fn label(durability: Durability) -> &'static str {
    match durability {
        Durability::PerRecord => "per_record",
        Durability::GroupCommit => "group_commit",
    }
}

/// Every measured rate (records per second), by configuration.
type Rates = Arc<Mutex<BTreeMap<(usize, &'static str), Vec<f64>>>>;

/// `sessions` tasks append `records` records in total, `iterations` times.
async fn append_all(log: &Arc<AuditLog>, sessions: usize, records: usize, iterations: u64) {
    let per_session = records / sessions;
    for _ in 0..iterations {
        let tasks: Vec<_> = (0..sessions)
            .map(|s| {
                let log = Arc::clone(log);
                tokio::spawn(async move {
                    let session = format!("sess_{s:04}");
                    for n in 0..per_session {
                        log.append_async(&decision(&session, n)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
}

fn open(dir: &Path, durability: Durability) -> Arc<AuditLog> {
    let config = AuditConfig {
        durability,
        retention: Retention {
            keep_segments: Some(2),
            max_age: None,
        },
        ..AuditConfig::default()
    };
    Arc::new(AuditLog::open_with(dir, config).unwrap())
}

/// Runs one iteration of `sessions` appending `records` and returns the rate.
fn rate(runtime: &Runtime, log: &Arc<AuditLog>, sessions: usize, records: usize) -> f64 {
    let started = Instant::now();
    runtime.block_on(append_all(log, sessions, records, 1));
    records as f64 / started.elapsed().as_secs_f64()
}

fn append(c: &mut Criterion) {
    let machine = Machine::now();
    let size = serde_json::to_vec(&decision("sess_0000", 1)).unwrap().len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let rates: Rates = Arc::default();
    let mut paired = Vec::new();
    let base = std::env::var("AUDIT_BENCH_DIR").unwrap_or(env!("CARGO_TARGET_TMPDIR").to_owned());
    let mut group = c.benchmark_group("audit_append");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for sessions in SESSIONS {
        let mut logs = Vec::new();
        for durability in [Durability::PerRecord, Durability::GroupCommit] {
            let records = records_per_iteration(durability);
            group.throughput(Throughput::Elements(records as u64));
            let dir = tempfile::tempdir_in(&base).unwrap();
            let log = open(dir.path(), durability);
            let rates = Arc::clone(&rates);
            let id = BenchmarkId::new(label(durability), sessions);
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    let started = Instant::now();
                    runtime.block_on(append_all(&log, sessions, records, iterations));
                    let elapsed = started.elapsed();
                    let records = (records as u64 * iterations) as f64;
                    rates
                        .lock()
                        .unwrap()
                        .entry((sessions, label(durability)))
                        .or_default()
                        .push(records / elapsed.as_secs_f64());
                    elapsed
                })
            });
            let stats = log.stats();
            eprintln!(
                "  {} at {sessions} sessions: {:.1} records per sync, {:.1}% of appends \
                 committed by their own caller",
                label(durability),
                stats.durable_seq as f64 / stats.commits.max(1) as f64,
                100.0 * stats.led_appends as f64 / stats.durable_seq.max(1) as f64
            );
            logs.push((dir, log));
        }
        // The disk's sync latency drifts (other work on the machine), so the ratio is also
        // measured in alternating rounds, each pair under the same conditions.
        let (per_record, group_commit) = (&logs[0].1, &logs[1].1);
        let rounds: Vec<(f64, f64)> = (0..SAMPLES)
            .map(|_| {
                let p = rate(
                    &runtime,
                    per_record,
                    sessions,
                    records_per_iteration(Durability::PerRecord),
                );
                let g = rate(
                    &runtime,
                    group_commit,
                    sessions,
                    records_per_iteration(Durability::GroupCommit),
                );
                (p, g)
            })
            .collect();
        paired.push((sessions, rounds));
    }
    group.finish();
    summarize(&rates.lock().unwrap(), &paired, size, &base);
    println!("{}", machine.report());
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The median of the measured samples: in flat sampling each sample is one call, the last
/// `SAMPLES` calls (the ones before are the warm-up).
fn measured_median(
    rates: &BTreeMap<(usize, &'static str), Vec<f64>>,
    key: (usize, &'static str),
) -> f64 {
    let all = rates.get(&key).map_or(&[][..], Vec::as_slice);
    median(&all[all.len().saturating_sub(SAMPLES)..])
}

fn summarize(
    rates: &BTreeMap<(usize, &'static str), Vec<f64>>,
    paired: &[(usize, Vec<(f64, f64)>)],
    size: usize,
    dir: &str,
) {
    println!("\naudit_append: records of {size} bytes in {dir}");
    println!("criterion samples (median records/s of {SAMPLES} samples each):");
    println!(
        "{:>9} {:>16} {:>16} {:>8}",
        "sessions", "per_record/s", "group_commit/s", "ratio"
    );
    for sessions in SESSIONS {
        let per_record = measured_median(rates, (sessions, "per_record"));
        let group = measured_median(rates, (sessions, "group_commit"));
        println!(
            "{sessions:>9} {per_record:>16.0} {group:>16.0} {:>7.1}x",
            group / per_record
        );
    }
    println!("alternating rounds ({SAMPLES} pairs; medians of rates and of per-pair ratios):");
    println!(
        "{:>9} {:>16} {:>16} {:>8}",
        "sessions", "per_record/s", "group_commit/s", "ratio"
    );
    for (sessions, rounds) in paired {
        let per_record: Vec<f64> = rounds.iter().map(|(p, _)| *p).collect();
        let group: Vec<f64> = rounds.iter().map(|(_, g)| *g).collect();
        let ratios: Vec<f64> = rounds.iter().map(|(p, g)| g / p).collect();
        println!(
            "{sessions:>9} {:>16.0} {:>16.0} {:>7.1}x",
            median(&per_record),
            median(&group),
            median(&ratios)
        );
    }
}

criterion_group!(benches, append);
criterion_main!(benches);
