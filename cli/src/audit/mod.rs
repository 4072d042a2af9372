//! `mandate audit ...`: the subcommands. Each lives in its own file with its arguments
//! (`audit/<name>.rs`); adding one is a variant here and an arm in [`run`].

use clap::Subcommand;
use std::process::ExitCode;

mod keygen;
mod prove;
mod query;
mod replay;
mod ship;
mod source;
mod verify;
mod verify_db;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check a log's hash chain (and, with --key, its signed checkpoints);
    /// lists every problem, the first bad seq first.
    Verify(verify::VerifyArgs),
    /// Make an Ed25519 key pair for signing checkpoints.
    Keygen(keygen::KeygenArgs),
    /// Show that a value matches the commitment a redacted argument left in the log.
    Prove(prove::ProveArgs),
    /// Find calls by user, agent, session, tool, decision, reviewer or time.
    Query(query::QueryArgs),
    /// Rebuild the query index of a log from the log itself.
    Reindex(query::ReindexArgs),
    /// Decide every recorded call again under candidate policies and list
    /// the calls whose decision or approval requirement would change.
    Replay(replay::ReplayArgs),
    /// Ship a host's records to the fleet database (PostgreSQL), resuming
    /// where it left off; `--status` shows the lag.
    Ship(ship::ShipArgs),
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(args) => verify::run(args),
        AuditCommand::Keygen(args) => keygen::run(args),
        AuditCommand::Prove(args) => prove::run(args),
        AuditCommand::Query(args) => query::run(args),
        AuditCommand::Reindex(args) => query::reindex(args),
        AuditCommand::Replay(args) => replay::run(args),
        AuditCommand::Ship(args) => ship::run(args),
    }
}
