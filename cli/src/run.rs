//! `mandate run`: one agent session under the guard.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mandate::audit::{AuditConfig, AuditLog, CheckpointSigner, Retention};
use mandate::limits::SessionLimits;
use mandate::pipeline::{
    BoxFuture, CallReport, CommandReviewer, DenyAll, Guard, PendingApproval, PromptReviewer,
    RedactionKey, ReloadError, Reloaded, ReviewDecision, ReviewError, Reviewer, Session,
};
use mandate::policy::{Effect, Policies};
use mandate::runtime::{
    AgentComponent, Compiled, ComponentNeeds, RunOutcome, Runtime, default_compile_cache,
};
use mandate::terminal::{DISPLAY_CHARS, bounded, escape, escape_lines};

#[derive(Args)]
pub struct RunArgs {
    /// The agent component (.wasm, built for wasm32-wasip2).
    #[arg(long)]
    agent: PathBuf,
    /// Directory with schema.cedarschema, *.cedar and entities.json. Read again on SIGHUP:
    /// a set that loads replaces the one in force, one that does not is rejected.
    #[arg(long)]
    policies: PathBuf,
    /// Session file (JSON): user, agent, scopes, expiry, delegation chain.
    #[arg(long)]
    session: PathBuf,
    /// Audit log directory to append to (created if missing; its parent must exist).
    #[arg(long)]
    audit: PathBuf,
    /// Signing key (from `mandate audit keygen`) for checkpoints: the log then gets a signed
    /// checkpoint every 10,000 records, every minute while records arrive and at the end, also
    /// appended to <audit>/checkpoints.jsonl.
    #[arg(long, value_name = "SIGNING KEY FILE")]
    checkpoint_key: Option<PathBuf>,
    /// Start a new segment file once the active one would grow past this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = AuditConfig::default().segment_max_bytes)]
    segment_max_bytes: u64,
    /// Let the log owner's group read the log: directories 0750 and files 0640 instead of
    /// the private 0700 and 0600.
    #[arg(long)]
    audit_group_readable: bool,
    /// Keep at most this many segment files, deleting the oldest after recording what was
    /// removed (default: keep all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    retain_segments: Option<u64>,
    /// Salt key for sensitive arguments; created (owner-only) if the file does not exist.
    /// Without it a one-time key is used and redacted values can never be proven with
    /// `mandate audit prove`.
    #[arg(long, value_name = "FILE")]
    salt_key: Option<PathBuf>,
    /// Who decides calls that policy holds for a human: `deny` (default),
    /// `prompt` (ask at this terminal), `cmd:<program>` (JSON on stdin and stdout),
    /// `queue:<file>` (the approvals queue: `mandate approvals ...` or the review page) or
    /// `queue:postgresql://<host login>@<host>/<database>` (the fleet's queue, shared by many
    /// hosts: `mandate approvals ... --queue postgresql://<your login>@...`).
    #[arg(long, default_value = "deny")]
    approver: String,
    /// A variable of this environment to pass on to a `cmd:` approver (repeatable). The
    /// program gets only PATH, HOME, LANG, LC_ALL, TZ and TMPDIR otherwise, never the host's
    /// credentials.
    #[arg(long, value_name = "NAME")]
    reviewer_env: Vec<String>,
    /// A reviewer (user id) allowed to see the clear values of a held call's sensitive
    /// arguments while it is held (repeatable), with a `queue:` approver (`mandate approvals
    /// show --reviewer <id>` and the review page ask this host for them) or `prompt` (shown
    /// after the reviewer gives their id); they never reach the log or the queue file.
    #[arg(long, value_name = "USER ID")]
    reveal_to: Vec<String>,
    /// Seconds a reviewer has to decide.
    #[arg(long, default_value_t = 300)]
    approval_timeout: u64,
    /// Folder the example tools work in: documents/, summaries/, outbox.jsonl (without
    /// --tools; a manifest names its own).
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    #[command(flatten)]
    tools: crate::tools::ToolsArg,
    /// Keep compiled agents in this directory (created 0700; refused if another user could
    /// write to it), so that a component is compiled once and later runs start at once.
    /// Default: $XDG_CACHE_HOME/mandate/compiled or ~/.cache/mandate/compiled.
    #[arg(long, value_name = "DIR", conflicts_with = "no_compile_cache")]
    compile_cache: Option<PathBuf>,
    /// Compile the agent on every run; keep nothing on disk.
    #[arg(long)]
    no_compile_cache: bool,
    /// Most core module instances the agent's component may have (CPython by componentize-py
    /// has 14).
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().instances)]
    max_instances: usize,
    /// Most linear memories the agent's component may define.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().memories)]
    max_memories: usize,
    /// Most tables the agent's component may define.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().tables)]
    max_tables: usize,
    /// Largest linear memory of the agent, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = SessionLimits::default().memory_bytes / (1024 * 1024))]
    memory_limit: usize,
    /// Seconds of CPU the agent may spend running its own code (time waiting in tool calls does
    /// not count); 0 turns the limit and epoch interruption off.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    cpu_time: f64,
    /// A deterministic budget of wasm fuel (instructions, roughly); off by default.
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Most tool calls in the session.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().tool_calls)]
    max_tool_calls: u64,
    /// Largest arguments of one tool call, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = SessionLimits::default().argument_bytes)]
    max_argument_bytes: usize,
    /// Largest result of one tool call, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = SessionLimits::default().result_bytes)]
    max_result_bytes: usize,
    /// The task given to the agent.
    task: String,
}

