//! The `mandate` command-line tool: argument handling and commands. `anyhow`, clap and indicatif
//! live in this crate and nowhere in the libraries.

mod approvals;
mod audit;
mod database;
mod fleet;
mod inspect;
mod policy;
mod run;
mod tools;

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
    Run(Box<run::RunArgs>),
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
    /// Work with the tools a manifest declares (MCP servers, programs).
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Set up the fleet database many hosts share (PostgreSQL).
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Inspect(args) => inspect::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Approvals(cmd) => approvals::run(cmd),
        Command::Tools(cmd) => tools::run(cmd),
        Command::Fleet(cmd) => fleet::run(cmd),
    };
    match result {
        Ok(code) => code,
        // `mandate approvals list | head`: the reader has what it wanted. Every
        // command writes its output with `?`, so a closed stdout arrives here
        // once, whatever the command.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// Whether `e` is, or was caused by, writing to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            == pipe
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}

/// The error and its causes joined by `: `, each said once: an error whose
/// message already ends with its cause's (`cannot listen on `x`: address in
/// use`) is not followed by that cause again.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let os = std::io::Error::from_raw_os_error(98);
        let e = anyhow::Error::new(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            os.to_string(),
        ))
        .context(format!("cannot listen on `127.0.0.1:1`: {os}"));
        assert_eq!(message(&e), format!("cannot listen on `127.0.0.1:1`: {os}"));
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
    }

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_recognised() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("cannot write the answer to stdout");
        assert!(broken_pipe(&e));
        assert!(!broken_pipe(&anyhow::anyhow!("broken pipe")));
    }
}
