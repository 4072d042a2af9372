//! `mandate audit verify`

use std::cell::OnceCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mandate::audit::{
    ChainProblem, CheckpointFileError, CheckpointProblem, CheckpointVerifier, Malformed, Origin,
    SegmentProblem, Verification, VerifyError, VerifyOptions, VerifyReport, verify_log_all,
};
use mandate::terminal;

use super::source::From;
use serde_json::{Value, json};

/// Longest problem message printed, in characters: a message can quote a record's `kind`
/// or a segment name, which whoever wrote the log chose.
const MESSAGE_CHARS: usize = 1024;

/// Logs smaller than this verify in well under a second: a bar would only flicker.
const PROGRESS_MIN_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: super::source::Source,
    /// Public key (from `mandate audit keygen`): also verify every signed checkpoint.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Checkpoint file shipped elsewhere (default: <log>/checkpoints.jsonl when --key is given).
    #[arg(long, conflicts_with = "database")]
    pub checkpoints: Option<PathBuf>,
    /// With --key, accept records after the last signed checkpoint (the unsigned tail)
    /// instead of failing; the summary still says how many there are.
    #[arg(long, requires = "key")]
    pub allow_unsigned_tail: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// `text` (default): `ok: ...` or one `tampered: ...` line per problem; `json`: one object
    /// with `ok`, `problems`, `first_bad_seq` and the log's extent on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: VerifyFormat,
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum VerifyFormat {
    /// `ok: ...`, or one `tampered: seq N (<file>:<line>): <what>` line per problem.
    #[default]
    Text,
    /// One JSON object for machines.
    Json,
}

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
    let log = match args.source.resolve()? {
        From::Database { url, host } => return super::verify_db::run(url, host, key, &args),
        From::Log(log) => log.to_path_buf(),
    };

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
    let result = verify_log_all(&log, &options);
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    let json = matches!(args.format, VerifyFormat::Json);
    match result {
        Ok(verification) => {
            let ok = verification.problems.is_empty();
            if json {
                println!("{}", json_report(&verification));
            } else if ok {
                print!("{}", summary(&verification.report));
            } else {
                // The first problem first: a script that reads one line gets the earliest.
                for problem in &verification.problems {
                    eprintln!("{}", tampered_line(problem));
                }
            }
            Ok(ExitCode::from(if ok { 0 } else { 1 }))
        }
        // 2 for input that cannot be read at all, as elsewhere; 1 only for a log that was read
        // and failed a check, so that scripts can tell tampering from a wrong path.
        Err(e) => {
            if json {
                let object = json!({
                    "ok": false,
                    "error": e.to_string(),
                    "problems": [],
                    "first_bad_seq": null,
                });
                println!("{object}");
            } else {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::from(if e.is_unreadable() { 2 } else { 1 }))
        }
    }
}

/// Where a problem is: the file and 1-based line, when it is about one.
fn location(problem: &VerifyError) -> (Option<String>, Option<u64>) {
    let shown = |path: &std::path::Path| Some(path.display().to_string());
    match problem {
        VerifyError::Broken(broken) => (broken.path.as_deref().and_then(shown), Some(broken.line)),
        VerifyError::Rewritten(rewritten) => (shown(&rewritten.segment), Some(rewritten.line)),
        VerifyError::CutShort(short) => (shown(&short.file), Some(short.file_line)),
        VerifyError::UnexplainedStart(start) => (shown(&start.segment), Some(1)),
        VerifyError::CheckpointFile(
            CheckpointFileError::Malformed { path, line, .. }
            | CheckpointFileError::Signature { path, line, .. },
        ) => (shown(path), Some(*line)),
        VerifyError::UnsignedTail(tail) => (shown(&tail.log), None),
        _ => (None, None),
    }
}

/// What a problem is, as one snake_case word (the same words as the second verifier's).
pub(super) fn kind(problem: &VerifyError) -> &'static str {
    match problem {
        VerifyError::Broken(broken) => match &broken.problem {
            ChainProblem::HashMismatch => "hash_mismatch",
            ChainProblem::SeqOutOfOrder { .. } => "seq_mismatch",
            ChainProblem::PrevHashMismatch { .. } => "chain_broken",
            ChainProblem::Malformed(Malformed::TooLong { .. }) => "too_long",
            ChainProblem::Malformed(_) => "malformed",
            ChainProblem::TornTail => "torn_tail",
            ChainProblem::SeqExhausted => "seq_exhausted",
            ChainProblem::Segment(SegmentProblem::Empty) => "empty_segment",
            ChainProblem::Segment(SegmentProblem::NotSegmentStart { .. }) => {
                "segment_start_missing"
            }
            ChainProblem::Segment(SegmentProblem::Named { .. }) => "segment_seq_mismatch",
            ChainProblem::Segment(_) => "segment_missing",
            ChainProblem::Checkpoint(CheckpointProblem::WrongHead { .. }) => "checkpoint_mismatch",
            ChainProblem::Checkpoint(_) => "bad_checkpoint",
            ChainProblem::Retention(_) => "bad_retention",
        },
        VerifyError::UnexplainedStart(_) => "unexplained_start",
        VerifyError::Rewritten(_) => "rewritten",
        VerifyError::CutShort(_) => "cut_short",
        VerifyError::CheckpointFile(_) => "checkpoint_file",
        VerifyError::UnsignedTail(_) => "unsigned_tail",
        _ => "unreadable",
    }
}

/// What is wrong, without the location [`location`] gives: for a broken chain the problem
/// alone, for the rest the whole message. Escaped and bounded for a terminal.
pub(super) fn message(problem: &VerifyError) -> String {
    let text = match problem {
        VerifyError::Broken(broken) => broken.problem.to_string(),
        other => other.to_string(),
    };
    terminal::bounded(&text, MESSAGE_CHARS)
}

/// `tampered: seq N (<file>:<line>): <what>`
fn tampered_line(problem: &VerifyError) -> String {
    let seq = problem
        .first_bad_seq()
        .map_or_else(|| "-".to_owned(), |seq| seq.to_string());
    let (file, line) = location(problem);
    let at = match (file, line) {
        (Some(file), Some(line)) => format!(" ({}:{line})", terminal::escape(&file)),
        (Some(file), None) => format!(" ({})", terminal::escape(&file)),
        _ => String::new(),
    };
    format!("tampered: seq {seq}{at}: {}", message(problem))
}

/// The one object `--format json` prints.
fn json_report(verification: &Verification) -> Value {
    let report = &verification.report;
    let problems: Vec<Value> = verification
        .problems
        .iter()
        .map(|problem| {
            let (file, line) = location(problem);
            json!({
                "seq": problem.first_bad_seq(),
                "file": file,
                "line": line,
                "kind": kind(problem),
                "message": message(problem),
            })
        })
        .collect();
    json!({
        "ok": verification.problems.is_empty(),
        "problems": problems,
        "first_bad_seq": verification.first_bad_seq(),
        "records": report.records,
        "first_seq": report.first_seq,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "signed_through_seq": report.checkpoints.signed_through_seq,
        "unsigned_tail": report.checkpoints.unsigned_tail,
    })
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
pub(super) fn summary(report: &VerifyReport) -> String {
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
