//! `mandate audit replay`: what a candidate policy directory would decide
//! differently over a log. Exit 0 whenever the replay ran, changes or not; 2
//! when it could not run.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use mandate::pipeline::{
    CallRef, NotReplayable, RecordedVerdict, ReplayChange, ReplayEffect, ReplayReport,
    ReplayVerdict, replay,
};
use mandate::policy::Policies;

use super::source::From;

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum ReplayFormat {
    /// One line per changed call, then the calls not replayed and the totals.
    #[default]
    Table,
    /// One JSON object: `changes`, `not_replayable`, `totals`.
    Json,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub source: super::source::Source,
    /// The candidate policy directory (schema, policies and the entities.json
    /// every call is evaluated against).
    #[arg(long)]
    pub policies: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReplayFormat,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let candidate = Policies::load_dir(&args.policies).with_context(|| {
        format!(
            "cannot load candidate policies from `{}`",
            args.policies.display()
        )
    })?;
    for w in candidate.warnings() {
        eprintln!("warning: {w}");
    }
    let written = match args.source.resolve()? {
        From::Database { url, host } => from_database(url, host, &candidate, args.format)?,
        From::Log(log) => {
            let report = replay(log, &candidate)?;
            write_report(&report, None, args.format)
        }
    };
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write the answer to stdout"),
    }
}

/// Replays each host's records, read back out of the fleet database into a
/// private scratch directory, and writes one report per host.
fn from_database(
    url: &str,
    host: Option<&str>,
    candidate: &Policies,
    format: ReplayFormat,
) -> anyhow::Result<io::Result<()>> {
    crate::database::runtime()?.block_on(async {
        let database = crate::database::open(url).await?;
        let hosts = match host {
            Some(host) => vec![host.to_owned()],
            None => mandate_fleet::export::hosts(&database.client).await?,
        };
        if hosts.is_empty() {
            anyhow::bail!("the fleet database holds no records of any host; nothing to replay");
        }
        for host in &hosts {
            let scratch = tempfile::tempdir().context("cannot make a private scratch directory")?;
            mandate_fleet::export::export(&database.client, host, scratch.path())
                .await
                .with_context(|| {
                    format!("cannot read host `{}` from the database", printable(host))
                })?;
            let report = replay(scratch.path(), candidate)
                .with_context(|| format!("host `{}`", printable(host)))?;
            let written = write_report(&report, Some(host), format);
            if written.is_err() {
                return Ok(written);
            }
        }
        Ok(Ok(()))
    })
}

/// One report on stdout; `host` heads it (table) or is a field of it (json).
fn write_report(report: &ReplayReport, host: Option<&str>, format: ReplayFormat) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match format {
        ReplayFormat::Table => {
            if let Some(host) = host {
                writeln!(out, "host {}:", printable(host))?;
            }
            write_table(&mut out, report)?;
        }
        ReplayFormat::Json => {
            let mut object = serde_json::to_value(report)?;
            if let (Some(host), Some(map)) = (host, object.as_object_mut()) {
                map.insert("host_id".into(), host.into());
            }
            serde_json::to_writer(&mut out, &object)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

const CHANGE_HEADERS: [&str; 8] = [
    "seq",
    "call",
    "session",
    "user",
    "agent",
    "tool",
    "old -> new",
    "policies",
];
const NOT_REPLAYABLE_HEADERS: [&str; 7] =
    ["seq", "call", "session", "user", "agent", "tool", "why"];

fn write_table(out: &mut impl Write, report: &ReplayReport) -> io::Result<()> {
    let changes: Vec<Vec<String>> = report.changes.iter().map(change_cells).collect();
    write_rows(out, &CHANGE_HEADERS, &changes)?;
    if !report.not_replayable.is_empty() {
        if !changes.is_empty() {
            writeln!(out)?;
        }
        writeln!(out, "not replayable:")?;
        let rows: Vec<Vec<String>> = report.not_replayable.iter().map(skipped_cells).collect();
        write_rows(out, &NOT_REPLAYABLE_HEADERS, &rows)?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "{} decisions: {} re-evaluated ({} unchanged, {} changed), {} not replayable, {} refused before policy (not re-evaluated)",
        t.decisions,
        t.re_evaluated,
        t.unchanged,
        t.changed,
        t.not_replayable,
        t.refused_before_policy
    )
}

fn write_rows(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn call_cells(call: &CallRef) -> Vec<String> {
    vec![
        call.seq.to_string(),
        printable(&call.call_id),
        printable(&call.session_id),
        printable(&call.user),
        printable(&call.agent),
        printable(&call.tool),
    ]
}

fn change_cells(change: &ReplayChange) -> Vec<String> {
    let mut cells = call_cells(&change.call);
    cells.push(format!(
        "{} -> {}",
        old_text(&change.old),
        new_text(&change.new)
    ));
    cells.push(format!(
        "{} -> {}",
        policies_text(
            &change.old.determining_policies,
            change.old.approval_required,
            &change.old.demanded_by
        ),
        match &change.new.message {
            Some(message) => printable(message),
            None => {
                let mut text = policies_text(
                    &change.new.determining_policies,
                    change.new.approval_required,
                    &change.new.demanded_by,
                );
                if !change.new.errors.is_empty() {
                    text.push_str(&format!(" (errors: {})", change.new.errors.join("; ")));
                }
                printable(&text)
            }
        }
    ));
    cells
}

fn skipped_cells(call: &NotReplayable) -> Vec<String> {
    let mut cells = call_cells(&call.call);
    cells.push(printable(&call.reason.to_string()));
    cells
}

/// `allow`, or `deny [approval denied by carol]` when a human was asked:
/// the bracket marks a call policy held for approval, as `mandate run` prints.
fn old_text(old: &RecordedVerdict) -> String {
    let effect = ReplayEffect::from(old.effect);
    match (&old.reviewer, old.approval_required) {
        (_, false) => effect.to_string(),
        (Some(r), true) => format!(
            "{effect} [approval {} by {}]",
            old.approval_outcome,
            printable(r)
        ),
        (None, true) => format!("{effect} [approval {}]", old.approval_outcome),
    }
}

/// `allow`, or `held [approval required]`.
fn new_text(new: &ReplayVerdict) -> String {
    if new.approval_required {
        format!("{} [approval required]", new.effect)
    } else {
        new.effect.to_string()
    }
}

fn policies_text(
    determining: &[String],
    approval_required: bool,
    demanded_by: &[String],
) -> String {
    let mut text = if determining.is_empty() {
        "default deny".to_owned()
    } else {
        determining.join(", ")
    };
    if approval_required && !demanded_by.is_empty() && demanded_by != determining {
        text.push_str(&format!(
            " (approval demanded by {})",
            demanded_by.join(", ")
        ));
    }
    text
}

/// Escapes control characters: tool names and ids come from the agent and
/// the log, and must not move the cursor or forge lines on a terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