fn reviewer(spec: &str, env: &[String]) -> anyhow::Result<Arc<dyn Reviewer>> {
    if !env.is_empty() && !spec.starts_with("cmd:") {
        bail!(
            "--reviewer-env applies only to a `cmd:<program>` approver, not `{}`",
            escape(&shown_approver(spec))
        );
    }
    Ok(match spec {
        "deny" => Arc::new(DenyAll),
        "prompt" => Arc::new(PromptReviewer::new()),
        _ => match (spec.strip_prefix("cmd:"), spec.strip_prefix("queue:")) {
            (Some(program), _) if !program.is_empty() => {
                // Checked now, like a queue, so that a typo stops the run before
                // the agent starts rather than denying every held call later.
                check_reviewer_program(program)?;
                Arc::new(
                    env.iter()
                        .fold(CommandReviewer::new(program), |r, name| r.allow_env(name)),
                )
            }
            (_, Some(url)) if mandate_fleet::queue::is_database_url(url) => {
                // Checked now, like a file: an unreachable database, a
                // refused login, one not migrated or a login that may not
                // hold calls stops the run before the agent starts. The
                // reviewer keeps a connection of its own, made on the
                // session's runtime when the first call is held.
                check_fleet_queue(url)?;
                Arc::new(mandate_fleet::queue::PgQueueReviewer::new(
                    mandate_fleet::queue::PgApprovalQueue::open(url)?,
                ))
            }
            (_, Some(file)) if !file.is_empty() => {
                // Opened now so that a queue nobody could reach stops the run
                // before the agent starts; then afresh for each held call.
                mandate::pipeline::queue::ApprovalQueue::open(file.as_ref())?;
                Arc::new(mandate::pipeline::queue::QueueReviewer::at(file))
            }
            _ => bail!(
                "unknown approver `{}`: use `deny`, `prompt`, `cmd:<program>`, `queue:<file>` or `queue:postgresql://<login>@<host>/<database>`",
                escape(&shown_approver(spec))
            ),
        },
    })
}

/// `spec` for messages: a database URL in it without its password.
fn shown_approver(spec: &str) -> String {
    match spec.split_once("://") {
        Some(_) => match spec.strip_prefix("queue:") {
            Some(url) => format!("queue:{}", mandate_fleet::queue::without_password(url)),
            None => mandate_fleet::queue::without_password(spec),
        },
        None => spec.to_string(),
    }
}

/// Connects to the fleet's queue at `url` and checks that its login may hold
/// calls there; the connection is closed again.
fn check_fleet_queue(url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let queue = mandate_fleet::queue::PgApprovalQueue::connect(url).await?;
        queue.check_host().await
    })?;
    Ok(())
}

/// Whether the `cmd:` reviewer `program` can be started: a path (with a `/`)
/// must name an executable file; a bare name must be one on `PATH`.
fn check_reviewer_program(program: &str) -> anyhow::Result<()> {
    let path = Path::new(program);
    if program.contains('/') {
        return executable(path)
            .map_err(|why| anyhow::anyhow!("reviewer command `{}` {why}", escape(program)));
    }
    let found = std::env::var_os("PATH")
        .map(|dirs| std::env::split_paths(&dirs).any(|dir| executable(&dir.join(path)).is_ok()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        bail!(
            "reviewer command `{}` is not an executable on PATH; give its path, e.g. `cmd:./reviewer.sh`",
            escape(program)
        )
    }
}

/// `Ok` when `path` is a file its owner, group or others may execute, else why not.
fn executable(path: &Path) -> Result<(), &'static str> {
    let meta = std::fs::metadata(path).map_err(|_| "does not exist or cannot be read")?;
    if !meta.is_file() {
        return Err("is not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("is not executable; `chmod +x` it");
        }
    }
    Ok(())
}

