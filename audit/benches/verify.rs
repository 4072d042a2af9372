//! Verification speed against SHA-256 over the same bytes.
//!
//! Issue 3 asks that `mandate audit verify` run at no less than 60% of the speed of hashing the
//! log's bytes with SHA-256. Both are measured here in the same run, on the same synthetic log
//! (about 150 MB in three segments, written under `target/`), reading the files the same way:
//! 1 MiB reads of each segment file, which the page cache serves after the first pass.
//!
//! Criterion reports each on its own; the summary at the end alternates the two, one pass each
//! per round, so that other load on the machine hits both alike, and prints their medians and
//! the ratio.
//!
//! ```text
//! cargo bench -p mandate-audit --bench verify
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mandate_audit::synthetic::{SyntheticSpec, write_synthetic_log};
use mandate_audit::{VerifyOptions, list_segments, verify_log};
use sha2::{Digest, Sha256};

/// About 900 bytes per record: some 150 MB.
const RECORDS: u64 = 165_000;
/// About 55 MB per segment.
const SEGMENT_RECORDS: u64 = 60_000;
/// Rounds of the interleaved summary.
const ROUNDS: usize = 15;

struct Fixture {
    _dir: tempfile::TempDir,
    log: PathBuf,
    segments: Vec<PathBuf>,
    bytes: u64,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn fixture() -> Fixture {
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("verify-bench-")
        .tempdir_in(&target)
        .unwrap();
    let log = dir.path().join("log");
    let spec = SyntheticSpec {
        records: RECORDS,
        segment_records: SEGMENT_RECORDS,
        ..SyntheticSpec::default()
    };
    write_synthetic_log(&log, &spec).unwrap();
    let segments: Vec<PathBuf> = list_segments(&log)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    let bytes = segments
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    Fixture {
        _dir: dir,
        log,
        segments,
        bytes,
    }
}

/// SHA-256 of each segment file, read in 1 MiB chunks like the verifier reads it.
fn sha256_files(segments: &[PathBuf], buf: &mut [u8]) -> u8 {
    let mut last = 0;
    for path in segments {
        let mut file = File::open(path).unwrap();
        let mut hasher = Sha256::new();
        loop {
            let read = file.read(buf).unwrap();
            if read == 0 {
                break;
            }
            hasher.update(&buf[..read]);
        }
        last ^= hasher.finalize()[0];
    }
    last
}

fn verify(log: &Path) -> u64 {
    verify_log(log, &VerifyOptions::default()).unwrap().head_seq
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64() / 1e6
}

fn bench(c: &mut Criterion) {
    let fixture = fixture();
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(verify(&fixture.log), RECORDS);

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(fixture.bytes));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("sha256_of_the_files", |b| {
        b.iter(|| sha256_files(&fixture.segments, &mut buf))
    });
    group.bench_function("verify_log", |b| b.iter(|| verify(&fixture.log)));
    group.finish();

    let (mut sha, mut ver) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        std::hint::black_box(sha256_files(&fixture.segments, &mut buf));
        sha.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(verify(&fixture.log));
        ver.push(start.elapsed());
    }
    let (sha, ver) = (median(sha), median(ver));
    println!(
        "\nverify summary: {} records, {:.1} MB in {} segments, median of {ROUNDS} alternating rounds",
        RECORDS,
        fixture.bytes as f64 / 1e6,
        fixture.segments.len()
    );
    println!(
        "  sha256 of the files  {:>8.1} ms  {:>7.0} MB/s",
        sha.as_secs_f64() * 1e3,
        mb_per_s(fixture.bytes, sha)
    );
    println!(
        "  verify_log           {:>8.1} ms  {:>7.0} MB/s",
        ver.as_secs_f64() * 1e3,
        mb_per_s(fixture.bytes, ver)
    );
    println!(
        "  verify / sha256 throughput: {:.0}% (goal: at least 60%)\n",
        100.0 * sha.as_secs_f64() / ver.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
