//! Ten hosts against one PostgreSQL at once: each runs sessions whose
//! emails are held in the shared approvals queue, and ships its log with a
//! `mandate audit ship --follow` process, while one reviewer decides (and
//! leaves some calls to time out). Mid-run the database is stopped and
//! started again, and shipping processes are killed (SIGKILL) and started
//! again. Afterwards:
//!
//! - every record of every host is in the database exactly once, byte for
//!   byte, and `mandate audit verify --database` passes for all ten;
//! - every held call was decided exactly once (approved or denied by the
//!   reviewer, as the queue says), timed out, or, while the database was
//!   down, refused because the queue could not be reached (fail closed);
//! - no email was sent without its decision record in the host's log, and
//!   every allowed email was sent.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::postgres::{DATABASE, Postgres};
use common::{Env, email_call, mandate_binary, read_call, read_records, session_with_id};
use mandate::pipeline::queue::{GrantScope, QueueDecision, Verdict};
use mandate_fleet::queue::{PgApprovalQueue, PgQueueReviewer};
use serde_json::{Value, json};

const HOSTS: usize = 10;
const ROUNDS: usize = 5;
/// Records each log holds before shipping starts, so that the first ship of
/// each host takes several batches and a kill can land in the middle.
const BACKLOG: u64 = 1500;

