//! `mandate inspect <wasm>`: a component's imports and exports, and whether
//! Mandate will run it and why. Exit status 0 if it will, 1 if it will not,
//! 2 if the file cannot be read or is not a component.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use mandate::runtime::Runtime;

/// How the report is printed.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document, for programs.
    Json,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The component (.wasm) to inspect.
    wasm: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.wasm)
        .with_context(|| format!("cannot read `{}`", args.wasm.display()))?;
    let runtime = Runtime::new()?;
    let inspection = runtime.inspect(&args.wasm, &bytes)?;
    let report = match args.format {
        Format::Text => format!("{inspection}\n"),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&inspection)?),
    };
    // A reader that stops early (`| head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(anyhow!("cannot write to stdout: {e}"));
        }
        _ => {}
    }
    Ok(if inspection.runnable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
