//! What epoch interruption costs a compute-bound guest: the scripted agent
//! hashing integers (`{"compute": N}`, no tool calls), run as a whole session
//! under a runtime with the CPU-time limit (epoch interruption, a yield every
//! tick) and under one without (`cpu_time: None`), side by side in one run.
//! The goal is under 10% more time with interruption.
//!
//! Run: `cargo bench -p mandate-tests --bench epoch`. Besides criterion's
//! report it prints the median of each and their ratio.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mandate::audit::AuditLog;
use mandate::limits::SessionLimits;
use mandate::pipeline::{Guard, Session};
use mandate::policy::Policies;
use mandate::runtime::{AgentComponent, RunOutcome, Runtime};
use mandate::tools::{Workspace, example_registry};

/// Rounds of hashing per session: long enough (tens of milliseconds) that
/// starting and ending the session is noise.
const ROUNDS: u64 = 30_000_000;

struct Setup {
    _dir: tempfile::TempDir,
    guard: Guard,
    session: Session,
    tokio: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let policies = Policies::load_dir(&policies_dir).expect("example policies");
    let audit = AuditLog::open(dir.path().join("audit")).expect("audit log");
    let tools = example_registry(&Workspace::new(dir.path())).expect("tools");
    let guard = Guard::builder(policies, audit)
        .tools(tools)
        .build()
        .expect("guard");
    let session = Session::from_file(&policies_dir.join("session.json")).expect("session");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    Setup {
        _dir: dir,
        guard,
        session,
        tokio,
    }
}

fn agent(runtime: &Runtime) -> AgentComponent {
    runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .expect("scripted agent")
}

/// Runs one compute session; returns how long it took.
fn run(setup: &Setup, agent: &AgentComponent, n: u64) -> Duration {
    let task = format!(r#"{{"compute": {ROUNDS}}}"#);
    let mut session = setup.session.clone();
    session.session_id = format!("sess_bench_{n}");
    let started = Instant::now();
    let report = setup
        .tokio
        .block_on(agent.run(&setup.guard, session, &task))
        .expect("run");
    let elapsed = started.elapsed();
    assert!(
        matches!(report.outcome, RunOutcome::Finished(Ok(_))),
        "{:?}",
        report.outcome
    );
    elapsed
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn bench(c: &mut Criterion) {
    let setup = setup();
    let with_epochs = Runtime::with_limits(SessionLimits::default()).expect("runtime");
    let without = Runtime::with_limits(SessionLimits {
        cpu_time: None,
        ..SessionLimits::default()
    })
    .expect("runtime");
    let (interrupted, plain) = (agent(&with_epochs), agent(&without));

    let mut group = c.benchmark_group("compute_session");
    group.sample_size(20);
    let mut n = 0u64;
    group.bench_function("epoch_interruption", |b| {
        b.iter(|| {
            n += 1;
            run(&setup, &interrupted, n)
        })
    });
    group.bench_function("no_interruption", |b| {
        b.iter(|| {
            n += 1;
            run(&setup, &plain, n)
        })
    });
    group.finish();

    // Alternating pairs, so that both see the same machine.
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        n += 1;
        on.push(run(&setup, &interrupted, n));
        n += 1;
        off.push(run(&setup, &plain, n));
    }
    let (on, off) = (median(on), median(off));
    println!(
        "\nepoch: {ROUNDS} rounds per session, medians of 20 alternating pairs: \
         with epoch interruption {:.1} ms, without {:.1} ms, cost {:+.1}%",
        on.as_secs_f64() * 1e3,
        off.as_secs_f64() * 1e3,
        (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
