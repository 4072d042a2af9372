//! `mandate audit verify`

use std::process::ExitCode;

use mandate::audit::verify_file;

use super::audit::VerifyArgs;

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match verify_file(&args.log) {
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
    }
}
