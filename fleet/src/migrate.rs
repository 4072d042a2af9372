//! The fleet database's schema, in versioned migrations applied in order,
//! each once, in its own transaction, under an advisory lock so that two
//! operators migrating at once cannot interleave. Each applied migration is
//! remembered with its SHA-256: a build whose migration of the same number
//! differs refuses to go on rather than run against a schema it does not
//! describe.
//!
//! Migrations run as the database's owner (`mandate fleet migrate`). They
//! create the roles the fleet's processes log in under, as group roles
//! without login: the operator creates login roles in them.
//!
//! | role | may |
//! |---|---|
//! | `mandate_host` | insert and read its own records (shipping), hold calls for approval |
//! | `mandate_reviewer` | read and decide pending approvals |
//! | `mandate_auditor` | read records and checkpoints |
//!
//! No role may update or delete a record: grants give none the right, a
//! trigger refuses it even to the owner, and row-level security lets a host
//! insert and read only records in its own name (its login role).

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::FleetError;

/// One migration: its number, name and SQL.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this build carries, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "roles",
        sql: include_str!("../migrations/0001_roles.sql"),
    },
    Migration {
        version: 2,
        name: "audit records",
        sql: include_str!("../migrations/0002_audit_records.sql"),
    },
    Migration {
        version: 3,
        name: "approvals",
        sql: include_str!("../migrations/0003_approvals.sql"),
    },
    Migration {
        version: 4,
        name: "audit queries and checkpoints",
        sql: include_str!("../migrations/0004_audit_queries.sql"),
    },
];

/// The version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Any number fits; this one names Mandate's migrations in pg_locks.
const LOCK_KEY: i64 = 0x6d61_6e64_6174_6531;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The version the database was at.
    pub from: i32,
    /// The versions applied now, in order.
    pub applied: Vec<i32>,
}

fn digest(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies the migrations the database lacks.
pub async fn migrate(client: &mut Client) -> Result<Migrated, FleetError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS mandate_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                sha256 text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(FleetError::query("creating the migrations table"))?;
    let transaction = client
        .transaction()
        .await
        .map_err(FleetError::query("starting the migration"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(FleetError::query("waiting for other migrations"))?;
    let from = check_applied(&transaction).await?;
    transaction
        .commit()
        .await
        .map_err(FleetError::query("checking the migrations"))?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        let transaction = client
            .transaction()
            .await
            .map_err(FleetError::query("starting a migration"))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(FleetError::query("waiting for other migrations"))?;
        // Another operator may have applied it while this one waited.
        if check_applied(&transaction).await? >= migration.version {
            continue;
        }
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(FleetError::query(format!(
                "applying migration {} ({})",
                migration.version, migration.name
            )))?;
        transaction
            .execute(
                "INSERT INTO mandate_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.name, &digest(migration.sql)],
            )
            .await
            .map_err(FleetError::query("recording a migration"))?;
        transaction
            .commit()
            .await
            .map_err(FleetError::query("committing a migration"))?;
        applied.push(migration.version);
    }
    Ok(Migrated { from, applied })
}

/// The highest version applied, after checking that every applied
/// migration is the one this build carries.
async fn check_applied(client: &impl tokio_postgres::GenericClient) -> Result<i32, FleetError> {
    let rows = client
        .query(
            "SELECT version, name, sha256 FROM mandate_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(FleetError::query("reading the applied migrations"))?;
    let mut highest = 0;
    for row in rows {
        let version: i32 = row.get(0);
        let name: String = row.get(1);
        let applied: String = row.get(2);
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(FleetError::MigrationNewer {
                found: version,
                known: latest(),
            });
        };
        let expected = digest(known.sql);
        if applied != expected {
            return Err(FleetError::MigrationChanged {
                version,
                name,
                applied,
                expected,
            });
        }
        highest = highest.max(version);
    }
    Ok(highest)
}

/// Refuses a database not migrated to what this build needs (hosts and
/// reviewers check this at start; they never migrate).
pub async fn require_current(client: &Client) -> Result<(), FleetError> {
    let found: i32 = match client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM mandate_migrations",
            &[],
        )
        .await
    {
        Ok(row) => row.get(0),
        // No migrations table: nothing was ever migrated.
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(source) => {
            return Err(FleetError::Query {
                doing: "reading the applied migrations".into(),
                source,
            });
        }
    };
    match found.cmp(&latest()) {
        std::cmp::Ordering::Less => Err(FleetError::NotMigrated {
            found,
            needed: latest(),
        }),
        std::cmp::Ordering::Greater => Err(FleetError::MigrationNewer {
            found,
            known: latest(),
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
