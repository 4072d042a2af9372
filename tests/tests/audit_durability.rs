//! Crash safety: a real writer process is killed with SIGKILL at random moments, many times
//! over one log. After each kill the log is reopened (repairing a torn tail if there is one)
//! and must hold every record the writer had reported durable, and verify.
//!
//! The writer is this test binary itself, re-run with `--exact durability_child_writer
//! --ignored` and the log directory in an environment variable; it prints
//! `durable <seq> <thread> <n>` after each append returns.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mandate::audit::{AuditConfig, AuditLog, RecordReader, TORN_DIR, verify_file};
use serde_json::{Value, json};

/// Set in the child: the log directory to write to.
const CHILD_DIR: &str = "MANDATE_DURABILITY_CHILD_DIR";
const ITERATIONS: u32 = 30;
/// Kills stop early after this long (on a slow machine), once `MIN_ITERATIONS` are done.
const TIME_BUDGET: Duration = Duration::from_secs(20);
const MIN_ITERATIONS: u32 = 10;
/// Small segments, so that kills also land around rotations.
const SEGMENT_BYTES: u64 = 64 * 1024;

fn config() -> AuditConfig {
    AuditConfig {
        segment_max_bytes: SEGMENT_BYTES,
        ..AuditConfig::default()
    }
}

/// The writer process: four threads appending records of varied size until killed (or after
/// a while, should the parent be gone).
#[test]
#[ignore = "the writer half of every_record_reported_durable_survives_kill_9; runs as its child"]
fn durability_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let log = Arc::new(AuditLog::open_with(&dir, config()).unwrap());
    println!("open");
    let deadline = Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let size = 20 + ((n * 7919 + thread * 104_729) % 600) as usize;
                    let body =
                        json!({"kind": "note", "thread": thread, "n": n, "text": "x".repeat(size)});
                    let appended = log.append(&body).unwrap();
                    println!("durable {} {thread} {n}", appended.seq);
                    n += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and printed, so that a
/// failing run can be told apart.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the log holds: each record's (thread, n) by seq, and the torn copies it names.
fn read_log(dir: &Path) -> (HashMap<u64, Value>, HashSet<String>) {
    let mut records = HashMap::new();
    let mut set_aside = HashSet::new();
    for raw in RecordReader::open(dir).unwrap() {
        let record: Value = serde_json::from_slice(&raw.unwrap().bytes).unwrap();
        if record["kind"] == "repair" {
            set_aside.insert(record["set_aside"].as_str().unwrap().to_owned());
        }
        records.insert(record["seq"].as_u64().unwrap(), record);
    }
    (records, set_aside)
}

#[test]
fn every_record_reported_durable_survives_kill_9_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut reported_total = 0usize;
    let mut killed_while_writing = 0u32;

    let mut iterations = 0;
    for iteration in 0..ITERATIONS {
        if iteration >= MIN_ITERATIONS && started.elapsed() > TIME_BUDGET {
            break;
        }
        iterations += 1;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability_child_writer",
                "--nocapture",
                "--ignored",
            ])
            .env(CHILD_DIR, &log_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (opened, open) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut durable = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "open" {
                    let _ = opened.send(());
                    continue;
                }
                let mut words = line.split_whitespace();
                if words.next() != Some("durable") {
                    continue;
                }
                let mut number = || words.next().unwrap().parse::<u64>().unwrap();
                durable.push((number(), number(), number()));
            }
            durable
        });
        // Every other kill comes at a random moment from the start, often before the log is
        // open (a kill during repair); the others at a random moment after it opened, well into
        // the writing. Opening verifies the log's unsigned tail, which in this log (no
        // checkpoints) is all of it and grows with every iteration, so a delay counted from the
        // start alone would land in the writing less and less often.
        if iteration % 2 == 1 {
            let _ = open.recv_timeout(Duration::from_secs(30));
        }
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        child.kill().unwrap();
        child.wait().unwrap();
        let durable = reader.join().unwrap();

        // Reopening repairs whatever the kill left.
        AuditLog::open_with(&log_dir, config())
            .unwrap()
            .close()
            .unwrap();
        let (records, set_aside) = read_log(&log_dir);
        for (seq, thread, n) in &durable {
            let record = records
                .get(seq)
                .unwrap_or_else(|| panic!("iteration {iteration}: seq {seq} was reported durable but is gone (seed {seed})"));
            assert_eq!(
                (record["thread"].as_u64(), record["n"].as_u64()),
                (Some(*thread), Some(*n)),
                "iteration {iteration}: seq {seq} holds another record (seed {seed})"
            );
        }
        let report = verify_file(&log_dir).unwrap_or_else(|e| {
            panic!("iteration {iteration}: the log does not verify: {e} (seed {seed})")
        });
        assert_eq!(report.head_seq as usize, records.len());
        // Every torn tail set aside is named by a repair record.
        if let Ok(entries) = std::fs::read_dir(log_dir.join(TORN_DIR)) {
            for entry in entries {
                let name = format!(
                    "{TORN_DIR}/{}",
                    entry.unwrap().file_name().to_str().unwrap()
                );
                assert!(
                    set_aside.contains(&name),
                    "{name} is not recorded (seed {seed})"
                );
            }
        }
        reported_total += durable.len();
        killed_while_writing += u32::from(!durable.is_empty());
    }
    let (records, _) = read_log(&log_dir);
    let repairs = records.values().filter(|r| r["kind"] == "repair").count();
    eprintln!(
        "{iterations} kills in {:.1?}: {reported_total} records reported durable, \
         {killed_while_writing} kills while writing, {repairs} torn tails repaired, log of {} segments",
        started.elapsed(),
        mandate::audit::list_segments(&log_dir).unwrap().len()
    );
    assert!(
        killed_while_writing >= iterations / 3,
        "too few kills landed while the writer was appending ({killed_while_writing})"
    );
}
