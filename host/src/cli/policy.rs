//! `mandate policy ...`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mandate::policy::Policies;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Parse the policies in a directory and validate them against its schema.
    Validate {
        /// Directory with schema.cedarschema, *.cedar and optionally entities.json.
        dir: PathBuf,
    },
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate { dir } => match Policies::load_dir(&dir) {
            Ok(policies) => {
                for w in policies.warnings() {
                    eprintln!("warning: {w}");
                }
                println!(
                    "ok: {} policies valid against {}/schema.cedarschema; digest {}",
                    policies.len(),
                    dir.display(),
                    policies.digest()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                let problems = e.problems();
                for p in &problems {
                    eprintln!("error: {p}\n");
                }
                eprintln!("{} error(s) in `{}`", problems.len(), dir.display());
                Ok(ExitCode::from(1))
            }
        },
    }
}
