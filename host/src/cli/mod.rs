//! Argument handling and commands. `anyhow` lives here and nowhere in the
//! library.

mod approvals;
mod approvals_decide;
mod approvals_serve;
mod approvals_show;
mod audit;
mod audit_keygen;
mod audit_prove;
mod audit_query;
mod audit_replay;
mod audit_verify;
mod inspect;
mod policy;
mod policy_explain;
mod policy_fmt;
mod policy_schema;
mod policy_test;
mod policy_validate;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Mandate: a policy and audit guard for WebAssembly agents.
#[derive(Parser)]
#[command(name = "mandate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent component under the guard.
    Run(run::RunArgs),
    /// Show a component's imports and exports and whether Mandate will run it.
    Inspect(inspect::InspectArgs),
    /// Work with audit logs.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Work with policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// See and decide the calls held for a human in an approvals queue.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Approvals(cmd) => approvals::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
