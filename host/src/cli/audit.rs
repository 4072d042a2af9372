//! `mandate audit ...`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mandate::audit::verify_file;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that a log's hash chain is intact; names the first bad seq.
    Verify {
        /// The audit log (JSON Lines).
        file: PathBuf,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { file } => match verify_file(&file) {
            Ok(report) => {
                println!(
                    "ok: {} records, chain intact; head seq {} hash {}",
                    report.records, report.head_seq, report.head_hash
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                match e.first_bad_seq() {
                    Some(seq) => eprintln!("tampered: first bad seq {seq}: {e}"),
                    None => eprintln!("error: {e}"),
                }
                Ok(ExitCode::from(1))
            }
        },
    }
}
