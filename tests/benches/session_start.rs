//! What a new session's sandbox costs, apart from the guard's own work, with
//! the scripted agent under `Runtime::new()` (default limits, epoch
//! interruption on, the pooling allocator), side by side in one run:
//!
//! - **sandbox**: `AgentComponent::sandbox` (a session place, a fresh
//!   `Store`, instantiation from the agent's pre-instantiated component with
//!   the pool's slots and its copy-on-write memory image) plus the first
//!   call into the guest: `Sandbox::run` of `{"calls": []}`, the agent's
//!   `run` export parsing its task and returning its report without calling
//!   a tool, then the store dropped and its slots handed back to the pool.
//!   The session is started in the guard before the clock starts and ended
//!   after it stops, so no audit record is in the figure. This is the
//!   figure of issue 7's goal (under 25 µs). `AgentComponent::run` is these
//!   same two calls between the guard's records;
//! - **sandbox + one call**: the same with `{"calls": [read_document]}`,
//!   against the same call made directly on `SessionGuard::call` of a
//!   started session: the difference is the sandbox plus one WIT round trip;
//! - **end to end**: `AgentComponent::run` of the one-call task (session
//!   start record, sandbox, call, session end record) against the same
//!   session made directly on the guard (`start_session`, one call, `end`).
//!
//! The tool does nothing and the log is on a tmpfs (`/dev/shm` unless
//! `ROUNDTRIP_BENCH_DIR=<dir>`).
//!
//! Run: `cargo bench -p mandate-tests --bench session_start`. Besides
//! criterion's report (single sessions, timed as above) it prints p50 and
//! p99 of single iterations from alternating rounds, the differences, and whether the other
//! core was idle meanwhile.

#[allow(dead_code)]
mod common;

#[path = "../../audit/benches/common/machine.rs"]
mod machine;

use machine::Machine;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ARGUMENTS, Setup, TOOL, check_report, micros, quantile, setup, task};
use criterion::{Criterion, criterion_group, criterion_main};
use mandate::pipeline::SessionGuard;
use mandate::runtime::RunOutcome;

/// Alternating rounds of the summary.
const ROUNDS: usize = 2000;

impl Setup {
    fn started(&self) -> Arc<SessionGuard> {
        let session = self.session();
        let guard = self.tokio.block_on(
            self.guard
                .start_session(session, Some(self.agent.digest().to_string())),
        );
        Arc::new(guard.expect("session"))
    }

    fn end(&self, guard: &SessionGuard) {
        self.tokio
            .block_on(guard.end(&Ok(String::new())))
            .expect("end");
    }

    /// The sandbox of a started session running `task`: how long from the
    /// sandbox's creation to its end, and of that, its creation.
    fn sandbox(&self, task: &str, calls: u64) -> (Duration, Duration) {
        let guard = self.started();
        let started = Instant::now();
        let (created, report) = self.tokio.block_on(async {
            let sandbox = self
                .agent
                .sandbox(Arc::clone(&guard))
                .await
                .expect("sandbox");
            let created = started.elapsed();
            (created, sandbox.run(task).await)
        });
        let elapsed = started.elapsed();
        match &report.outcome {
            RunOutcome::Finished(Ok(text)) => check_report(text, calls),
            other => panic!("{other:?}"),
        }
        self.end(&guard);
        (elapsed, created)
    }

    /// One call directly on a started session's guard.
    fn direct_call(&self) -> Duration {
        let guard = self.started();
        let started = Instant::now();
        let result = self.tokio.block_on(guard.call(TOOL, ARGUMENTS));
        let elapsed = started.elapsed();
        assert_eq!(result.as_deref(), Ok("{}"));
        self.end(&guard);
        elapsed
    }

    /// `AgentComponent::run` of `task`.
    fn run(&self, task: &str, calls: u64) -> Duration {
        let session = self.session();
        let started = Instant::now();
        let report = self
            .tokio
            .block_on(self.agent.run(&self.guard, session, task))
            .expect("run");
        let elapsed = started.elapsed();
        match &report.outcome {
            RunOutcome::Finished(Ok(text)) => check_report(text, calls),
            other => panic!("{other:?}"),
        }
        elapsed
    }

    /// The same session made directly on the guard: start, one call, end.
    fn direct_session(&self) -> Duration {
        let session = self.session();
        let started = Instant::now();
        self.tokio.block_on(async {
            let guard = self
                .guard
                .start_session(session, Some(self.agent.digest().to_string()))
                .await
                .expect("session");
            let result = guard.call(TOOL, ARGUMENTS).await;
            assert_eq!(result.as_deref(), Ok("{}"));
            guard.end(&Ok(String::new())).await.expect("end");
        });
        started.elapsed()
    }
}

fn summary(name: &str, xs: &[Duration]) -> String {
    format!(
        "{name} p50 {:.1} µs p99 {:.1} µs",
        micros(quantile(xs, 0.5)),
        micros(quantile(xs, 0.99))
    )
}

fn bench(c: &mut Criterion) {
    let machine = Machine::now();
    let setup = setup();
    let (no_calls, one_call) = (task(0), task(1));

    let mut group = c.benchmark_group("session_start");
    group.bench_function("sandbox", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.sandbox(&no_calls, 0).0).sum())
    });
    group.bench_function("sandbox_one_call", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.sandbox(&one_call, 1).0).sum())
    });
    group.bench_function("direct_call", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.direct_call()).sum())
    });
    group.bench_function("run_one_call", |b| b.iter(|| setup.run(&one_call, 1)));
    group.bench_function("direct_session", |b| b.iter(|| setup.direct_session()));
    group.finish();

    // Alternating rounds, so that every measurement sees the same machine.
    let (mut sandbox, mut created, mut sandbox_1, mut direct_1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut run_1, mut direct_session) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (total, create) = setup.sandbox(&no_calls, 0);
        sandbox.push(total);
        created.push(create);
        sandbox_1.push(setup.sandbox(&one_call, 1).0);
        direct_1.push(setup.direct_call());
        run_1.push(setup.run(&one_call, 1));
        direct_session.push(setup.direct_session());
    }
    let p50 = |xs: &[Duration]| micros(quantile(xs, 0.5));
    println!(
        "\nsession_start: {ROUNDS} alternating rounds, single iterations\n  {}\n    of which \
         AgentComponent::sandbox (store + instantiation) {}\n  {}\n  {}\n  sandbox + one call \
         adds {:.1} µs over the direct call ({:.2}x)\n  {}\n  {}\n  end to end, the sandbox \
         adds {:.1} µs ({:.2}x)\n  {}",
        summary("sandbox + first call (no tool call):", &sandbox),
        summary("", &created),
        summary("sandbox + first call with one tool call:", &sandbox_1),
        summary("the same call on SessionGuard::call:", &direct_1),
        p50(&sandbox_1) - p50(&direct_1),
        p50(&sandbox_1) / p50(&direct_1),
        summary("AgentComponent::run, one call:", &run_1),
        summary("the same session on the guard:", &direct_session),
        p50(&run_1) - p50(&direct_session),
        p50(&run_1) / p50(&direct_session),
        machine.report(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