/// Says on stdout that a call is held, with its approval id, before the
/// reviewer is asked (the guard has recorded the hold by then), so an
/// operator knows what the run waits for and what to look up.
struct Announced(Arc<dyn Reviewer>);

impl Reviewer for Announced {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        println!(
            "  held  {} {}: approval {} waiting for {} until {}",
            escape(&pending.tool),
            escape(&pending.resource),
            escape(&pending.approval_id),
            escape(self.0.name()),
            pending.deadline
        );
        self.0.review(pending)
    }
}

/// One line per call. The tool name, the resource, error text (field names,
/// a tool's own message) and a reviewer's id come from the agent, a tool or a
/// reviewer: each is escaped and bounded, so that nothing in them can draw on
/// the terminal.
fn print_call(report: &CallReport) {
    let resource = report.resource.as_deref().unwrap_or("-");
    let (tag, detail) = match (&report.error, report.effect) {
        (None, _) => ("allow", report.policies.join(", ")),
        (Some(e), Effect::Allow) => ("fail ", e.to_string()),
        (Some(e), Effect::Deny) => ("deny ", e.to_string()),
    };
    let approval = match &report.reviewer {
        Some(r) => format!(
            " [approval {} by {}]",
            report.approval,
            bounded(r, DISPLAY_CHARS)
        ),
        None if report.approval != mandate::pipeline::ApprovalOutcome::NotRequired => {
            format!(" [approval {}]", report.approval)
        }
        None => String::new(),
    };
    let seq = report
        .decision_seq
        .map_or_else(|| "-".to_string(), |s| s.to_string());
    println!(
        "  {tag} {} {}: {}{approval} (seq {seq})",
        bounded(&report.tool, DISPLAY_CHARS),
        bounded(resource, DISPLAY_CHARS),
        bounded(&detail, DISPLAY_CHARS * 4),
    );
}

/// Before every line of the agent's output and result.
const AGENT_PREFIX: &str = "agent| ";

/// The log's settings from the command line.
fn audit_config(args: &RunArgs) -> anyhow::Result<AuditConfig> {
    let checkpoint_signer = match &args.checkpoint_key {
        Some(path) => Some(Arc::new(CheckpointSigner::load(path)?)),
        None => None,
    };
    let keep_segments = match args.retain_segments {
        Some(n) => Some(usize::try_from(n).context("--retain-segments is too large")?),
        None => None,
    };
    Ok(AuditConfig {
        segment_max_bytes: args.segment_max_bytes,
        retention: Retention {
            keep_segments,
            max_age: None,
        },
        checkpoint_signer,
        group_readable: args.audit_group_readable,
        ..AuditConfig::default()
    })
}

/// The session limits from the command line.
fn session_limits(args: &RunArgs) -> anyhow::Result<SessionLimits> {
    if !args.cpu_time.is_finite() || args.cpu_time < 0.0 {
        bail!(
            "--cpu-time must be a number of seconds, 0 or more, not {}",
            args.cpu_time
        );
    }
    Ok(SessionLimits {
        memory_bytes: args
            .memory_limit
            .checked_mul(1024 * 1024)
            .context("--memory-limit is too large")?,
        cpu_time: (args.cpu_time > 0.0).then(|| Duration::from_secs_f64(args.cpu_time)),
        fuel: args.fuel,
        tool_calls: args.max_tool_calls,
        argument_bytes: args.max_argument_bytes,
        result_bytes: args.max_result_bytes,
        instances: args.max_instances,
        memories: args.max_memories,
        tables: args.max_tables,
        // One session runs: the pool reserves slots for that one only.
        concurrent_sessions: 1,
        ..SessionLimits::default()
    })
}

