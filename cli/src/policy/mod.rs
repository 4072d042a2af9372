//! `mandate policy ...`: tools for writing policies. Each subcommand lives
//! in its own file (`policy/<name>.rs`) with its arguments; adding one is a
//! variant here and an arm in [`run`].

use std::process::ExitCode;

use clap::Subcommand;

mod explain;
mod fmt;
mod schema;
mod test;
mod validate;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the Cedar schema for the built-in tools (their actions, typed
    /// arguments and scopes, and the session types every request carries).
    Schema(schema::SchemaArgs),
    /// Parse the policies in a directory and validate them against its schema.
    Validate(validate::ValidateArgs),
    /// Format the *.cedar files in a directory in place, keeping comments.
    Fmt(fmt::FmtArgs),
    /// Run declarative policy test files: each case is a call and the
    /// decision it should get.
    Test(test::TestArgs),
    /// Show what policy would decide for one call, and which policies
    /// decide it.
    Explain(explain::ExplainArgs),
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Schema(args) => schema::run(args),
        PolicyCommand::Validate(args) => validate::run(args),
        PolicyCommand::Fmt(args) => fmt::run(args),
        PolicyCommand::Test(args) => test::run(args),
        PolicyCommand::Explain(args) => explain::run(args),
    }
}
