//! The fleet database on this machine: a real PostgreSQL 15 (`fsync` on, its
//! data on the machine's disk, on a Unix socket), started by the bench.
//!
//! - **ship**: ten hosts ship their logs at once, each over its own
//!   connection and in its own name, 100,000 synthetic records each (the
//!   guard's record shapes: sessions, decisions, outcomes): records per
//!   second into the database, query rows included.
//! - **query by user**: those one million records, `mandate audit query
//!   --database --user U` across hosts (`mandate_fleet::query::query`, limit
//!   1,000 as the CLI's default) for random users: p50 and p99 (goal: p50
//!   under 20 ms).
//!
//! Run: `cargo bench -p mandate-tests --bench fleet`. The log generation is
//! not timed. It says whether another process was busy on the machine.

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use mandate::audit::CallQuery;
use mandate::audit::synthetic::{SyntheticSpec, write_synthetic_log};
use postgres::{DATABASE, Postgres};

const HOSTS: u64 = 10;
const RECORDS_PER_HOST: u64 = 100_000;
const USERS: u64 = 1000;
const QUERIES: usize = 500;

fn quantile(xs: &[Duration], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort();
    xs[((xs.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

/// The load average over the last minute, to say whether the machine was quiet.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let postgres = Postgres::start_durable();
    let scratch = tempfile::tempdir().expect("scratch");
    let logs: Vec<_> = (0..HOSTS)
        .map(|host| {
            let dir = scratch.path().join(format!("host{host}"));
            std::fs::create_dir(&dir).expect("log dir");
            let spec = SyntheticSpec {
                records: RECORDS_PER_HOST,
                seed: host + 1,
                users: USERS,
                agents: 20,
                ..SyntheticSpec::default()
            };
            write_synthetic_log(&dir, &spec).expect("synthetic log");
            dir
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let owner = runtime.block_on(async {
        let mut owner = mandate_fleet::connect(&postgres.url())
            .await
            .expect("connect");
        mandate_fleet::migrate::migrate(&mut owner.client)
            .await
            .expect("migrate");
        owner
    });
    for host in 0..HOSTS {
        postgres.psql(
            &format!("CREATE ROLE host{host} LOGIN IN ROLE mandate_host"),
            DATABASE,
        );
    }
    let before = load();
    let (elapsed, calls) = runtime.block_on(async {
        let started = Instant::now();
        let shipping: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(host, dir)| {
                let url = postgres.url_for(&format!("host{host}"), DATABASE);
                let dir = dir.clone();
                tokio::spawn(async move {
                    let mut database = mandate_fleet::connect(&url).await.expect("connect");
                    mandate_fleet::ship::ship(&mut database.client, &dir)
                        .await
                        .expect("ship")
                })
            })
            .collect();
        let mut shipped = 0;
        for task in shipping {
            shipped += task.await.expect("ship task").shipped;
        }
        let elapsed = started.elapsed();
        assert_eq!(shipped, HOSTS * RECORDS_PER_HOST);
        owner
            .client
            .batch_execute("ANALYZE audit_records, audit_calls, audit_call_outcomes")
            .await
            .expect("analyze");
        let calls: i64 = owner
            .client
            .query_one("SELECT count(*) FROM audit_calls", &[])
            .await
            .expect("count")
            .get(0);
        (elapsed, calls)
    });
    let records = HOSTS * RECORDS_PER_HOST;
    println!(
        "ship: {records} records ({calls} calls) from {HOSTS} hosts at once in {:.2} s: {:.0} records/s (load before: {before})",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64()
    );

    let before = load();
    let (times, rows) = runtime.block_on(async {
        let auditor = "bench_auditor";
        postgres.psql(
            &format!("CREATE ROLE {auditor} LOGIN IN ROLE mandate_auditor"),
            DATABASE,
        );
        let database = mandate_fleet::connect(&postgres.url_for(auditor, DATABASE))
            .await
            .expect("connect");
        let mut times = Vec::with_capacity(QUERIES);
        let mut rows = 0;
        // A fixed stride through the users: every query asks for another one.
        for n in 0..QUERIES as u64 {
            let user = format!("user-{}", (n * 389) % USERS);
            let query = CallQuery {
                user: Some(user),
                limit: Some(1000),
                ..CallQuery::default()
            };
            let started = Instant::now();
            let found = mandate_fleet::query::query(&database.client, &query, None)
                .await
                .expect("query");
            times.push(started.elapsed());
            rows += found.len();
        }
        (times, rows)
    });
    assert!(rows > 0, "the users asked for have calls");
    println!(
        "query by user across hosts, {records} records: p50 {:.2} ms, p99 {:.2} ms ({QUERIES} queries, {:.0} rows each on average; load before: {before})",
        quantile(&times, 0.5),
        quantile(&times, 0.99),
        rows as f64 / QUERIES as f64
    );
}
