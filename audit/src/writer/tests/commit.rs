//! Group commit: appends share syncs, and none returns before its own record is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{AuditConfig, AuditError, AuditLog, BodyError, Durability, Fault, FaultPlan};

fn open(dir: &Path, durability: Durability) -> AuditLog {
    AuditLog::open_with(
        dir,
        AuditConfig {
            durability,
            ..AuditConfig::default()
        },
    )
    .unwrap()
}

/// Appends `per_thread` records from each of `threads` threads; checks, as each append returns,
/// that the writer has already synced through its record.
fn append_concurrently(log: &AuditLog, threads: u64, per_thread: u64) -> Vec<u64> {
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let appended = log.append(&body(thread * 1000 + i, 100)).unwrap();
                            let durable = log.stats().durable_seq;
                            assert!(
                                durable >= appended.seq,
                                "seq {} returned before it was synced (synced through {durable})",
                                appended.seq
                            );
                            appended.seq
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    seqs.sort_unstable();
    seqs
}

#[test]
fn concurrent_appends_share_syncs_and_each_returns_only_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Durability::GroupCommit);
    // Slow syncs let appenders pile up behind each one, as they do on a real disk under load.
    log.faults().set(Some(FaultPlan::always(Fault::SlowSync(
        Duration::from_millis(5),
    ))));
    let before = log.stats().commits;
    let seqs = append_concurrently(&log, 16, 10);
    assert_eq!(seqs, (2..=161).collect::<Vec<_>>());
    let commits = log.stats().commits - before;
    assert!(
        commits < 160 / 2,
        "160 records took {commits} syncs: group commit did not share them"
    );
    log.faults().set(None);
    drop(log);
    let report = verified(dir.path());
    assert_eq!(report.head_seq, 161);
}

#[test]
fn per_record_durability_syncs_once_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Durability::PerRecord);
    let before = log.stats().commits;
    let seqs = append_concurrently(&log, 8, 10);
    assert_eq!(seqs, (2..=81).collect::<Vec<_>>());
    assert_eq!(log.stats().commits - before, 80);
    drop(log);
    assert_eq!(verified(dir.path()).head_seq, 81);
}

#[test]
fn async_appends_leave_the_runtime_free_while_they_wait() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Durability::GroupCommit));
    log.faults().set(Some(FaultPlan::always(Fault::SlowSync(
        Duration::from_millis(100),
    ))));
    let ticks = Arc::new(AtomicU64::new(0));
    // One thread runs everything: if an append blocked it, the ticker could not tick.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let seqs = runtime.block_on(async {
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let appends: Vec<_> = (0..20)
            .map(|n| tokio::spawn(log.append_async(&body(n, 50))))
            .collect();
        let mut seqs = Vec::new();
        for append in appends {
            seqs.push(append.await.unwrap().unwrap().seq);
        }
        ticker.abort();
        seqs
    });
    assert!(
        ticks.load(Ordering::Relaxed) >= 10,
        "the runtime's only thread was blocked while appends waited for their sync"
    );
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (2..=21).collect::<Vec<_>>());
}

#[test]
fn append_async_serializes_its_body_when_called() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Durability::GroupCommit);
    let future = {
        let body = json!({"kind": "note", "text": "owned by this block"});
        log.append_async(&body)
        // `body` is dropped here; the future does not borrow it.
    };
    let bad = log.append_async(&json!({"seq": 9}));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let appended = runtime.block_on(future).unwrap();
    assert_eq!(appended.seq, 2);
    let error = runtime.block_on(bad).unwrap_err();
    assert!(
        matches!(
            error,
            AuditError::Body {
                error: BodyError::ReservedKey { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(log.head().0, 2);
    drop(log);
    assert_eq!(records(dir.path())[1]["text"], "owned by this block");
}

#[test]
fn a_small_queue_makes_appenders_wait_for_room_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_with(
        dir.path(),
        AuditConfig {
            queue_capacity: 1,
            max_batch: 1,
            ..AuditConfig::default()
        },
    )
    .unwrap();
    let seqs = append_concurrently(&log, 8, 5);
    assert_eq!(seqs, (2..=41).collect::<Vec<_>>());
}

#[test]
fn a_closed_log_refuses_appends_and_releases_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Durability::GroupCommit);
    log.append(&body(1, 10)).unwrap();
    log.shutdown().unwrap();
    let error = log.append(&body(2, 10)).unwrap_err();
    assert!(matches!(error, AuditError::Closed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("audit log `{}` is closed", dir.path().display())
    );
    // Closing twice is fine; the lock is released while the handle still exists.
    log.shutdown().unwrap();
    let reopened = AuditLog::open(dir.path()).unwrap();
    assert_eq!(reopened.head(), log.head());
}
