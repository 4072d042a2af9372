//! How soon a waiting host hears of a reviewer's decision, on a real
//! PostgreSQL 15 started by the bench (Unix socket, this machine):
//!
//! - **fleet queue**: a host's `PgQueueReviewer::review` future waits on a
//!   held call; a reviewer's `PgApprovalQueue::decide` (another login,
//!   another connection) returns; the figure is the time from that return
//!   to the host's future completing with the decision. The host learns of
//!   it by `NOTIFY` and reads the row once. Goal: p50 under 50 ms (the file
//!   queue's poll interval); it should be a few ms.
//! - **file queue**, for comparison: the same with `QueueReviewer` over a
//!   SQLite file and its 50 ms poll.
//!
//! Neither includes the guard's own work after the review (the third
//! evaluation, the records). Run: `cargo bench -p mandate-tests --bench
//! approval_wakeup`. It prints p50 and p99.

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use mandate::pipeline::queue::{ApprovalQueue, GrantScope, QueueDecision, QueueReviewer};
use mandate::pipeline::{
    AgentRef, Delegate, DelegateKind, PendingApproval, Reviewer, UserRef, Verdict,
};
use mandate::policy::DeterminingPolicy;
use mandate_fleet::queue::{PgApprovalQueue, PgQueueReviewer};
use postgres::{DATABASE, Postgres};

/// Measured rounds of each queue, after a few to warm up.
const FLEET_ROUNDS: usize = 500;
const FILE_ROUNDS: usize = 100;
const WARMUP: usize = 20;

fn quantile(xs: &[Duration], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort();
    xs[((xs.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

fn pending(id: &str) -> PendingApproval {
    PendingApproval {
        revealed: Default::default(),
        approval_id: id.into(),
        session_id: "sess_bench".into(),
        call_id: "sess_bench:1".into(),
        tool: "send_email".into(),
        arguments: serde_json::json!({"to": "bob@example.com"}),
        resource: "Tool::\"send_email\"".into(),
        user: UserRef {
            id: "alice".into(),
            email: "alice@example.com".into(),
        },
        agent: AgentRef {
            id: "document-summarizer".into(),
            name: "Document Summarizer".into(),
            version: "0.1.0".into(),
        },
        delegation_chain: vec![Delegate {
            kind: DelegateKind::User,
            id: "alice".into(),
        }],
        demanded_by: vec![DeterminingPolicy {
            id: "email-requires-approval".into(),
            reason: Some("humans review email".into()),
        }],
        deadline: Timestamp::now() + Duration::from_secs(60),
    }
}

fn approve() -> QueueDecision {
    QueueDecision {
        verdict: Verdict::Approve,
        reviewer: "carol".into(),
        reason: None,
        scope: GrantScope::Once,
    }
}

/// What one round measured.
struct Took {
    /// From `decide` returning to the host's review completing.
    after_return: Duration,
    /// From `decide` being called to the host's review completing.
    after_call: Duration,
}

/// One round: the host holds `id` through `reviewer` and waits; once the
/// call is in the queue (`visible`) and `settle` has passed, `decide` runs.
async fn round<R, V, D>(reviewer: &R, id: &str, settle: Duration, visible: V, decide: D) -> Took
where
    R: Reviewer + Clone,
    V: AsyncFn() -> bool,
    D: AsyncFn(),
{
    let (done, completed) = tokio::sync::oneshot::channel();
    let host = reviewer.clone();
    let held = pending(id);
    let waiting = tokio::spawn(async move {
        let decision = host.review(&held).await;
        let at = Instant::now();
        let _ = done.send((at, decision));
    });
    while !visible().await {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    // Settled into waiting, as a host is when a human decides; a human
    // decides at any moment of a poll's period.
    tokio::time::sleep(settle).await;
    let calling = Instant::now();
    decide().await;
    let decided = Instant::now();
    let (woke, decision) = completed.await.expect("the host's review");
    let decision = decision.expect("the host's review");
    assert_eq!(decision.decision, Verdict::Approve);
    waiting.await.expect("host task");
    Took {
        after_return: woke.saturating_duration_since(decided),
        after_call: woke.saturating_duration_since(calling),
    }
}

/// 2 to 51 ms, spread over the rounds.
fn settle(n: usize) -> Duration {
    Duration::from_millis(2 + (n as u64 * 37) % 50)
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let postgres = Postgres::start();
    let (fleet, file) = tokio.block_on(async {
        let mut owner = mandate_fleet::connect(&postgres.url())
            .await
            .expect("owner");
        mandate_fleet::migrate::migrate(&mut owner.client)
            .await
            .expect("migrate");
        postgres.psql(
            "CREATE ROLE host1 LOGIN IN ROLE mandate_host; \
             CREATE ROLE carol LOGIN IN ROLE mandate_reviewer",
            DATABASE,
        );
        let host = PgQueueReviewer::new(
            PgApprovalQueue::open(&postgres.url_for("host1", DATABASE)).expect("url"),
        );
        let carol = PgApprovalQueue::connect(&postgres.url_for("carol", DATABASE))
            .await
            .expect("carol");
        let mut fleet = Vec::new();
        for n in 0..WARMUP + FLEET_ROUNDS {
            let id = format!("apr:bench:{n}");
            let took = round(
                &host,
                &id,
                settle(n),
                async || carol.get(&id).await.expect("get").is_some(),
                async || {
                    carol.decide(&id, &approve()).await.expect("decide");
                },
            )
            .await;
            if n >= WARMUP {
                fleet.push(took);
            }
        }

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("approvals.sqlite");
        let host = QueueReviewer::new(ApprovalQueue::open(&path).expect("queue"));
        let reviewer = ApprovalQueue::open(&path).expect("queue");
        let mut file = Vec::new();
        for n in 0..WARMUP + FILE_ROUNDS {
            let id = format!("apr:bench:file:{n}");
            let took = round(
                &host,
                &id,
                settle(n),
                async || reviewer.get(&id).expect("get").is_some(),
                async || {
                    reviewer.decide(&id, &approve()).expect("decide");
                },
            )
            .await;
            if n >= WARMUP {
                file.push(took);
            }
        }
        (fleet, file)
    });
    let report = |name: &str, rounds: usize, took: &[Took]| {
        let returned: Vec<Duration> = took.iter().map(|t| t.after_return).collect();
        let called: Vec<Duration> = took.iter().map(|t| t.after_call).collect();
        println!(
            "  {name:<34} {rounds:>4} rounds  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms   (from the call to decide: p50 {:>7.2} ms  p99 {:>7.2} ms)",
            quantile(&returned, 0.5),
            quantile(&returned, 0.99),
            quantile(&returned, 1.0),
            quantile(&called, 0.5),
            quantile(&called, 0.99),
        );
    };
    println!("\napproval_wakeup: decide returned -> the waiting host's review completed");
    report("fleet queue (PostgreSQL, NOTIFY)", FLEET_ROUNDS, &fleet);
    report("file queue (SQLite, 50 ms poll)", FILE_ROUNDS, &file);
}
