//! `mandate fleet ...`: the fleet database's schema.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::database::{DATABASE_ENV, runtime, shown};

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Apply the fleet database's migrations (as its owner): the tables for
    /// shipped records, query rows, checkpoints and approvals, and the roles
    /// `mandate_host`, `mandate_reviewer` and `mandate_auditor`.
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The database, as `postgresql://owner@host/db` (or a Unix socket
    /// directory as the host, percent-encoded).
    #[arg(long, env = DATABASE_ENV, hide_env_values = true)]
    pub database: String,
}

pub fn run(cmd: FleetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FleetCommand::Migrate(args) => migrate(args),
    }
}

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = args.database;
    runtime()?.block_on(async {
        let mut database = mandate_fleet::connect(&url)
            .await
            .with_context(|| format!("fleet database `{}`", shown(&url)))?;
        let migrated = mandate_fleet::migrate::migrate(&mut database.client)
            .await
            .with_context(|| format!("cannot migrate `{}`", shown(&url)))?;
        if migrated.applied.is_empty() {
            println!(
                "fleet database `{}` is at migration {}, the latest; nothing to do",
                shown(&url),
                migrated.from
            );
        } else {
            let applied: Vec<String> = migrated.applied.iter().map(i32::to_string).collect();
            println!(
                "fleet database `{}`: applied migration {} (was at {})",
                shown(&url),
                applied.join(", "),
                migrated.from
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