/// Loads the agent into a runtime whose pool is sized to it (within the
/// limits), from the compile cache when it was compiled before. Compiling a
/// large agent takes a while the first time: that is said while it happens.
fn load_agent(args: &RunArgs) -> anyhow::Result<(Runtime, AgentComponent)> {
    let bytes = std::fs::read(&args.agent)
        .with_context(|| format!("cannot read agent `{}`", args.agent.display()))?;
    let limits = session_limits(args)?;
    // Counted before the runtime exists, so that its pool fits this agent;
    // an agent over a limit is refused by `load_agent_bytes` below, which
    // names the limit and its flag.
    let limits = match ComponentNeeds::of(&bytes) {
        Ok(needs) if needs.fits(&limits) => limits.fitted_to(needs),
        _ => limits,
    };
    let mut builder = Runtime::builder().limits(limits);
    if !args.no_compile_cache {
        match args.compile_cache.clone().or_else(default_compile_cache) {
            Some(dir) => builder = builder.compile_cache(dir),
            None => eprintln!(
                "note: neither XDG_CACHE_HOME nor HOME is set, so the agent is compiled on every run; choose a cache with --compile-cache"
            ),
        }
    }
    let runtime = builder.build()?;
    let announce = CompileNotice::after(Duration::from_millis(500), &args.agent, bytes.len());
    let agent = runtime.load_agent_bytes(&args.agent, &bytes);
    announce.finish(
        agent.as_ref().ok().map(AgentComponent::compiled),
        runtime.compile_cache(),
    );
    Ok((runtime, agent?))
}

/// Says that the agent is being compiled if loading it takes longer than a
/// moment (a cached agent loads in milliseconds), then how long it took.
struct CompileNotice {
    done: std::sync::mpsc::Sender<Option<String>>,
    thread: std::thread::JoinHandle<()>,
}

impl CompileNotice {
    fn after(delay: Duration, agent: &Path, bytes: usize) -> CompileNotice {
        use std::sync::mpsc::{RecvTimeoutError, channel};
        let (done, wait) = channel::<Option<String>>();
        let message = format!(
            "compiling agent `{}` ({:.1} MB) for this machine; later runs reuse it",
            escape(&agent.display().to_string()),
            bytes as f64 / 1e6
        );
        let thread = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(delay) {
                eprintln!("{message}");
                if let Ok(Some(finished)) = wait.recv() {
                    eprintln!("{finished}");
                }
            }
        });
        CompileNotice { done, thread }
    }

    fn finish(self, compiled: Option<Compiled>, cache: Option<&Path>) {
        let finished = match (compiled, cache) {
            (Some(Compiled::Now(took)), Some(dir)) => Some(format!(
                "compiled in {:.1} s; cached in `{}`",
                took.as_secs_f64(),
                escape(&dir.display().to_string())
            )),
            (Some(Compiled::Now(took)), None) => Some(format!(
                "compiled in {:.1} s (no compile cache)",
                took.as_secs_f64()
            )),
            // A slow disk can make even a cached agent take a moment.
            (Some(Compiled::FromCache), _) => {
                Some("it was compiled before: loaded from the compile cache".to_string())
            }
            (None, _) => None,
        };
        // Either ends the wait before the notice or is printed after it.
        let _ = self.done.send(finished);
        let _ = self.thread.join();
    }
}

/// Says what a SIGHUP reload did.
fn print_reload(dir: &Path, result: Result<Reloaded, ReloadError>) {
    match result {
        Ok(reloaded) => eprintln!(
            "policies reloaded from `{}`: {} policies, digest {} (was {}), record {}",
            dir.display(),
            reloaded.policies,
            &reloaded.digest[..12],
            &reloaded.previous_digest[..12],
            reloaded.seq
        ),
        Err(e) => eprintln!("error: {e}"),
    }
}

