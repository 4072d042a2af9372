//! `mandate approvals list` and `mandate approvals show <id>`

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use jiff::{SignedDuration, Timestamp};
use mandate::pipeline::queue::{QueueStatus, QueuedApproval};
use mandate::pipeline::reveal::{ClearValue, RevealError, fetch, socket_dir_for_queue};
use mandate::terminal::{cell, escape};

use super::QueueArg;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ShowFormat {
    /// For people.
    #[default]
    Table,
    /// One JSON value: the approval (show) or an array of them (list).
    Json,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub queue: QueueArg,
    /// Every recent approval, decided or not, newest first.
    #[arg(long)]
    pub all: bool,
    /// Most approvals listed with --all.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ShowFormat,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The approval id, as `mandate approvals list` shows it.
    pub id: String,
    #[command(flatten)]
    pub queue: QueueArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ShowFormat,
    /// Your user id: while the call is held, ask its host for the clear values of the
    /// redacted arguments, which it gives only to reviewers it was started with
    /// `--reveal-to`.
    #[arg(long, value_name = "USER ID")]
    pub reviewer: Option<String>,
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let queue = args.queue.open()?;
    let approvals = if args.all {
        queue.recent(args.limit)?
    } else {
        queue.pending()?
    };
    let mut out = io::stdout().lock();
    match args.format {
        ShowFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &approvals)?;
            writeln!(out)?;
        }
        ShowFormat::Table => write_table(&mut out, &approvals, args.all)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let queue = args.queue.open()?;
    let Some(approval) = queue.get(&args.id)? else {
        eprintln!(
            "error: no approval `{}` in the queue `{}`; `mandate approvals list` shows the pending ones",
            escape(&args.id),
            args.queue.shown()
        );
        return Ok(ExitCode::from(1));
    };
    let revealed = args.reviewer.as_ref().map(|r| ask_host(&args, r));
    let mut out = io::stdout().lock();
    match args.format {
        ShowFormat::Json => {
            let mut value = serde_json::to_value(&approval)?;
            if let (Some(Ok(values)), Some(map)) = (&revealed, value.as_object_mut()) {
                map.insert("revealed".into(), serde_json::to_value(values)?);
            }
            serde_json::to_writer_pretty(&mut out, &value)?;
            writeln!(out)?;
        }
        ShowFormat::Table => write_one(&mut out, &approval)?,
    }
    match revealed {
        Some(Ok(values)) if args.format == ShowFormat::Table => write_revealed(&mut out, &values)?,
        Some(Err(e)) => eprintln!("note: no clear values: {e}"),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The clear values the host holding the call gives `reviewer`, if any.
fn ask_host(args: &ShowArgs, reviewer: &str) -> Result<Vec<ClearValue>, String> {
    if args.queue.url().is_some() {
        // The host holding the call may be on any machine; it serves clear
        // values only beside a queue file.
        return Err(
            "the hosts of a fleet queue do not reveal clear values; a host with a `queue:<file>` approver and --reveal-to does"
                .into(),
        );
    }
    ask_host_beside_file(args, reviewer).map_err(|e| e.to_string())
}

fn ask_host_beside_file(args: &ShowArgs, reviewer: &str) -> Result<Vec<ClearValue>, RevealError> {
    let dir = socket_dir_for_queue(&args.queue.queue);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RevealError::Io {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    runtime.block_on(fetch(&dir, &args.id, reviewer))
}

/// The clear values, escaped like everything else the agent wrote; they are
/// shown to this reviewer only and are in no file.
fn write_revealed(out: &mut impl Write, values: &[ClearValue]) -> io::Result<()> {
    writeln!(
        out,
        "in clear   (from the host, for you only; not in the log or the queue)"
    )?;
    for v in values {
        let text = match &v.value {
            serde_json::Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        let mut lines = text.lines();
        writeln!(
            out,
            "  {}: {}",
            escape(&v.path),
            escape(lines.next().unwrap_or(""))
        )?;
        for line in lines {
            writeln!(out, "    {}", escape(line))?;
        }
    }
    Ok(())
}

/// `4m 48s`, to the second.
fn span(d: SignedDuration) -> String {
    let secs = SignedDuration::from_secs(d.as_secs());
    if secs.is_zero() {
        "0s".into()
    } else {
        format!("{secs:#}")
    }
}

/// A timestamp to the second, for people.
fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `4m 48s left` or `passed 2m ago`.
fn time_left(approval: &QueuedApproval, now: Timestamp) -> String {
    let left = approval.pending.deadline.duration_since(now);
    if left.is_positive() {
        format!("{} left", span(left))
    } else {
        format!("passed {} ago", span(-left))
    }
}

/// The table: every value that comes from the agent, the session or a
/// reviewer goes through [`cell`], so a value with spaces, quotes or invisible
/// characters is quoted and escaped and can never pass for two cells or hide.
fn write_table(out: &mut impl Write, approvals: &[QueuedApproval], all: bool) -> io::Result<()> {
    let now = Timestamp::now();
    let mut rows: Vec<Vec<String>> = vec![
        [
            "id", "status", "waiting", "deadline", "session", "user", "agent", "tool", "resource",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for a in approvals {
        let p = &a.pending;
        rows.push(vec![
            cell(&p.approval_id).into_owned(),
            match (&a.status, &a.reviewer) {
                (QueueStatus::Approved | QueueStatus::Denied, Some(r)) => {
                    format!("{} by {}", a.status, cell(r))
                }
                (s, _) => s.to_string(),
            },
            // How long it has waited, or waited until it was closed.
            span(a.decided_at.unwrap_or(now).duration_since(a.submitted_at)),
            if a.status == QueueStatus::Pending {
                time_left(a, now)
            } else {
                when(p.deadline)
            },
            cell(&p.session_id).into_owned(),
            cell(&p.user.id).into_owned(),
            cell(&p.agent.id).into_owned(),
            cell(&p.tool).into_owned(),
            cell(&p.resource).into_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let n = approvals.len();
    let what = if all { "approval" } else { "pending approval" };
    writeln!(out, "{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// One approval for people; everything not written by this host (the agent's
/// tool, resource and arguments, the session's names, a reviewer's id and
/// reason) is escaped, so that it cannot draw on the terminal.
fn write_one(out: &mut impl Write, a: &QueuedApproval) -> io::Result<()> {
    let p = &a.pending;
    let e = |text: &str| escape(text).into_owned();
    let now = Timestamp::now();
    writeln!(out, "approval   {}", e(&p.approval_id))?;
    let status = match a.status {
        QueueStatus::Pending => format!("pending, {}", time_left(a, now)),
        s => s.to_string(),
    };
    writeln!(out, "status     {status}")?;
    writeln!(out, "deadline   {}", when(p.deadline))?;
    writeln!(out, "submitted  {}", when(a.submitted_at))?;
    writeln!(
        out,
        "session    {} (call {})",
        e(&p.session_id),
        e(&p.call_id)
    )?;
    writeln!(out, "user       {} <{}>", e(&p.user.id), e(&p.user.email))?;
    writeln!(
        out,
        "agent      {} {} ({})",
        e(&p.agent.name),
        e(&p.agent.version),
        e(&p.agent.id)
    )?;
    let chain: Vec<String> = p.delegation_chain.iter().map(ToString::to_string).collect();
    writeln!(out, "on behalf  {}", e(&chain.join(" -> ")))?;
    writeln!(out, "tool       {}", e(&p.tool))?;
    writeln!(out, "resource   {}", e(&p.resource))?;
    let arguments = serde_json::to_string_pretty(&p.arguments).unwrap_or_default();
    let mut lines = arguments.lines();
    writeln!(out, "arguments  {}", e(lines.next().unwrap_or("")))?;
    for line in lines {
        writeln!(out, "           {}", e(line))?;
    }
    for (i, policy) in p.demanded_by.iter().enumerate() {
        let label = if i == 0 { "held by" } else { "" };
        match &policy.reason {
            Some(reason) => writeln!(out, "{label:<11}{}: {}", e(&policy.id), e(reason))?,
            None => writeln!(out, "{label:<11}{}", e(&policy.id))?,
        }
    }
    if let (Some(at), Some(reviewer)) = (a.decided_at, &a.reviewer) {
        let scope = a.scope.map(|s| format!(", scope {s}")).unwrap_or_default();
        writeln!(
            out,
            "decided    {} by {} at {}{scope}",
            a.status,
            e(reviewer),
            when(at)
        )?;
    } else if let Some(at) = a.decided_at {
        writeln!(
            out,
            "closed     {}, no decision before the deadline",
            when(at)
        )?;
    }
    if let Some(reason) = &a.reason {
        writeln!(out, "reason     {}", e(reason))?;
    }
    Ok(())
}
