//! Where `audit verify`, `query` and `replay` read records from: a local log,
//! or every host's records in the fleet database.

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args)]
pub struct Source {
    /// The audit log: a log directory (verify and replay also take a single segment file).
    #[arg(required_unless_present = "database", conflicts_with = "database")]
    pub log: Option<PathBuf>,
    /// Read the fleet database instead, across every host
    /// (`postgresql://auditor@host/db`, a login in `mandate_auditor`).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// With --database, only this host.
    #[arg(long, requires = "database")]
    pub host: Option<String>,
}

/// A [`Source`] resolved.
pub enum From<'a> {
    Log(&'a Path),
    Database { url: &'a str, host: Option<&'a str> },
}

impl Source {
    /// The log, or the database; clap has made sure there is exactly one.
    pub fn resolve(&self) -> anyhow::Result<From<'_>> {
        match (&self.log, &self.database) {
            (_, Some(url)) => Ok(From::Database {
                url,
                host: self.host.as_deref(),
            }),
            (Some(log), None) => Ok(From::Log(log)),
            (None, None) => anyhow::bail!("give the log to read, or --database <url>"),
        }
    }
}
