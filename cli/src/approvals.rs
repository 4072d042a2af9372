//! `mandate approvals ...`: the pending-approvals queue that `mandate run
//! --approver queue:<file>` waits on, seen and decided from another terminal.
//! Each subcommand lives in `approvals_<name>.rs`; adding one is a variant
//! here and an arm in [`run`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use mandate::guard::queue::ApprovalQueue;

use super::{approvals_decide, approvals_show};

/// The queue file when `--queue` is not given: in the working directory, so
/// `mandate run --approver queue:approvals.sqlite` and `mandate approvals
/// list` run side by side meet without naming it twice.
pub const DEFAULT_QUEUE: &str = "approvals.sqlite";

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// List the approvals waiting for a decision, oldest first (--all: every
    /// recent one, newest first).
    List(ListArgs),
    /// Show one approval: the call, who asks, on whose behalf, the policies
    /// that hold it and their reasons, the deadline.
    Show(ShowArgs),
    /// Approve a held call; policy still decides whether this reviewer counts.
    Approve(approvals_decide::ApproveArgs),
    /// Deny a held call (this call only: a denial has no scope).
    Deny(approvals_decide::DecideArgs),
    /// Serve the review page: pending approvals in a browser, with Approve
    /// and Deny for reviewers holding a token.
    Serve(super::approvals_serve::ServeArgs),
}

/// `--queue`, shared by every `approvals` subcommand.
#[derive(Args, Clone)]
pub struct QueueArg {
    /// The approvals queue file (SQLite), as given to `mandate run --approver queue:<file>`.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_QUEUE)]
    pub queue: PathBuf,
}

impl QueueArg {
    /// Opens the queue, which must exist: a reviewer typing a wrong path
    /// should hear so, not look at a new empty queue.
    pub fn open(&self) -> anyhow::Result<ApprovalQueue> {
        open_existing(&self.queue)
    }
}

/// Opens the queue at `path` if the file exists.
pub fn open_existing(path: &Path) -> anyhow::Result<ApprovalQueue> {
    if !path.exists() {
        bail!(
            "no approvals queue at `{}`; `mandate run --approver queue:{}` creates it, or pass --queue <file>",
            path.display(),
            path.display()
        );
    }
    Ok(ApprovalQueue::open(path)?)
}

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

pub fn run(cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalsCommand::List(args) => approvals_show::list(args),
        ApprovalsCommand::Show(args) => approvals_show::show(args),
        ApprovalsCommand::Approve(args) => approvals_decide::approve(args),
        ApprovalsCommand::Deny(args) => approvals_decide::run(args, None),
        ApprovalsCommand::Serve(args) => super::approvals_serve::run(args),
    }
}
