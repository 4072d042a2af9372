//! The PostgreSQL the fleet tests start: it runs, survives a restart with
//! its data, and accepts connections only on its socket.

mod common;

use common::postgres::{DATABASE, Postgres};

#[test]
fn the_server_keeps_its_data_across_a_restart() {
    let mut postgres = Postgres::start();
    postgres.psql("CREATE TABLE t (n int); INSERT INTO t VALUES (7)", DATABASE);
    postgres.stop();
    assert!(postgres.psql_as("postgres", "SELECT 1", DATABASE).is_err());
    postgres.resume();
    assert_eq!(postgres.psql("SELECT n FROM t", DATABASE), "7");
    assert_eq!(postgres.psql("SHOW listen_addresses", DATABASE), "");
}
