//! What the sandbox costs around the guard, with the scripted agent, side by side in one run:
//!
//! - the WIT round trip: the guest calling a cheap tool `N` times in one session
//!   (`{"calls": [read_document], "repeat": N, "tally": true}`: the guest counts the results
//!   rather than parsing and listing each) against the same session with no calls, and against
//!   the same `N` calls made directly on `SessionGuard::call`. Per call, the guest's cost is
//!   `(session with N calls - session with none) / N`; the difference from a direct call is what
//!   crossing the component boundary adds (argument and result strings copied in and out, the
//!   host import's bookkeeping, the fiber switches, the guest's own loop);
//! - a new session's sandbox plus its first call: `AgentComponent::run` of a one-call task (the
//!   session-start record, a fresh `Store`, instantiation from the pre-instantiated component,
//!   the call, the session-end record), against the same session made directly on the guard
//!   (`start_session`, one call, `end`): the difference is the sandbox.
//!
//! The tool is `read_document` doing nothing, and the log is on a tmpfs (`/dev/shm` unless
//! `ROUNDTRIP_BENCH_DIR=<dir>`), so neither a file read nor the disk is measured. The runtime
//! is `Runtime::new()` as shipped: default limits (epoch interruption on) and the pooling
//! instance allocator. The `session_start` bench measures the sandbox apart from the guard.
//!
//! Run: `cargo bench -p mandate-tests --bench roundtrip`. Besides criterion's report it prints
//! medians of alternating rounds and the differences in microseconds.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::{ARGUMENTS, Setup, TOOL, check_report, micros, setup, task};
use criterion::{Criterion, criterion_group, criterion_main};
use mandate::runtime::RunOutcome;

/// Calls per session in the round-trip measurement (the default limit is 1,000).
const N: u64 = 200;
/// Alternating rounds of the summary.
const ROUNDS: usize = 30;

impl Setup {
    /// One guest session making `calls` calls; how long it took.
    fn guest(&self, calls: u64) -> Duration {
        let task = task(calls);
        let session = self.session();
        let started = Instant::now();
        let report = self
            .tokio
            .block_on(self.agent.run(&self.guard, session, &task))
            .expect("run");
        let elapsed = started.elapsed();
        match &report.outcome {
            RunOutcome::Finished(Ok(text)) => check_report(text, calls),
            other => panic!("{other:?}"),
        }
        elapsed
    }

    /// The same session made directly on the guard: start, `calls` calls, end.
    fn direct(&self, calls: u64) -> Duration {
        let session = self.session();
        let started = Instant::now();
        self.tokio.block_on(async {
            let guard = self
                .guard
                .start_session(session, Some(self.agent.digest().to_string()))
                .await
                .expect("session");
            for _ in 0..calls {
                let result = guard.call(TOOL, ARGUMENTS).await;
                assert_eq!(result.as_deref(), Ok("{}"));
            }
            guard.end(&Ok(String::new())).await.expect("end");
        });
        started.elapsed()
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn bench(c: &mut Criterion) {
    let setup = setup();

    let mut group = c.benchmark_group("roundtrip");
    group.sample_size(20);
    group.bench_function(format!("guest_{N}_calls"), |b| b.iter(|| setup.guest(N)));
    group.bench_function(format!("direct_{N}_calls"), |b| b.iter(|| setup.direct(N)));
    group.bench_function("guest_no_calls", |b| b.iter(|| setup.guest(0)));
    group.finish();

    let mut group = c.benchmark_group("session");
    group.bench_function("guest_first_call", |b| b.iter(|| setup.guest(1)));
    group.bench_function("direct_first_call", |b| b.iter(|| setup.direct(1)));
    group.finish();

    // Alternating rounds, so that every measurement sees the same machine.
    let (mut guest_n, mut guest_0, mut direct_n) = (Vec::new(), Vec::new(), Vec::new());
    let (mut guest_1, mut direct_1) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        guest_n.push(setup.guest(N));
        guest_0.push(setup.guest(0));
        direct_n.push(setup.direct(N));
        guest_1.push(setup.guest(1));
        direct_1.push(setup.direct(1));
    }
    let (guest_n, guest_0, direct_n) = (median(guest_n), median(guest_0), median(direct_n));
    let (guest_1, direct_1) = (median(guest_1), median(direct_1));
    let per_guest_call = (micros(guest_n) - micros(guest_0)) / N as f64;
    let per_direct_call = micros(direct_n) / N as f64;
    println!(
        "\nroundtrip: medians of {ROUNDS} alternating rounds; sessions of {N} calls: guest \
         {:.0} µs, guest with no calls {:.0} µs, direct on SessionGuard {:.0} µs; per call: \
         through the guest {per_guest_call:.1} µs, direct {per_direct_call:.1} µs, the WIT \
         round trip adds {:.1} µs ({:.2}x)",
        micros(guest_n),
        micros(guest_0),
        micros(direct_n),
        per_guest_call - per_direct_call,
        per_guest_call / per_direct_call,
    );
    println!(
        "session: one-call session through the sandbox (AgentComponent::run) {:.0} µs, the \
         same made directly on the guard {:.0} µs: the sandbox (Store, instantiation, guest \
         run) adds {:.0} µs ({:.1}x)",
        micros(guest_1),
        micros(direct_1),
        micros(guest_1) - micros(direct_1),
        guest_1.as_secs_f64() / direct_1.as_secs_f64(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
