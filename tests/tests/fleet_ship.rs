//! Shipping a host's records to PostgreSQL: the exact bytes, in the host's
//! name, idempotent, resuming where the database left off, and refusing a
//! log whose history differs from what the database holds.

mod common;

use common::postgres::{DATABASE, Postgres};
use mandate::audit::{AuditLog, RecordReader};
use mandate_fleet::ship::{ShipError, ship};

/// Appends on a thread of its own: the writer's blocking append is not for
/// a test's async runtime thread.
fn append(log: &AuditLog, from: u64, count: u64) {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in from..from + count {
                log.append(&serde_json::json!({"kind": "note", "n": n}))
                    .unwrap();
            }
        });
    });
}

fn local_lines(dir: &std::path::Path) -> Vec<Vec<u8>> {
    RecordReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap().bytes)
        .collect()
}

async fn host(postgres: &Postgres, name: &str) -> mandate_fleet::Database {
    postgres.psql(
        &format!("CREATE ROLE {name} LOGIN IN ROLE mandate_host"),
        DATABASE,
    );
    mandate_fleet::connect(&postgres.url_for(name, DATABASE))
        .await
        .unwrap()
}

#[tokio::test]
async fn records_ship_once_exactly_and_resume_where_the_database_left_off() {
    let postgres = Postgres::start_migrated().await;
    let mut database = host(&postgres, "host_a").await;
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    append(&log, 0, 1200);

    let first = ship(&mut database.client, dir.path()).await.unwrap();
    let count = local_lines(dir.path()).len() as u64;
    assert_eq!((first.host_id.as_str(), first.from), ("host_a", 0));
    assert_eq!((first.shipped, first.through), (count, count));

    // Again: nothing new, nothing twice.
    let again = ship(&mut database.client, dir.path()).await.unwrap();
    assert_eq!(
        (again.from, again.shipped, again.through),
        (count, 0, count)
    );

    append(&log, 1200, 7);
    let more = ship(&mut database.client, dir.path()).await.unwrap();
    assert_eq!((more.from, more.shipped), (count, 7));
    log.close().unwrap();

    // The database holds the exact bytes, in order.
    let rows = database
        .client
        .query(
            "SELECT seq, line FROM audit_records WHERE host_id = 'host_a' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let shipped: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(shipped, local_lines(dir.path()));
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_log_with_another_history_is_refused_not_appended() {
    let postgres = Postgres::start_migrated().await;
    let mut database = host(&postgres, "host_a").await;
    let first = tempfile::tempdir().unwrap();
    let log = AuditLog::open(first.path()).unwrap();
    append(&log, 0, 5);
    log.close().unwrap();
    let shipped = ship(&mut database.client, first.path()).await.unwrap();

    // Another log, longer, with different records: the same seqs, other hashes.
    let other = tempfile::tempdir().unwrap();
    let log = AuditLog::open(other.path()).unwrap();
    append(&log, 100, 10);
    log.close().unwrap();
    let error = ship(&mut database.client, other.path()).await.unwrap_err();
    assert!(
        matches!(&error, ShipError::Diverged { seq, .. } if *seq == shipped.through),
        "{error}"
    );
    assert!(
        error.to_string().contains("they are different histories"),
        "{error}"
    );

    // A shorter log than what the database holds is refused too.
    let short = tempfile::tempdir().unwrap();
    AuditLog::open(short.path()).unwrap().close().unwrap();
    let error = ship(&mut database.client, short.path()).await.unwrap_err();
    assert!(matches!(error, ShipError::Behind { .. }), "{error}");
    let count = database
        .client
        .query_one("SELECT count(*) FROM audit_records", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(count as u64, shipped.through);
}

/// Shipping again reads only from the segment holding the database's last
/// seq on (a long log is not re-read every round), and a last line the
/// writer has not finished is left for the next round.
#[tokio::test]
async fn shipping_again_starts_at_the_segment_the_database_reached_and_skips_a_line_being_written()
{
    let postgres = Postgres::start_migrated().await;
    let mut database = host(&postgres, "host_a").await;
    let dir = tempfile::tempdir().unwrap();
    let config = mandate::audit::AuditConfig {
        segment_max_bytes: 4096,
        ..mandate::audit::AuditConfig::default()
    };
    let log = AuditLog::open_with(dir.path(), config).unwrap();
    append(&log, 0, 200);
    log.close().unwrap();
    let first = ship(&mut database.client, dir.path()).await.unwrap();
    let segments = mandate::audit::list_segments(dir.path()).unwrap();
    assert!(segments.len() > 3, "the log rotated: {}", segments.len());

    // The first segment, shipped already, is damaged now: a reader that
    // started from seq 1 would refuse it. The next round does not read it.
    std::fs::write(&segments[0].path, b"not a record\n").unwrap();
    // The writer is in the middle of a record: half a line at the end.
    let last = &segments.last().unwrap().path;
    let mut tail = std::fs::read(last).unwrap();
    tail.extend_from_slice(format!("{{\"seq\":{},\"prev", first.through + 1).as_bytes());
    std::fs::write(last, tail).unwrap();
    let again = ship(&mut database.client, dir.path()).await.unwrap();
    assert_eq!((again.from, again.shipped), (first.through, 0));
}
