//! `mandate audit ...`: each subcommand in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{audit_keygen, audit_prove, audit_query, audit_replay, audit_verify};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check a log's hash chain (and, with --key, its signed checkpoints);
    /// lists every problem, the first bad seq first.
    Verify(VerifyArgs),
    /// Make an Ed25519 key pair for signing checkpoints.
    Keygen(KeygenArgs),
    /// Show that a value matches the commitment a redacted argument left in the log.
    Prove(ProveArgs),
    /// Find calls by user, agent, session, tool, decision, reviewer or time.
    Query(QueryArgs),
    /// Rebuild the query index of a log from the log itself.
    Reindex(ReindexArgs),
    /// Decide every recorded call again under candidate policies and list
    /// the calls whose decision or approval requirement would change.
    Replay(audit_replay::ReplayArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The audit log: a log directory, or a single segment file.
    pub log: PathBuf,
    /// Public key (from `mandate audit keygen`): also verify every signed checkpoint.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Checkpoint file shipped elsewhere (default: <log>/checkpoints.jsonl when --key is given).
    #[arg(long)]
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

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the signing key; the public key goes to <out>.pub.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ProveArgs {
    /// The audit log.
    pub log: PathBuf,
    /// The seq of the decision record holding the redacted argument.
    #[arg(long)]
    pub seq: u64,
    /// The redacted field, e.g. `arguments.body` or `arguments.attachments[0].content`.
    #[arg(long)]
    pub path: String,
    /// The original value, as JSON (a JSON string needs its quotes: '"hello"').
    /// It may start with `-` (`--value -12`): it is never read as an option.
    #[arg(long, allow_hyphen_values = true)]
    pub value: String,
    /// The salt key the guard redacted with.
    #[arg(long)]
    pub salt_key: PathBuf,
}

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
    /// The audit log directory.
    pub log: PathBuf,
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

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(args) => audit_verify::run(args),
        AuditCommand::Keygen(args) => audit_keygen::run(args),
        AuditCommand::Prove(args) => audit_prove::run(args),
        AuditCommand::Query(args) => audit_query::run(args),
        AuditCommand::Reindex(args) => audit_query::reindex(args),
        AuditCommand::Replay(args) => audit_replay::run(args),
    }
}
