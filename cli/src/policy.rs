//! `mandate policy ...`: tools for writing policies. Each subcommand lives
//! in its own file (`policy_<name>.rs`) with its arguments; adding one is a
//! variant here and an arm in [`run`].

use std::process::ExitCode;

use clap::Subcommand;

use super::{policy_explain, policy_fmt, policy_schema, policy_test, policy_validate};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the Cedar schema for the built-in tools (their actions, typed
    /// arguments and scopes, and the session types every request carries).
    Schema(policy_schema::SchemaArgs),
    /// Parse the policies in a directory and validate them against its schema.
    Validate(policy_validate::ValidateArgs),
    /// Format the *.cedar files in a directory in place, keeping comments.
    Fmt(policy_fmt::FmtArgs),
    /// Run declarative policy test files: each case is a call and the
    /// decision it should get.
    Test(policy_test::TestArgs),
    /// Show what policy would decide for one call, and which policies
    /// decide it.
    Explain(policy_explain::ExplainArgs),
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Schema(args) => policy_schema::run(args),
        PolicyCommand::Validate(args) => policy_validate::run(args),
        PolicyCommand::Fmt(args) => policy_fmt::run(args),
        PolicyCommand::Test(args) => policy_test::run(args),
        PolicyCommand::Explain(args) => policy_explain::run(args),
    }
}
