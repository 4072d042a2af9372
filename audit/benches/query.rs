//! Query by identity on a generated log of 1,000,000 records (1000 users, 10
//! agents): the goal is a query by user in under 50 ms (median).
//!
//! The log is generated once and kept under `target/bench-data/` for later
//! runs. Each run builds the index afresh (`AuditIndex::reindex`, timed and
//! printed, outside the measurements), then measures what `mandate audit
//! query` does: catch up with the log (nothing new here) and query, with the
//! CLI's default limit of 1000 rows. `cold/by_user` also opens the index, as
//! one CLI invocation does.
//!
//! Run: `cargo bench -p mandate-audit --bench query`; medians are in
//! `target/criterion/query/*/new/estimates.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mandate_audit::synthetic::{SyntheticSpec, write_synthetic_log};
use mandate_audit::{AuditIndex, CallQuery};

const RECORDS: u64 = 1_000_000;
const LIMIT: u64 = 1000;

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        records: RECORDS,
        seed: 1,
        users: 1000,
        agents: 10,
        segment_records: 100_000,
        ..SyntheticSpec::default()
    }
}

/// The cached log: generated on the first run, reused afterwards. A marker
/// written last says the generation finished.
fn bench_log() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let spec = spec();
    let dir = target.join("bench-data").join(format!(
        "query-{}-seed{}-users{}-agents{}",
        spec.records, spec.seed, spec.users, spec.agents
    ));
    let marker = dir.join("generated");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let (seq, hash) = write_synthetic_log(&dir, &spec).unwrap();
        std::fs::write(&marker, format!("{seq} {hash}\n")).unwrap();
        eprintln!(
            "generated {} records in {:.1} s into {}",
            spec.records,
            started.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    dir
}

fn query_by_identity(c: &mut Criterion) {
    let log = bench_log();
    let started = Instant::now();
    let (mut index, built) = AuditIndex::reindex(&log).unwrap();
    let index_bytes = std::fs::metadata(index.path()).unwrap().len();
    eprintln!(
        "built the index of {} records ({} calls) in {:.2} s; {:.0} MiB",
        built.records,
        built.calls,
        started.elapsed().as_secs_f64(),
        index_bytes as f64 / (1024.0 * 1024.0)
    );
    assert_eq!(built.records, RECORDS);

    let queries = [
        (
            "by_user",
            CallQuery {
                user: Some("user-42".into()),
                ..CallQuery::default()
            },
        ),
        (
            "by_agent",
            CallQuery {
                agent: Some("agent-3".into()),
                ..CallQuery::default()
            },
        ),
        (
            "by_session",
            CallQuery {
                session: Some(busiest_session(&index)),
                ..CallQuery::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("query");
    group.measurement_time(std::time::Duration::from_secs(10));
    for (name, query) in &queries {
        let query = CallQuery {
            limit: Some(LIMIT),
            ..query.clone()
        };
        let rows = index.query(&query).unwrap().len();
        let matching = index.count(&query).unwrap();
        eprintln!("{name}: {rows} rows ({matching} calls match)");
        assert!(rows > 0);
        group.bench_function(*name, |b| {
            b.iter(|| {
                index.catch_up().unwrap();
                black_box(index.query(black_box(&query)).unwrap())
            })
        });
    }
    let (_, by_user) = &queries[0];
    let by_user = CallQuery {
        limit: Some(LIMIT),
        ..by_user.clone()
    };
    group.bench_function("cold/by_user", |b| {
        b.iter(|| {
            let mut index = AuditIndex::open(&log).unwrap();
            index.catch_up().unwrap();
            black_box(index.query(black_box(&by_user)).unwrap())
        })
    });
    group.finish();
}

/// The session of user-42 with the most calls.
fn busiest_session(index: &AuditIndex) -> String {
    let calls = index
        .query(&CallQuery {
            user: Some("user-42".into()),
            ..CallQuery::default()
        })
        .unwrap();
    let mut sessions: Vec<(u64, String)> = Vec::new();
    for call in calls {
        let session = call.session_id.unwrap();
        let n = index
            .count(&CallQuery {
                session: Some(session.clone()),
                ..CallQuery::default()
            })
            .unwrap();
        sessions.push((n, session));
    }
    sessions.into_iter().max().unwrap().1
}

criterion_group!(benches, query_by_identity);
criterion_main!(benches);