fn shipper(log: &Path, url: &str) -> Child {
    Command::new(mandate_binary())
        .args(["audit", "ship"])
        .arg(log)
        .args(["--database", url, "--follow", "--interval-ms", "50"])
        .env_remove("MANDATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Decides what is pending until told to stop: approves or denies by the
/// approval id's last digit, and leaves one in five to time out. Returns
/// the decisions the queue accepted.
async fn reviewer(url: String, stop: Arc<AtomicBool>) -> HashMap<String, Verdict> {
    let mut decided = HashMap::new();
    let mut skipped = HashSet::new();
    let queue = PgApprovalQueue::open(&url).unwrap();
    while !stop.load(Ordering::Relaxed) {
        // Errors while the database is down are expected; the next round tries again.
        if let Ok(pending) = queue.pending().await {
            for waiting in pending {
                let id = waiting.pending.approval_id.clone();
                let digit = id.bytes().last().unwrap_or(b'0') % 5;
                if digit == 0 || skipped.contains(&id) {
                    skipped.insert(id);
                    continue;
                }
                let verdict = if digit % 2 == 1 {
                    Verdict::Approve
                } else {
                    Verdict::Deny
                };
                let decision = QueueDecision {
                    verdict,
                    reviewer: "carol".into(),
                    reason: Some("fleet test".into()),
                    scope: GrantScope::Once,
                };
                if queue.decide(&id, &decision).await.is_ok() {
                    assert!(
                        decided.insert(id.clone(), verdict).is_none(),
                        "approval {id} was decided twice"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    decided
}

/// One host's sessions: each reads, sends an email (held for the
/// reviewer), reads again.
async fn host(env: Arc<Env>, host: usize) {
    for round in 0..ROUNDS {
        env.script_as(
            session_with_id(&format!("h{host}_s{round}")),
            json!([
                read_call("doc_88pk3r"),
                email_call(&format!("host {host} round {round}")),
                read_call("doc_88pk3r"),
            ]),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_hosts_ship_and_hold_calls_through_a_database_restart_and_killed_shippers() {
    let mut postgres = Postgres::start_migrated().await;
    let mut roles = vec![
        "CREATE ROLE carol LOGIN IN ROLE mandate_reviewer".to_owned(),
        "CREATE ROLE auditor LOGIN IN ROLE mandate_auditor".to_owned(),
    ];
    roles.extend((0..HOSTS).map(|h| format!("CREATE ROLE host_{h} LOGIN IN ROLE mandate_host")));
    postgres.psql(&roles.join("; "), DATABASE);
    // The URLs do not change when the server restarts.
    let template = postgres.url_for("__role__", DATABASE);
    let url = |role: &str| template.replacen("__role__", role, 1);

    let envs: Vec<Arc<Env>> = (0..HOSTS)
        .map(|h| {
            let queue = PgApprovalQueue::open(&url(&format!("host_{h}"))).unwrap();
            Arc::new(
                Env::builder()
                    .reviewer(PgQueueReviewer::new(queue))
                    .approval_timeout(Duration::from_secs(2))
                    .build(),
            )
        })
        .collect();
    // The backlog, appended on threads of their own (the writer's blocking
    // append is not for the test's runtime threads).
    std::thread::scope(|scope| {
        for env in &envs {
            scope.spawn(|| {
                for n in 0..BACKLOG {
                    env.guard
                        .audit()
                        .append(&json!({"kind": "note", "n": n}))
                        .unwrap();
                }
            });
        }
    });

    let mut shippers: Vec<Child> = envs
        .iter()
        .enumerate()
        .map(|(h, env)| shipper(&env.audit_path, &url(&format!("host_{h}"))))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let deciding = tokio::spawn(reviewer(url("carol"), stop.clone()));
    let hosts: Vec<_> = envs
        .iter()
        .enumerate()
        .map(|(h, env)| tokio::spawn(host(env.clone(), h)))
        .collect();

    // Shippers killed mid-ship (the backlog is still going in) and started again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (h, child) in shippers.iter_mut().enumerate().take(4) {
        kill(child);
        *child = shipper(&envs[h].audit_path, &url(&format!("host_{h}")));
    }
    // The database goes away for a while and comes back on the same data.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| postgres.stop());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| postgres.resume());
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (h, child) in shippers.iter_mut().enumerate().skip(4).take(3) {
        kill(child);
        *child = shipper(&envs[h].audit_path, &url(&format!("host_{h}")));
    }

    for task in hosts {
        task.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let decided = deciding.await.unwrap();
    for child in &mut shippers {
        kill(child);
    }
    // What the killed shippers left is shipped now, from where the database left off.
    for (h, env) in envs.iter().enumerate() {
        let mut database = mandate_fleet::connect(&url(&format!("host_{h}")))
            .await
            .unwrap();
        mandate_fleet::ship::ship(&mut database.client, &env.audit_path)
            .await
            .unwrap();
    }

    // Every record exactly once, byte for byte.
    let auditor = mandate_fleet::connect(&url("auditor")).await.unwrap();
    for (h, env) in envs.iter().enumerate() {
        let local: Vec<Vec<u8>> = mandate::audit::RecordReader::open(&env.audit_path)
            .unwrap()
            .map(|r| r.unwrap().bytes)
            .collect();
        let rows = auditor
            .client
            .query(
                "SELECT seq, line FROM audit_records WHERE host_id = $1 ORDER BY seq",
                &[&format!("host_{h}")],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), local.len(), "host_{h}: records in the database");
        for (n, (row, line)) in rows.iter().zip(&local).enumerate() {
            assert_eq!(row.get::<_, i64>(0), n as i64 + 1, "host_{h}: seqs");
            assert_eq!(
                row.get::<_, &[u8]>(1),
                line.as_slice(),
                "host_{h}: seq {}",
                n + 1
            );
        }
    }
    let verified = Command::new(mandate_binary())
        .args(["audit", "verify", "--database", &url("auditor")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        text.contains("ok: 10 hosts verified from the database"),
        "{text}"
    );

    // Every held call: decided exactly once as the queue says, timed out,
    // or refused while the queue was unreachable.
    let carol = mandate_fleet::connect(&url("carol")).await.unwrap();
    let queue: HashMap<String, (String, Option<String>)> = carol
        .client
        // A pending approval past its deadline reads as expired, as the queue
        // shows it: the host may have given up while the database was down.
        .query(
            "SELECT approval_id, CASE WHEN status = 'pending' AND deadline < now() \
             THEN 'expired' ELSE status END, reviewer FROM approvals",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let (mut approved, mut denied, mut timed_out, mut unreachable) = (0, 0, 0, 0);
    for (h, env) in envs.iter().enumerate() {
        let records = read_records(&env.audit_path);
        let emails: Vec<&Value> = records
            .iter()
            .filter(|r| r["kind"] == "decision" && r["action"]["tool"] == "send_email")
            .collect();
        assert_eq!(emails.len(), ROUNDS, "host_{h}: one email per session");
        let mut allowed = 0;
        for email in &emails {
            let approval = &email["approval"];
            let id = approval["approval_id"].as_str().unwrap_or_default();
            match approval["outcome"].as_str().unwrap() {
                "approved" => {
                    approved += 1;
                    allowed += 1;
                    assert_eq!(decided.get(id), Some(&Verdict::Approve), "host_{h}: {id}");
                    assert_eq!(queue[id], ("approved".to_owned(), Some("carol".to_owned())));
                    assert_eq!(email["decision"]["effect"], "allow");
                }
                "denied" => {
                    denied += 1;
                    assert_eq!(decided.get(id), Some(&Verdict::Deny), "host_{h}: {id}");
                    assert_eq!(queue[id], ("denied".to_owned(), Some("carol".to_owned())));
                }
                "timed_out" => {
                    timed_out += 1;
                    assert!(
                        !decided.contains_key(id),
                        "host_{h}: {id} decided and timed out"
                    );
                    assert_eq!(queue[id].0, "expired", "host_{h}: {id}");
                }
                "reviewer_failed" => {
                    unreachable += 1;
                    assert!(!decided.contains_key(id), "host_{h}: {id}");
                }
                other => panic!("host_{h}: approval {id} ended as {other}"),
            }
        }
        // No email left without its decision record, and every allowed one was sent.
        let sent = env.outbox();
        assert_eq!(sent.len(), allowed, "host_{h}: emails sent");
        for message in &sent {
            let body = message["body"].as_str().unwrap();
            let round = body
                .strip_prefix(&format!("host {h} round "))
                .unwrap_or_else(|| panic!("host_{h}: `{body}` is not this host's"));
            let session = format!("h{h}_s{round}");
            let decision = emails
                .iter()
                .find(|e| e["session_id"] == session.as_str())
                .unwrap_or_else(|| panic!("host_{h}: `{body}` sent without a decision record"));
            assert_eq!(
                decision["decision"]["effect"], "allow",
                "host_{h}: `{body}`"
            );
            assert!(
                records.iter().any(|o| o["kind"] == "outcome"
                    && o["call_id"] == decision["call_id"]
                    && o["outcome"]["status"] == "ok"),
                "host_{h}: `{body}` sent without its outcome record"
            );
        }
    }
    assert_eq!(
        approved + denied + timed_out + unreachable,
        HOSTS * ROUNDS,
        "every held call accounted for"
    );
    assert!(approved > 0 && denied > 0, "the reviewer decided both ways");
    assert_eq!(
        decided.len(),
        approved + denied,
        "every decision the queue accepted reached its host"
    );
    eprintln!(
        "held calls: {approved} approved, {denied} denied, {timed_out} timed out, {unreachable} refused while the queue was unreachable"
    );
}
