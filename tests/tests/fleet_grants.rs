//! Least privilege on the fleet's database, enforced by PostgreSQL itself:
//! a host inserts and reads only its own records, an auditor only reads,
//! and nobody, the owner included, updates, deletes or truncates a record.

mod common;

use common::postgres::{DATABASE, Postgres};

const INSERT_A: &str =
    "INSERT INTO audit_records (host_id, seq, hash, line) VALUES ('host_a', 1, 'h1', 'l1')";

async fn migrated() -> Postgres {
    let postgres = Postgres::start_migrated().await;
    postgres.psql(
        "CREATE ROLE host_a LOGIN IN ROLE mandate_host; \
         CREATE ROLE host_b LOGIN IN ROLE mandate_host; \
         CREATE ROLE auditor LOGIN IN ROLE mandate_auditor",
        DATABASE,
    );
    postgres
}

fn refused(result: Result<String, String>, because: &str) {
    let error = result.expect_err("the statement was allowed");
    assert!(error.contains(because), "{error}");
}

#[tokio::test]
async fn a_host_inserts_and_reads_only_its_own_records() {
    let postgres = migrated().await;
    postgres.psql_as("host_a", INSERT_A, DATABASE).unwrap();
    // A record in another host's name is refused.
    refused(
        postgres.psql_as(
            "host_b",
            "INSERT INTO audit_records (host_id, seq, hash, line) VALUES ('host_a', 2, 'h', 'l')",
            DATABASE,
        ),
        "row-level security",
    );
    assert_eq!(
        postgres
            .psql_as("host_a", "SELECT count(*) FROM audit_records", DATABASE)
            .unwrap(),
        "1"
    );
    assert_eq!(
        postgres
            .psql_as("host_b", "SELECT count(*) FROM audit_records", DATABASE)
            .unwrap(),
        "0"
    );
    // The same seq twice is refused: shipping again is idempotent only by
    // skipping what the database has.
    refused(
        postgres.psql_as("host_a", INSERT_A, DATABASE),
        "duplicate key",
    );
}

#[tokio::test]
async fn no_role_updates_deletes_or_truncates_a_record() {
    let postgres = migrated().await;
    postgres.psql_as("host_a", INSERT_A, DATABASE).unwrap();
    // The query rows and checkpoints shipped with the records are append-only too.
    postgres
        .psql_as(
            "host_a",
            "INSERT INTO audit_calls (host_id, decision_seq, call_id, decided_at, tool, effect, \
             policies, approval_required) VALUES ('host_a', 1, 'c:1', now(), 't', 'allow', '[]', false); \
             INSERT INTO audit_call_outcomes (host_id, decision_seq, outcome_seq, status) \
             VALUES ('host_a', 1, 1, 'ok'); \
             INSERT INTO audit_checkpoints (host_id, line_no, seq, line) VALUES ('host_a', 1, 1, 'c')",
            DATABASE,
        )
        .unwrap();
    let tables = [
        "audit_records",
        "audit_calls",
        "audit_call_outcomes",
        "audit_checkpoints",
    ];
    for role in ["host_a", "auditor"] {
        for table in tables {
            for sql in [
                format!("UPDATE {table} SET host_id = 'forged'"),
                format!("DELETE FROM {table}"),
                format!("TRUNCATE {table} CASCADE"),
            ] {
                refused(postgres.psql_as(role, &sql, DATABASE), "permission denied");
            }
        }
    }
    // The owner is stopped by the triggers (TRUNCATE needs CASCADE to get
    // past the foreign keys of the query rows, and then meets a trigger).
    for table in tables {
        for (sql, op) in [
            (format!("UPDATE {table} SET host_id = 'forged'"), "UPDATE"),
            (format!("DELETE FROM {table}"), "DELETE"),
        ] {
            refused(
                postgres.psql_as("postgres", &sql, DATABASE),
                &format!("audit records are append-only: {op} on {table} is refused"),
            );
        }
        refused(
            postgres.psql_as("postgres", &format!("TRUNCATE {table} CASCADE"), DATABASE),
            "audit records are append-only: TRUNCATE on ",
        );
    }
    assert_eq!(
        postgres.psql("SELECT encode(line, 'escape') FROM audit_records", DATABASE),
        "l1"
    );
}

#[tokio::test]
async fn an_auditor_reads_every_host_and_writes_nothing() {
    let postgres = migrated().await;
    postgres.psql_as("host_a", INSERT_A, DATABASE).unwrap();
    postgres
        .psql_as(
            "host_b",
            "INSERT INTO audit_records (host_id, seq, hash, line) VALUES ('host_b', 1, 'h', 'l')",
            DATABASE,
        )
        .unwrap();
    assert_eq!(
        postgres
            .psql_as("auditor", "SELECT count(*) FROM audit_records", DATABASE)
            .unwrap(),
        "2"
    );
    refused(
        postgres.psql_as(
            "auditor",
            "INSERT INTO audit_records (host_id, seq, hash, line) VALUES ('auditor', 1, 'h', 'l')",
            DATABASE,
        ),
        "permission denied",
    );
}
