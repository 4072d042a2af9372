//! Leaders and followers: an appender that finds the writer idle commits its own record on its
//! own thread; concurrent appenders still share commits through the writer thread.

use std::sync::{Arc, Barrier, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use super::*;
use crate::{AuditError, AuditLog, Fault, FaultPlan};

/// A directory on a tmpfs where there is one, so that syncs are quick even while other tests
/// load the disk (an async appender leads only while syncs take under a millisecond).
fn quick_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// The thread that made the log's last commit.
fn last_committer(log: &AuditLog) -> Option<ThreadId> {
    *log.shared
        .last_committer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn a_lone_appender_commits_its_own_records_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let before = log.stats();
    for n in 0..20 {
        let appended = log.append(&body(n, 50)).unwrap();
        assert_eq!(last_committer(&log), Some(std::thread::current().id()));
        assert_eq!(log.stats().durable_seq, appended.seq);
    }
    let after = log.stats();
    assert_eq!(after.led_appends - before.led_appends, 20);
    assert_eq!(after.commits - before.commits, 20, "one commit per record");
    drop(log);
    assert_eq!(verified(dir.path()).head_seq, 21);
}

#[test]
fn an_async_append_on_a_multi_thread_runtime_commits_its_own_record() {
    let dir = quick_dir();
    let log = AuditLog::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (appended, committer, worker) = runtime.block_on(async {
        tokio::spawn({
            let append = log.append_async(&body(1, 50));
            let shared = Arc::clone(&log.shared);
            async move {
                let appended = append.await;
                let committer = *shared
                    .last_committer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                (appended, committer, std::thread::current().id())
            }
        })
        .await
        .unwrap()
    });
    assert_eq!(appended.unwrap().seq, 2);
    assert_eq!(
        committer,
        Some(worker),
        "not committed on the polling worker"
    );
    assert_eq!(log.stats().led_appends, 1);
}

#[test]
fn async_appends_queue_on_a_current_thread_runtime_and_after_a_slow_sync() {
    let dir = quick_dir();
    let log = AuditLog::open(dir.path()).unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    current.block_on(log.append_async(&body(1, 50))).unwrap();
    assert_eq!(
        log.stats().led_appends,
        0,
        "led on a current-thread runtime"
    );
    assert_ne!(last_committer(&log), Some(std::thread::current().id()));

    // A blocking append leads whatever the disk, and measures its slow sync.
    log.faults().set(Some(FaultPlan::always(Fault::SlowSync(
        Duration::from_millis(5),
    ))));
    log.append(&body(2, 50)).unwrap();
    assert_eq!(log.stats().led_appends, 1);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    multi
        .block_on(multi.spawn(log.append_async(&body(3, 50))))
        .unwrap()
        .unwrap();
    assert_eq!(log.stats().led_appends, 1, "led after a slow sync");
    // Once the writer thread's syncs are quick again, async appenders lead again.
    log.faults().set(None);
    multi
        .block_on(multi.spawn(log.append_async(&body(4, 50))))
        .unwrap()
        .unwrap();
    multi
        .block_on(multi.spawn(log.append_async(&body(5, 50))))
        .unwrap()
        .unwrap();
    assert_eq!(log.stats().led_appends, 2);
    drop(log);
    assert_eq!(verified(dir.path()).head_seq, 6);
}

#[test]
fn a_refused_append_on_its_own_thread_leaves_the_chain_and_the_next_writes_the_outage() {
    for fault in [Fault::Io, Fault::SyncFails, Fault::DiskFull] {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&body(1, 10)).unwrap();
        let head = log.head();
        let bytes = fs::read(first_segment(dir.path())).unwrap();
        let led = log.stats().led_appends;

        log.faults().set(Some(FaultPlan {
            fault,
            skip: 0,
            count: Some(1),
        }));
        let error = log.append(&body(2, 10)).unwrap_err();
        assert!(matches!(error, AuditError::Write { .. }), "{error:?}");
        assert_eq!(log.stats().led_appends, led + 1, "{fault:?}: not led");
        assert_eq!(log.head(), head, "{fault:?}");
        assert_eq!(fs::read(first_segment(dir.path())).unwrap(), bytes);

        let resumed = log.append(&body(3, 10)).unwrap();
        assert_eq!(log.stats().led_appends, led + 2);
        assert_eq!(resumed.seq, head.0 + 2, "the outage record comes first");
        drop(log);
        let records = records(dir.path());
        let outage = &records[records.len() - 2];
        assert_eq!(outage["kind"], "audit_outage", "{fault:?}");
        assert_eq!(outage["refused_appends"], 1);
        assert_eq!(outage["error"], error.to_string());
        assert_eq!(records[records.len() - 1]["n"], 3);
        verified(dir.path());
    }
}

#[test]
fn seqs_follow_file_order_when_leaders_and_the_writer_thread_both_commit() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    // Syncs slow enough that appenders arriving together find a commit under way.
    log.faults().set(Some(FaultPlan::always(Fault::SlowSync(
        Duration::from_millis(1),
    ))));
    let lone = log.append(&body(0, 40)).unwrap();
    let start = Barrier::new(THREADS as usize);
    let returned: Vec<(u64, Vec<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=THREADS)
            .map(|thread| {
                let (log, start) = (&log, &start);
                scope.spawn(move || {
                    start.wait();
                    let seqs: Vec<u64> = (0..PER_THREAD)
                        .map(|i| {
                            if i % 3 == thread % 3 {
                                // Now and then alone for a moment.
                                std::thread::sleep(Duration::from_micros(300));
                            }
                            log.append(&body(thread * 1000 + i, 40)).unwrap().seq
                        })
                        .collect();
                    (thread, seqs)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    log.faults().set(None);
    let stats = log.stats();
    let records_appended = THREADS * PER_THREAD + 1;
    assert!(stats.led_appends >= 1, "{stats:?}");
    assert!(
        stats.led_appends < records_appended,
        "every append led: {stats:?}"
    );
    assert!(
        stats.commits < records_appended,
        "no commit was shared: {stats:?}"
    );
    drop(log);

    // Each append got the seq of the line that holds its body, every seq once, in file order.
    let records = records(dir.path());
    let by_seq: std::collections::HashMap<u64, u64> = records
        .iter()
        .filter(|r| r["kind"] == "note")
        .map(|r| (r["seq"].as_u64().unwrap(), r["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_seq.get(&lone.seq), Some(&0));
    for (thread, seqs) in &returned {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{thread}: {seqs:?}");
        for (i, seq) in seqs.iter().enumerate() {
            assert_eq!(by_seq.get(seq), Some(&(thread * 1000 + i as u64)));
        }
    }
    let file_seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(file_seqs, (1..=records_appended + 1).collect::<Vec<_>>());
    verified(dir.path());
}
