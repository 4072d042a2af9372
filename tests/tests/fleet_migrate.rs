//! The fleet database's migrations: applied once, in order, by the owner;
//! refused when a build's migration differs from the one applied.

mod common;

use common::postgres::Postgres;
use mandate_fleet::migrate::{self, Migrated};

#[tokio::test]
async fn migrations_apply_once_and_create_the_roles() {
    let postgres = Postgres::start();
    let mut database = mandate_fleet::connect(&postgres.url()).await.unwrap();
    assert!(matches!(
        migrate::require_current(&database.client).await,
        Err(mandate_fleet::FleetError::NotMigrated { found: 0, .. })
    ));
    let first = migrate::migrate(&mut database.client).await.unwrap();
    assert_eq!(first.from, 0);
    assert_eq!(first.applied.last(), Some(&migrate::latest()));
    let again = migrate::migrate(&mut database.client).await.unwrap();
    assert_eq!(
        again,
        Migrated {
            from: migrate::latest(),
            applied: vec![]
        }
    );
    migrate::require_current(&database.client).await.unwrap();
    let roles = postgres.psql(
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'mandate_%'",
        common::postgres::DATABASE,
    );
    assert_eq!(roles, "mandate_auditor,mandate_host,mandate_reviewer");
}

#[tokio::test]
async fn a_migration_changed_after_it_was_applied_is_refused() {
    let postgres = Postgres::start();
    let mut database = mandate_fleet::connect(&postgres.url()).await.unwrap();
    migrate::migrate(&mut database.client).await.unwrap();
    postgres.psql(
        "UPDATE mandate_migrations SET sha256 = 'feed' WHERE version = 1",
        common::postgres::DATABASE,
    );
    let error = migrate::migrate(&mut database.client).await.unwrap_err();
    assert!(
        error.to_string().starts_with(
            "migration 1 (roles) was applied with sha256 feed, but this build carries"
        ),
        "{error}"
    );
}