/// `--reveal-to`: served beside the queue, for the reviewer tools.
fn reveal_config(args: &RunArgs) -> anyhow::Result<mandate::pipeline::reveal::RevealConfig> {
    use mandate::pipeline::reveal::{RevealConfig, socket_dir_for_queue};
    if args.reveal_to.is_empty() {
        return Ok(RevealConfig::default());
    }
    if let Some(empty) = args.reveal_to.iter().find(|r| r.trim().is_empty()) {
        bail!("--reveal-to `{}` names no reviewer", escape(empty));
    }
    let config = RevealConfig::to(args.reveal_to.iter().cloned());
    if args.approver == "prompt" {
        // The prompt asks who is answering, then shows the values if allowed.
        return Ok(config);
    }
    if let Some(url) = args
        .approver
        .strip_prefix("queue:")
        .filter(|q| mandate_fleet::queue::is_database_url(q))
    {
        bail!(
            "--reveal-to needs a `queue:<file>` approver or `prompt`; the reviewers of the fleet's queue `{}` may be on any machine, and this host serves clear values only on this one",
            escape(&mandate_fleet::queue::without_password(url))
        );
    }
    let Some(queue) = args.approver.strip_prefix("queue:") else {
        bail!(
            "--reveal-to needs a `queue:<file>` approver, whose reviewer tools ask this host for the clear values, or `prompt`; not `{}`",
            escape(&args.approver)
        );
    };
    Ok(config.serve_in(socket_dir_for_queue(queue.as_ref())))
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let policies = Policies::load_dir(&args.policies)
        .with_context(|| format!("cannot load policies from `{}`", args.policies.display()))?;
    let session = Session::from_file(&args.session)?;
    let reviewer: Arc<dyn Reviewer> =
        Arc::new(Announced(reviewer(&args.approver, &args.reviewer_env)?));
    let reveal = reveal_config(&args)?;
    // Everything that can be checked is checked before the log is touched.
    let (_runtime, agent) = load_agent(&args)?;
    let redaction_key = match &args.salt_key {
        Some(path) => {
            let (key, created) = RedactionKey::load_or_generate(path)?;
            if created {
                eprintln!(
                    "note: created salt key `{}` (key id {}); keep it secret and keep it: it is needed to prove redacted arguments",
                    path.display(),
                    key.key_id()
                );
            }
            Some(key)
        }
        None => None,
    };
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // MCP servers start now: one that cannot stops the run before the log
    // is touched and before the agent starts.
    let mut served = args.tools.serve(&args.workspace, &tokio)?;
    let tools = served.registry.clone();
    let audit = AuditLog::open_with(&args.audit, audit_config(&args)?)?;
    let mut builder = Guard::builder(policies, audit)
        .reveal(reveal)
        .tools(tools)
        .reviewer_arc(reviewer)
        .approval_timeout(Duration::from_secs(args.approval_timeout))
        .on_call(print_call);
    if let Some(egress) = served.egress.take() {
        builder = builder.egress(egress);
    }
    let provable = redaction_key.is_some();
    if let Some(key) = redaction_key {
        builder = builder.redaction_key(key);
    }
    let guard = builder.build()?;
    if !provable {
        eprintln!(
            "note: no --salt-key: sensitive arguments are committed with a one-time key and can never be proven"
        );
    }

    println!(
        "session {} · user {} · agent {} · policies {}",
        session.session_id,
        session.user.id,
        session.agent.id,
        &guard.policies().digest()[..12]
    );
    let report = tokio.block_on(async {
        // Registered before the agent starts, so that a SIGHUP never kills
        // the host mid-session.
        let reloader = match guard.reload_on_sighup(args.policies.clone(), print_reload) {
            Ok(task) => Some(task),
            Err(e) => {
                eprintln!("warning: cannot listen for SIGHUP, policies cannot be reloaded: {e}");
                None
            }
        };
        let report = agent.run(&guard, session, &args.task).await;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        report
    })?;
    // The agent's output and result are the agent's own text: each line is
    // escaped and set apart by a prefix, so that none of it can pass for the
    // host's lines (a fake approval block) or hide them.
    if !report.output.trim().is_empty() {
        print!(
            "agent output:\n{}",
            escape_lines(report.output.trim_end(), AGENT_PREFIX)
        );
    }
    if let Some(set) = &served.set {
        tokio.block_on(set.shutdown());
    }
    // The final checkpoint, and any failure to write it, before the head is reported.
    guard.audit().shutdown()?;
    let (head_seq, _) = guard.audit().head();
    let code = match &report.outcome {
        RunOutcome::Finished(Ok(text)) => {
            print!("agent result:\n{}", escape_lines(text, AGENT_PREFIX));
            ExitCode::SUCCESS
        }
        RunOutcome::Finished(Err(text)) => {
            print!("agent gave up:\n{}", escape_lines(text, AGENT_PREFIX));
            ExitCode::from(1)
        }
        RunOutcome::Faulted(message) => {
            println!("agent stopped by the host: {}", escape(message));
            ExitCode::from(1)
        }
    };
    println!("audit: {} records in {}", head_seq, args.audit.display());
    Ok(code)
}
