//! `mandate policy schema`: the Cedar schema of the tools the host serves.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::tools::ToolsArg;

#[derive(Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    tools: ToolsArg,
}

pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let tools = args.tools.declarations()?;
    let schema = tools
        .cedar_schema()
        .context("cannot write the tools' cedar schema")?;
    print!("{schema}");
    Ok(ExitCode::SUCCESS)
}
