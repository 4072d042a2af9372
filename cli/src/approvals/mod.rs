//! `mandate approvals ...`: the pending-approvals queue that `mandate run
//! --approver queue:<file|url>` waits on, seen and decided from another
//! terminal. Each subcommand lives in `approvals/<name>.rs` with its
//! arguments; this file lists them and holds what several share (`--queue`,
//! and [`Queue`], the file or the fleet's database behind it). Adding one is
//! a variant here and an arm in [`run`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mandate::pipeline::queue::{ApprovalQueue, QueueDecision, QueueError, QueuedApproval};
use mandate_fleet::queue::{PgApprovalQueue, is_database_url, without_password};

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
    /// The approvals queue, as given to `mandate run --approver queue:<...>`: a file (SQLite),
    /// or the fleet's database as `postgresql://<your login>@<host>/<database>`, where you
    /// decide as your database login.
    #[arg(long, value_name = "FILE|URL", default_value = DEFAULT_QUEUE)]
    pub queue: PathBuf,
}

impl QueueArg {
    /// The database URL, when `--queue` is one.
    pub fn url(&self) -> Option<&str> {
        self.queue.to_str().filter(|q| is_database_url(q))
    }

    /// The queue for messages: the file, or the URL without its password.
    pub fn shown(&self) -> String {
        match self.url() {
            Some(url) => without_password(url),
            None => self.queue.display().to_string(),
        }
    }

    /// Opens the queue, which must exist: a reviewer typing a wrong path
    /// should hear so, not look at a new empty queue.
    pub fn open(&self) -> anyhow::Result<Queue> {
        match self.url() {
            Some(url) => Queue::fleet(url),
            None => Ok(Queue::File(open_existing(&self.queue)?)),
        }
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

/// The queue a subcommand works on: a file, or the fleet's database with a
/// runtime to drive its connection. The same operations, types and errors.
pub enum Queue {
    File(ApprovalQueue),
    Fleet {
        queue: PgApprovalQueue,
        runtime: tokio::runtime::Runtime,
    },
}

impl Queue {
    /// The fleet's queue at `url`, connected now.
    fn fleet(url: &str) -> anyhow::Result<Queue> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let queue = runtime.block_on(PgApprovalQueue::connect(url))?;
        Ok(Queue::Fleet { queue, runtime })
    }

    /// The approvals waiting for a decision, oldest first.
    pub fn pending(&self) -> Result<Vec<QueuedApproval>, QueueError> {
        match self {
            Queue::File(q) => q.pending(),
            Queue::Fleet { queue, runtime } => runtime.block_on(queue.pending()),
        }
    }

    /// The most recent approvals, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<QueuedApproval>, QueueError> {
        match self {
            Queue::File(q) => q.recent(limit),
            Queue::Fleet { queue, runtime } => runtime.block_on(queue.recent(limit)),
        }
    }

    /// One approval.
    pub fn get(&self, id: &str) -> Result<Option<QueuedApproval>, QueueError> {
        match self {
            Queue::File(q) => q.get(id),
            Queue::Fleet { queue, runtime } => runtime.block_on(queue.get(id)),
        }
    }

    /// Records a decision; in the fleet's queue, as the database login.
    pub fn decide(&self, id: &str, decision: &QueueDecision) -> Result<QueuedApproval, QueueError> {
        match self {
            Queue::File(q) => q.decide(id, decision),
            Queue::Fleet { queue, runtime } => runtime.block_on(queue.decide(id, decision)),
        }
    }
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
