//! The auditor's side of the fleet database, through the `mandate` binary:
//! `fleet migrate`, `audit ship` (and `--status`), then `audit verify`,
//! `audit query` and `audit replay` from the database alone, across hosts;
//! and tampering in the database (a record changed or deleted, a query row
//! forged) found by `audit verify --database`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::postgres::{DATABASE, Postgres};
use common::{Env, email_call, mandate_binary, policies_dir, read_call, session_with_id};
use serde_json::Value;

fn mandate(args: &[&str]) -> Output {
    Command::new(mandate_binary())
        .args(args)
        .env_remove("MANDATE_DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A host's log with a few calls: reads allowed, an email held and denied
/// by the deny-all reviewer.
async fn host_log(env: &Env, session: &str) {
    env.script_as(
        session_with_id(session),
        serde_json::json!([
            read_call("doc_88pk3r"),
            email_call("hello"),
            read_call("doc_88pk3r")
        ]),
    )
    .await;
}

fn ship(log: &Path, url: &str) -> String {
    ok(mandate(&[
        "audit",
        "ship",
        log.to_str().unwrap(),
        "--database",
        url,
    ]))
}

#[tokio::test]
async fn two_hosts_ship_and_an_auditor_verifies_queries_and_replays_from_the_database_alone() {
    let postgres = Postgres::start();
    let owner = postgres.url();
    let migrated = ok(mandate(&["fleet", "migrate", "--database", &owner]));
    assert!(migrated.contains("applied migration"), "{migrated}");
    let again = ok(mandate(&["fleet", "migrate", "--database", &owner]));
    assert!(again.contains("nothing to do"), "{again}");
    for (role, group) in [
        ("host_a", "mandate_host"),
        ("host_b", "mandate_host"),
        ("auditor", "mandate_auditor"),
    ] {
        postgres.psql(
            &format!("CREATE ROLE {role} LOGIN IN ROLE {group}"),
            DATABASE,
        );
    }
    let auditor = postgres.url_for("auditor", DATABASE);

    let a = Env::example();
    let b = Env::example();
    host_log(&a, "sess_a_1").await;
    host_log(&b, "sess_b_1").await;

    let url_a = postgres.url_for("host_a", DATABASE);
    let shipped = ship(&a.audit_path, &url_a);
    assert!(shipped.starts_with("shipped "), "{shipped}");
    assert!(shipped.contains("host host_a (seq 1..="), "{shipped}");
    ship(&b.audit_path, &postgres.url_for("host_b", DATABASE));

    // More calls on host a: the status shows the lag until it ships again.
    host_log(&a, "sess_a_2").await;
    let local_head = a.guard.audit().head().0;
    let status = ok(mandate(&[
        "audit",
        "ship",
        a.audit_path.to_str().unwrap(),
        "--database",
        &url_a,
        "--status",
    ]));
    assert!(
        status.contains(&format!("local log at seq {local_head}")),
        "{status}"
    );
    assert!(!status.contains("lag 0 records"), "{status}");
    ship(&a.audit_path, &url_a);
    let status = ok(mandate(&[
        "audit",
        "ship",
        a.audit_path.to_str().unwrap(),
        "--database",
        &url_a,
        "--status",
    ]));
    assert!(status.contains("lag 0 records"), "{status}");
    let again = ship(&a.audit_path, &url_a);
    assert!(again.starts_with("nothing new to ship"), "{again}");

    // Verify from the database alone: both chains.
    let verified = ok(mandate(&["audit", "verify", "--database", &auditor]));
    assert!(
        verified.contains(&format!("ok: host host_a: {local_head} records")),
        "{verified}"
    );
    assert!(verified.contains("ok: host host_b:"), "{verified}");
    assert!(
        verified.contains("ok: 2 hosts verified from the database"),
        "{verified}"
    );

    // Query across hosts: the same rows as each host's local index, with the host.
    let across = json_lines(&ok(mandate(&[
        "audit",
        "query",
        "--database",
        &auditor,
        "--user",
        "alice",
        "--format",
        "json",
    ])));
    let local_a = json_lines(&ok(mandate(&[
        "audit",
        "query",
        a.audit_path.to_str().unwrap(),
        "--user",
        "alice",
        "--format",
        "json",
    ])));
    let local_b = json_lines(&ok(mandate(&[
        "audit",
        "query",
        b.audit_path.to_str().unwrap(),
        "--user",
        "alice",
        "--format",
        "json",
    ])));
    assert_eq!(across.len(), local_a.len() + local_b.len());
    assert_eq!(local_a.len(), 6, "three calls in each of two sessions");
    let of = |host: &str| -> Vec<Value> {
        across
            .iter()
            .filter(|r| r["host_id"] == host)
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("host_id");
                r
            })
            .collect()
    };
    assert_eq!(of("host_a"), local_a);
    assert_eq!(of("host_b"), local_b);
    let denied = json_lines(&ok(mandate(&[
        "audit",
        "query",
        "--database",
        &auditor,
        "--tool",
        "send_email",
        "--decision",
        "deny",
        "--format",
        "json",
    ])));
    assert_eq!(denied.len(), 3, "one held and denied email per session");
    assert!(
        denied.iter().all(|r| r["approval_outcome"] == "denied"),
        "{denied:?}"
    );
    let table = ok(mandate(&[
        "audit",
        "query",
        "--database",
        &auditor,
        "--host",
        "host_b",
    ]));
    assert!(table.starts_with("time "), "{table}");
    assert!(
        table.contains(" host ") && table.contains("host_b"),
        "{table}"
    );
    assert!(!table.contains("host_a"), "{table}");
    assert!(table.trim_end().ends_with("3 calls"), "{table}");

    // Replay from the database: the same policies change nothing.
    let replayed = ok(mandate(&[
        "audit",
        "replay",
        "--database",
        &auditor,
        "--policies",
        policies_dir().to_str().unwrap(),
    ]));
    assert!(replayed.contains("host host_a:"), "{replayed}");
    assert!(replayed.contains("host host_b:"), "{replayed}");
    assert!(replayed.contains("0 changed"), "{replayed}");

    // A host may not read another host's records; an auditor may not ship.
    let denied = mandate(&["audit", "query", "--database", &url_a, "--host", "host_b"]);
    assert!(denied.status.success());
    assert!(
        stdout(&denied).trim_end().ends_with("0 calls"),
        "{}",
        stdout(&denied)
    );
    let refused = mandate(&[
        "audit",
        "ship",
        b.audit_path.to_str().unwrap(),
        "--database",
        &auditor,
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("permission denied"),
        "{}",
        stderr(&refused)
    );

    // Tampering in the database, as its superuser with the append-only
    // triggers switched off, is found by verify.
    let tamper = |sql: &str| {
        postgres.psql(
            &format!(
                "ALTER TABLE audit_records DISABLE TRIGGER USER; \
                 ALTER TABLE audit_calls DISABLE TRIGGER USER; {sql}; \
                 ALTER TABLE audit_records ENABLE TRIGGER USER; \
                 ALTER TABLE audit_calls ENABLE TRIGGER USER"
            ),
            DATABASE,
        )
    };
    tamper(
        "UPDATE audit_records SET line = convert_to(replace(convert_from(line, 'UTF8'), 'sess_a_1', 'sess_a_X'), 'UTF8') \
         WHERE host_id = 'host_a' AND seq = 3",
    );
    // A record no query row points at (the foreign keys would stop the rest).
    tamper(
        "DELETE FROM audit_records WHERE host_id = 'host_b' AND seq = (SELECT min(seq) FROM audit_records \
         WHERE host_id = 'host_b' AND seq > 1 \
         AND seq NOT IN (SELECT decision_seq FROM audit_calls WHERE host_id = 'host_b') \
         AND seq NOT IN (SELECT outcome_seq FROM audit_call_outcomes WHERE host_id = 'host_b'))",
    );
    tamper(
        "UPDATE audit_calls SET user_id = 'mallory' WHERE host_id = 'host_b' AND decision_seq = (SELECT min(decision_seq) FROM audit_calls WHERE host_id = 'host_b')",
    );
    let failed = mandate(&["audit", "verify", "--database", &auditor]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    let report = stderr(&failed);
    assert!(report.contains("tampered: host host_a: seq 3:"), "{report}");
    assert!(report.contains("tampered: host host_b: seq "), "{report}");
    assert!(
        report.contains("audit_calls row at seq") && report.contains("differs from the record"),
        "{report}"
    );
    let json: Value = serde_json::from_str(&stdout(&mandate(&[
        "audit",
        "verify",
        "--database",
        &auditor,
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["hosts"][0]["host_id"], "host_a");
    assert_eq!(json["hosts"][0]["problems"][0]["seq"], 3);
}

#[tokio::test]
async fn database_commands_refuse_an_unmigrated_database_and_hide_passwords() {
    let postgres = Postgres::start();
    let refused = mandate(&["audit", "verify", "--database", &postgres.url()]);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(message.contains("mandate fleet migrate"), "{message}");

    let with_password = format!(
        "postgresql://host_a:s3cret-pass@{}/{DATABASE}",
        "127.0.0.1:1"
    );
    let refused = mandate(&["audit", "query", "--database", &with_password]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(!message.contains("s3cret-pass"), "{message}");
    assert!(
        message.contains("postgresql://host_a@127.0.0.1:1/"),
        "{message}"
    );
}

#[tokio::test]
async fn signed_checkpoints_ship_and_catch_records_cut_off_the_end_in_the_database() {
    use mandate::audit::{AuditConfig, AuditLog, CheckpointSigner};
    use std::sync::Arc;

    let postgres = Postgres::start();
    ok(mandate(&[
        "fleet",
        "migrate",
        "--database",
        &postgres.url(),
    ]));
    postgres.psql(
        "CREATE ROLE host_c LOGIN IN ROLE mandate_host; CREATE ROLE auditor LOGIN IN ROLE mandate_auditor",
        DATABASE,
    );
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let public = dir.path().join("checkpoint.pub");
    signer
        .save(&dir.path().join("checkpoint.key"), &public)
        .unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let config = AuditConfig {
                checkpoint_signer: Some(signer.clone()),
                checkpoint_every_records: 5,
                ..AuditConfig::default()
            };
            let log = AuditLog::open_with(&log_dir, config).unwrap();
            for n in 0..40 {
                log.append(&serde_json::json!({"kind": "note", "n": n}))
                    .unwrap();
            }
            log.close().unwrap();
        });
    });
    let shipped = ship(&log_dir, &postgres.url_for("host_c", DATABASE));
    assert!(shipped.contains(" checkpoints of host host_c"), "{shipped}");

    let auditor = postgres.url_for("auditor", DATABASE);
    let key = public.to_str().unwrap();
    let verified = ok(mandate(&[
        "audit",
        "verify",
        "--database",
        &auditor,
        "--key",
        key,
    ]));
    assert!(verified.contains("ok: host host_c:"), "{verified}");
    assert!(
        verified.contains("signatures verified with key"),
        "{verified}"
    );

    // The last records removed in the database: still a valid chain, but the
    // signed checkpoints vouch for records that are gone.
    postgres.psql(
        "ALTER TABLE audit_records DISABLE TRIGGER USER; \
         DELETE FROM audit_records WHERE host_id = 'host_c' \
           AND seq > (SELECT max(seq) - 4 FROM audit_records WHERE host_id = 'host_c'); \
         ALTER TABLE audit_records ENABLE TRIGGER USER",
        DATABASE,
    );
    let unkeyed = ok(mandate(&["audit", "verify", "--database", &auditor]));
    assert!(unkeyed.contains("ok: host host_c:"), "{unkeyed}");
    let keyed = mandate(&[
        "audit",
        "verify",
        "--database",
        &auditor,
        "--key",
        key,
        "--format",
        "json",
    ]);
    assert_eq!(keyed.status.code(), Some(1), "{}", stdout(&keyed));
    let json: Value = serde_json::from_str(&stdout(&keyed)).unwrap();
    let kinds: Vec<&str> = json["hosts"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"cut_short"), "{json}");
}
