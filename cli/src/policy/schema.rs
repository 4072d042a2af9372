//! `mandate policy schema`: the Cedar schema of the built-in tools.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mandate::tools::{Workspace, example_registry};

#[derive(Args)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> anyhow::Result<ExitCode> {
    // The schema depends on the tools' declarations, not on the folder
    // they would work in.
    let tools = example_registry(&Workspace::new(".")).context("cannot register the tools")?;
    let schema = tools
        .cedar_schema()
        .context("cannot write the tools' cedar schema")?;
    print!("{schema}");
    Ok(ExitCode::SUCCESS)
}
