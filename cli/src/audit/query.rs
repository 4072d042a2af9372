//! `mandate audit query` and `mandate audit reindex`

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use jiff::Timestamp;
use mandate::audit::{AuditIndex, CallEffect, CallQuery, CallRow};

use super::source::From;

/// Rows printed when `--limit` is not given, so that a broad query answers in
/// bounded time and memory; the count line says when there are more.
const DEFAULT_LIMIT: u64 = 1000;

#[derive(Clone, Copy, ValueEnum)]
pub enum DecisionFilter {
    /// Calls that were allowed.
    Allow,
    /// Calls that were denied.
    Deny,
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum QueryFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON object per line for machines.
    Json,
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub source: super::source::Source,
    /// Calls made on behalf of this user id.
    #[arg(long)]
    pub user: Option<String>,
    /// Calls made by this agent id.
    #[arg(long)]
    pub agent: Option<String>,
    /// Calls of this session id.
    #[arg(long)]
    pub session: Option<String>,
    /// Calls of this tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// Only allowed or only denied calls.
    #[arg(long, value_enum)]
    pub decision: Option<DecisionFilter>,
    /// Calls approved by this reviewer (user id).
    #[arg(long)]
    pub approved_by: Option<String>,
    /// Calls at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Calls before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: QueryFormat,
    /// Most rows to print.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Args)]
pub struct ReindexArgs {
    /// The audit log directory.
    pub log: PathBuf,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let since = parse_time("--since", args.since.as_deref())?;
    let until = parse_time("--until", args.until.as_deref())?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since {s} is not before --until {u}: no call can match; swap them?");
    }
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    let query = CallQuery {
        user: args.user,
        agent: args.agent,
        session: args.session,
        tool: args.tool,
        effect: args.decision.map(|d| match d {
            DecisionFilter::Allow => CallEffect::Allow,
            DecisionFilter::Deny => CallEffect::Deny,
        }),
        approved_by: args.approved_by,
        since,
        until,
        limit: Some(limit),
    };

    let (rows, hosts, total) = match args.source.resolve()? {
        From::Database { url, host } => from_database(url, host, &query, limit)?,
        From::Log(log) => {
            let (rows, total) = from_index(log, &query, limit)?;
            (rows, None, total)
        }
    };
    let shown = rows.len() as u64;

