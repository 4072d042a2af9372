//! What can go wrong with the fleet's database.

/// An error of the fleet's database: what was being done, and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL does not parse.
    #[error("the database url is not valid: {reason}")]
    Url { reason: String },
    /// The server cannot be reached or refused the login.
    #[error("cannot connect to the database: {source}")]
    Connect {
        #[source]
        source: tokio_postgres::Error,
    },
    /// TLS could not be set up on this machine.
    #[error("cannot set up tls for the database: {reason}")]
    Tls { reason: String },
    /// A statement failed: `doing` says what it was for.
    #[error("the database failed while {doing}: {source}")]
    Query {
        doing: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration already applied differs from the one this build carries.
    #[error(
        "migration {version} ({name}) was applied with sha256 {applied}, but this build carries {expected}"
    )]
    MigrationChanged {
        version: i32,
        name: String,
        applied: String,
        expected: String,
    },
    /// The database has migrations newer than this build knows.
    #[error("the database is at migration {found}, newer than this build's {known}")]
    MigrationNewer { found: i32, known: i32 },
    /// A row holds what no shipping host writes.
    #[error("the database's {table}.{field} holds what mandate never writes: {reason}")]
    Corrupt {
        table: &'static str,
        field: String,
        reason: String,
    },
    /// The database is not migrated to what this build needs.
    #[error("the database is at migration {found}, this build needs {needed}")]
    NotMigrated { found: i32, needed: i32 },
}

impl FleetError {
    /// A failed statement, saying what it was for.
    pub fn query(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> FleetError {
        let doing = doing.into();
        move |source| FleetError::Query { doing, source }
    }
}
