//! `mandate approvals ...`: the pending-approvals queue that `mandate run
//! --approver queue:<file>` waits on, seen and decided from another terminal.
//! Each subcommand lives in `approvals/<name>.rs` with its arguments; this
//! file lists them and holds what several share (`--queue`). Adding one is a variant here and an
//! arm in [`run`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use mandate::pipeline::queue::ApprovalQueue;

mod decide;
mod serve;
mod show;

/// The queue file when `--queue` is not given: in the working directory, so
/// `mandate run --approver queue:approvals.sqlite` and `mandate approvals
/// list` run side by side meet without naming it twice.
pub const DEFAULT_QUEUE: &str = "approvals.sqlite";

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// List the approvals waiting for a decision, oldest first (--all: every
    /// recent one, newest first).
    List(show::ListArgs),
    /// Show one approval: the call, who asks, on whose behalf, the policies
    /// that hold it and their reasons, the deadline.
    Show(show::ShowArgs),
    /// Approve a held call; policy still decides whether this reviewer counts.
    Approve(decide::ApproveArgs),
    /// Deny a held call (this call only: a denial has no scope).
    Deny(decide::DecideArgs),
    /// Serve the review page: pending approvals in a browser, with Approve
    /// and Deny for reviewers holding a token.
    Serve(serve::ServeArgs),
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

pub fn run(cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalsCommand::List(args) => show::list(args),
        ApprovalsCommand::Show(args) => show::show(args),
        ApprovalsCommand::Approve(args) => decide::approve(args),
        ApprovalsCommand::Deny(args) => decide::run(args, None),
        ApprovalsCommand::Serve(args) => serve::run(args),
    }
}
