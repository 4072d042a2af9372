//! `mandate policy validate <dir>`: every problem in a policy directory,
//! each with its file, line, column, source line and a hint.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mandate::policy::Policies;

#[derive(Args)]
pub struct ValidateArgs {
    /// Directory with schema.cedarschema, *.cedar and optionally entities.json.
    dir: PathBuf,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir;
    match Policies::load_dir(&dir) {
        Ok(policies) => {
            for w in policies.warnings() {
                eprintln!("warning: {w}\n");
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
    }
}