    let mut out = BufWriter::new(io::stdout().lock());
    let written = match args.format {
        QueryFormat::Table => write_table(&mut out, &rows, hosts.as_deref(), total),
        QueryFormat::Json => write_json(&mut out, &rows, hosts.as_deref()),
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        // `mandate audit query ... | head` is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("cannot write the answer to stdout"),
    }
    if matches!(args.format, QueryFormat::Json) && total > shown {
        eprintln!("note: showing the first {shown} of {total} calls; raise --limit to see more");
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer from the log's local index, caught up first.
fn from_index(
    log: &std::path::Path,
    query: &CallQuery,
    limit: u64,
) -> anyhow::Result<(Vec<CallRow>, u64)> {
    let mut index = AuditIndex::open(log)?;
    let caught_up = index.catch_up()?;
    if let Some(reason) = &caught_up.rebuilt {
        eprintln!(
            "note: rebuilt the index of `{}` from the log: {reason}",
            log.display()
        );
    }
    let rows = index.query(query)?;
    let shown = rows.len() as u64;
    // Counting again is only needed when the limit may have cut the answer short.
    let total = if shown >= limit {
        index.count(query)?
    } else {
        shown
    };
    Ok((rows, total))
}

/// The answer from the fleet database, across hosts: the rows, each row's
/// host, and the count.
fn from_database(
    url: &str,
    host: Option<&str>,
    query: &CallQuery,
    limit: u64,
) -> anyhow::Result<(Vec<CallRow>, Option<Vec<String>>, u64)> {
    crate::database::runtime()?.block_on(async {
        let database = crate::database::open(url).await?;
        let found = mandate_fleet::query::query(&database.client, query, host).await?;
        let shown = found.len() as u64;
        let total = if shown >= limit {
            mandate_fleet::query::count(&database.client, query, host).await?
        } else {
            shown
        };
        let (hosts, rows) = found.into_iter().map(|c| (c.host_id, c.call)).unzip();
        Ok((rows, Some(hosts), total))
    })
}

pub fn reindex(args: ReindexArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (index, caught_up) = AuditIndex::reindex(&args.log)?;
    println!(
        "indexed {} records ({} calls) of `{}` into `{}` in {:.2} s",
        caught_up.records,
        caught_up.calls,
        args.log.display(),
        index.path().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_time(flag: &str, value: Option<&str>) -> anyhow::Result<Option<Timestamp>> {
    value
        .map(|v| {
            v.parse::<Timestamp>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid {flag} `{v}`: expected an RFC 3339 time with an offset, such as \
                     `2026-01-31T09:00:00Z` or `2026-01-31T10:00:00+01:00`"
                )
            })
        })
        .transpose()
}

fn write_json(out: &mut impl Write, rows: &[CallRow], hosts: Option<&[String]>) -> io::Result<()> {
    for (n, row) in rows.iter().enumerate() {
        match hosts.and_then(|h| h.get(n)) {
            Some(host) => {
                let mut object = serde_json::to_value(row)?;
                if let Some(map) = object.as_object_mut() {
                    map.insert("host_id".into(), host.clone().into());
                }
                serde_json::to_writer(&mut *out, &object)?;
            }
            None => serde_json::to_writer(&mut *out, row)?,
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

const HEADERS: [&str; 11] = [
    "time", "seq", "session", "user", "agent", "tool", "resource", "decision", "approval",
    "status", "latency",
];

fn write_table(
    out: &mut impl Write,
    rows: &[CallRow],
    hosts: Option<&[String]>,
    total: u64,
) -> io::Result<()> {
    let shown = rows.len() as u64;
    if shown > 0 {
        let mut headers: Vec<String> = HEADERS.map(str::to_owned).to_vec();
        let mut cells: Vec<Vec<String>> = rows.iter().map(|r| cells(r).to_vec()).collect();
        // Across hosts, the host comes right after the time.
        if let Some(hosts) = hosts {
            headers.insert(1, "host".to_owned());
            for (row, host) in cells.iter_mut().zip(hosts) {
                row.insert(1, printable(host));
            }
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        write_line(out, &headers, &widths)?;
        for row in &cells {
            write_line(out, row, &widths)?;
        }
    }
    let noun = if total == 1 { "call" } else { "calls" };
    if total > shown {
        writeln!(
            out,
            "{shown} of {total} {noun} shown; raise --limit to see more"
        )
    } else {
        writeln!(out, "{total} {noun}")
    }
}

fn write_line(out: &mut impl Write, cells: &[String], widths: &[usize]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            line.push_str(cell);
        } else {
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn cells(row: &CallRow) -> [String; 11] {
    let text = |v: &Option<String>| mandate::terminal::cell_or_none(v.as_deref()).into_owned();
    let approval = match (row.approval_outcome.as_deref(), &row.reviewer) {
        (None | Some("not_required"), _) => "-".to_owned(),
        (Some(outcome), Some(reviewer)) => {
            format!(
                "{} by {}",
                mandate::terminal::escape(&outcome.replace('_', " ")),
                printable(reviewer)
            )
        }
        (Some(outcome), None) => mandate::terminal::escape(&outcome.replace('_', " ")).into_owned(),
    };
    let latency = match row.latency_us {
        None => "-".to_owned(),
        Some(us) if us < 1000 => format!("{us} µs"),
        Some(us) => format!("{:.1} ms", us as f64 / 1000.0),
    };
    [
        format!("{:.3}", row.time),
        row.decision_seq.to_string(),
        text(&row.session_id),
        text(&row.user_id),
        text(&row.agent_id),
        printable(&row.tool),
        text(&row.resource),
        row.effect.to_string(),
        approval,
        text(&row.status),
        latency,
    ]
}

/// A table cell for a value from the log: tool names, resources, ids and
/// reviewers come from the agent or a reviewer, so a value with spaces, quotes,
/// control or invisible characters is quoted and escaped (see
/// [`mandate::terminal::cell`]) and can neither move the cursor nor pass for
/// two cells.
fn printable(s: &str) -> String {
    mandate::terminal::cell(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tool: &str, user: &str, reviewer: Option<&str>) -> CallRow {
        CallRow {
            call_id: "s:1".into(),
            decision_seq: 3,
            outcome_seq: None,
            time: Timestamp::UNIX_EPOCH,
            session_id: Some("s".into()),
            trace_id: None,
            user_id: Some(user.into()),
            agent_id: Some("a".into()),
            tool: tool.into(),
            resource: None,
            effect: CallEffect::Deny,
            decided_by: None,
            determining_policies: Vec::new(),
            message: None,
            approval_required: reviewer.is_some(),
            approval_outcome: reviewer.map(|_| "approved".into()),
            reviewer: reviewer.map(Into::into),
            approved_by: None,
            status: None,
            latency_us: None,
            error: None,
        }
    }

    #[test]
    fn table_cells_cannot_be_forged_with_spaces_or_invisible_characters() {
        let forged = row("send_email  carol", "bob\u{200b}", Some("carol \u{1b}[8m"));
        let shown = cells(&forged);
        assert_eq!(shown[5], "\"send_email  carol\"");
        assert_eq!(shown[3], "\"bob\\u{200b}\"");
        assert_eq!(shown[8], "approved by \"carol \\u{1b}[8m\"");
        // A value `-` cannot pass for "none".
        assert_eq!(cells(&row("x", "-", None))[3], "\"-\"");
        let mut out = Vec::new();
        write_table(&mut out, &[forged], None, 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{200b}'),
            "{text}"
        );
    }
}
