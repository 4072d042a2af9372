//! `mandate audit verify`

use std::cell::OnceCell;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mandate::audit::{CheckpointVerifier, Origin, VerifyOptions, VerifyReport, verify_log};

use super::audit::VerifyArgs;

/// Logs smaller than this verify in well under a second: a bar would only flicker.
const PROGRESS_MIN_BYTES: u64 = 64 * 1024 * 1024;

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let (Some(file), None) = (&args.checkpoints, &args.key) {
        anyhow::bail!(
            "--checkpoints `{}` needs --key: a checkpoint file proves nothing unless its signatures are checked",
            file.display()
        );
    }
    let key = args
        .key
        .as_deref()
        .map(CheckpointVerifier::load)
        .transpose()
        .context("cannot verify checkpoints")?;

    let show_bar = !args.no_progress && std::io::stderr().is_terminal();
    let bar: OnceCell<ProgressBar> = OnceCell::new();
    let progress = |done: u64, total: u64| {
        if !show_bar || total < PROGRESS_MIN_BYTES {
            return;
        }
        bar.get_or_init(|| new_bar(total)).set_position(done);
    };
    let options = VerifyOptions {
        key,
        checkpoints: args.checkpoints.clone(),
        progress: Some(&progress),
        allow_unsigned_tail: args.allow_unsigned_tail,
    };
    let result = verify_log(&args.log, &options);
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            print!("{}", summary(&report));
            Ok(ExitCode::SUCCESS)
        }
        // 2 for input that cannot be read at all, as elsewhere; 1 only for a log that was read
        // and failed a check, so that scripts can tell tampering from a wrong path.
        Err(e) if e.is_unreadable() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
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

fn new_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    // The template is a constant; if indicatif ever rejected it, the default style would do.
    if let Ok(style) = ProgressStyle::with_template(
        "verifying {wide_bar} {bytes}/{total_bytes} ({binary_bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// What `ok:` says: the count and head first (scripts read that line), then what else was
/// checked and what was not.
fn summary(report: &VerifyReport) -> String {
    let mut out = format!(
        "ok: {} records, chain intact; head seq {} hash {}\n",
        report.records, report.head_seq, report.head_hash
    );
    let segments = match report.segments {
        1 => "1 segment".to_owned(),
        n => format!("{n} segments"),
    };
    out += &format!(
        "  seqs {} to {} in {segments}, {} bytes\n",
        report.first_seq, report.head_seq, report.bytes
    );
    match report.origin {
        Origin::LogStart => {}
        Origin::Retention { record_seq, signed } => {
            out += &format!(
                "  records before seq {} were removed by retention (retention record at seq {record_seq})\n",
                report.first_seq
            );
            if !signed {
                out += &format!(
                    "  note: retention record at seq {record_seq} is not covered by a checked signature: verify with --key\n"
                );
            }
        }
        Origin::Unlinked => {
            out += &format!(
                "  note: this is one segment on its own; its link to seq {} was not checked (verify the log directory for that)\n",
                report.first_seq.saturating_sub(1)
            );
        }
    }
    let checkpoints = &report.checkpoints;
    match &checkpoints.key_id {
        Some(key_id) => {
            out += &format!(
                "  {} checkpoints in the log, signatures verified with key {key_id}\n",
                checkpoints.in_log
            );
            match &checkpoints.file {
                Some(file) => {
                    out += &format!(
                        "  checkpoint file `{}`: {} signed checkpoints, {} of them vouch for records still in the log and match\n",
                        file.display(),
                        checkpoints.file_checkpoints,
                        checkpoints.file_matched
                    );
                }
                None => {
                    out += "  no checkpoint file: a log cut short or rewritten after its last checkpoint goes unnoticed (pass --checkpoints)\n";
                }
            }
            let count = |n: u64| match n {
                1 => "1 checkpoint".to_owned(),
                n => format!("{n} checkpoints"),
            };
            let covering = checkpoints.in_log.max(checkpoints.file_matched);
            let mut line = match checkpoints.signed_through_seq {
                Some(seq) => format!(
                    "  signed: seq {}..={seq} of {} covered by {}",
                    report.first_seq,
                    report.head_seq,
                    count(covering)
                ),
                None => format!("  signed: no record of {} is covered", report.records),
            };
            if checkpoints.unsigned_tail > 0 {
                let records = match checkpoints.unsigned_tail {
                    1 => "1 record".to_owned(),
                    n => format!("{n} records"),
                };
                line += &format!("; unsigned tail: {records} (allowed by --allow-unsigned-tail)");
            }
            out += &line;
            out.push('\n');
        }
        None if checkpoints.in_log > 0 => {
            out += &format!(
                "  {} checkpoints in the log match the chain; their signatures were not checked (pass --key)\n",
                checkpoints.in_log
            );
        }
        None => {}
    }
    out
}
