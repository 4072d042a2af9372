//! Human approval: the callback a guard calls when policy holds a call for a
//! reviewer, and the built-in reviewers.
//!
//! The guard enforces the deadline around [`Reviewer::review`]; a reviewer
//! that errors, or one that has not answered by the deadline, means denied.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::{AgentRef, Delegate, UserRef};
use super::tools::BoxFuture;
use crate::policy::DeterminingPolicy;

/// Everything a reviewer needs to decide one held call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Unique id of this approval request.
    pub approval_id: String,
    /// The session the call belongs to.
    pub session_id: String,
    /// The call, as in the audit records.
    pub call_id: String,
    /// The tool the agent wants to call.
    pub tool: String,
    /// Its arguments, with sensitive ones redacted.
    pub arguments: Value,
    /// The Cedar resource, e.g. `Document::"doc_88pk3r"`.
    pub resource: String,
    /// The user the agent acts for.
    pub user: UserRef,
    /// The agent.
    pub agent: AgentRef,
    /// On whose behalf, `user:alice` -> `agent:...`.
    pub delegation_chain: Vec<Delegate>,
    /// The policies that hold the call for a human, with their reasons.
    pub demanded_by: Vec<DeterminingPolicy>,
    /// No decision is accepted after this instant.
    pub deadline: Timestamp,
    /// The clear values of the sensitive arguments, for the reviewers the
    /// operator allows ([`crate::pipeline::reveal::RevealConfig`]); empty
    /// otherwise. Held in memory for the hold only: never serialized, so
    /// never in the queue, the log or a `cmd:` reviewer's input.
    #[serde(skip)]
    pub revealed: crate::pipeline::reveal::Revealed,
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the call proceed (if policy allows this reviewer).
    Approve,
    /// Refuse the call.
    Deny,
}

/// A reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// Approve or deny.
    pub decision: Verdict,
    /// The reviewer's user id; policies see it as `context.approval.reviewer`.
    pub reviewer: String,
    /// Why, shown to the agent on denial and written in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How far an approval reaches: this call only (the default), or every
    /// later call of the session on the same tool and resource, as long as
    /// policy accepts the standing grant (`context.approval.standing`).
    #[serde(default, skip_serializing_if = "GrantScope::is_once")]
    pub scope: GrantScope,
}

pub use crate::audit::record::{GrantScope, UnknownGrantScope};

/// A reviewer that could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reviewer `{reviewer}` failed: {message}")]
pub struct ReviewError {
    /// Which reviewer.
    pub reviewer: String,
    /// What went wrong.
    pub message: String,
}

/// The approval callback. Implement it to plug a host's own review flow in.
///
/// `review` may take minutes (a human decides); it must not block a thread
/// while it waits. The guard drops the future at the deadline.
pub trait Reviewer: Send + Sync + 'static {
    /// A short name for records, e.g. `deny-all`.
    fn name(&self) -> &str;

    /// Decides `pending`.
    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>>;

    /// The guard refused the decision `review` gave: policy does not accept
    /// that reviewer. A reviewer that several people share (the queue)
    /// hands the approval back to them, tells the refused one why, and
    /// waits for the next decision, so that one refused reviewer does not
    /// end the hold for everyone. `None` (the default): the refusal ends
    /// the hold and the call is denied. The future is polled only after the
    /// guard has recorded the refusal.
    fn review_again<'a>(
        &'a self,
        _pending: &'a PendingApproval,
        _refused: RefusedDecision,
    ) -> Option<BoxFuture<'a, Result<ReviewDecision, ReviewError>>> {
        None
    }

    /// The guard took the decision `review` gave as final (policy accepted
    /// the reviewer, or the decision ended the hold). The queue marks it so
    /// that the reviewer's tool can say so.
    fn decision_taken<'a>(&'a self, _pending: &'a PendingApproval) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A reviewer's decision the guard refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDecision {
    /// The decision as the reviewer gave it.
    pub decision: ReviewDecision,
    /// Why policy does not accept the reviewer.
    pub why: String,
}

/// Denies every held call: the default, so nothing waits on a human who is
/// not there.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl Reviewer for DenyAll {
    fn name(&self) -> &str {
        "deny-all"
    }

    fn review<'a>(
        &'a self,
        _pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(async {
            Ok(ReviewDecision {
                decision: Verdict::Deny,
                reviewer: "deny-all".into(),
                reason: Some("no reviewer is configured; held calls are denied".into()),
                scope: GrantScope::Once,
            })
        })
    }
}

/// Runs a program for each held call, like a git hook: the pending approval
/// as JSON on its stdin, a [`ReviewDecision`] as JSON on its stdout. A
/// non-zero exit or unreadable output means the reviewer failed (denied). The
/// program is killed if the deadline passes.
///
/// The program does not inherit the host's environment, which holds the
/// operator's credentials: it gets only `REVIEWER_ENV` (those of them the
/// host has) and the variables allowed with [`CommandReviewer::allow_env`].
#[derive(Debug, Clone)]
pub struct CommandReviewer {
    program: PathBuf,
    name: String,
    allowed_env: Vec<String>,
}

/// The variables a `cmd:` reviewer gets from the host's environment, when
/// set there: enough to find programs, a home and a locale, nothing secret.
pub const REVIEWER_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Largest reviewer output read; a decision is a few hundred bytes.
const MAX_REVIEWER_OUTPUT: u64 = crate::limits::REVIEWER_OUTPUT_BYTES;

impl CommandReviewer {
    /// A reviewer that runs `program` (no shell, no arguments).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        CommandReviewer {
            name: format!("cmd:{}", program.display()),
            program,
            allowed_env: Vec::new(),
        }
    }

    /// Also passes the host's variable `name` (when set) to the program,
    /// besides `REVIEWER_ENV`.
    pub fn allow_env(mut self, name: impl Into<String>) -> Self {
        self.allowed_env.push(name.into());
        self
    }

    /// The reviewer's whole environment: the allowed variables the host has.
    fn environment(&self) -> Vec<(String, std::ffi::OsString)> {
        REVIEWER_ENV
            .iter()
            .map(|n| (*n).to_string())
            .chain(self.allowed_env.iter().cloned())
            .filter_map(|name| std::env::var_os(&name).map(|value| (name, value)))
            .collect()
    }

    async fn run(&self, pending: &PendingApproval) -> Result<ReviewDecision, ReviewerFailure> {
        let input = serde_json::to_vec(pending).map_err(ReviewerFailure::Input)?;
        let mut child = tokio::process::Command::new(&self.program)
            .env_clear()
            .envs(self.environment())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| ReviewerFailure::Start {
                program: self.program.clone(),
                cause,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A reviewer may exit without reading its input; that is its choice.
            let _ = stdin.write_all(&input).await;
        }
        let mut stdout = Vec::new();
        if let Some(out) = child.stdout.take() {
            out.take(MAX_REVIEWER_OUTPUT)
                .read_to_end(&mut stdout)
                .await
                .map_err(ReviewerFailure::ReadOutput)?;
        }
        let mut stderr = Vec::new();
        if let Some(err) = child.stderr.take() {
            let _ = err.take(MAX_REVIEWER_OUTPUT).read_to_end(&mut stderr).await;
        }
        let status = child.wait().await.map_err(ReviewerFailure::Wait)?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
            return Err(ReviewerFailure::Exited { status, stderr });
        }
        serde_json::from_slice(&stdout).map_err(ReviewerFailure::NotADecision)
    }
}

/// Why a built-in reviewer (a command, the terminal) gave no answer, as
/// data; its text becomes the [`ReviewError`] message the records show.
#[derive(Debug, thiserror::Error)]
enum ReviewerFailure {
    /// The held call could not be written as the command's input.
    #[error("{0}")]
    Input(serde_json::Error),
    /// The command could not be started.
    #[error("cannot start `{}`: {cause}", .program.display())]
    Start {
        program: PathBuf,
        cause: std::io::Error,
    },
    /// Its output could not be read.
    #[error("cannot read its output: {0}")]
    ReadOutput(std::io::Error),
    /// Its exit could not be waited for.
    #[error("cannot wait for it: {0}")]
    Wait(std::io::Error),
    /// It failed; what it said on stderr, trimmed.
    #[error("exited with {status}: {stderr}")]
    Exited {
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// It answered something other than a decision.
    #[error(
        "its output is not a decision ({0}); expected {{\"decision\": \"approve\"|\"deny\", \"reviewer\": \"<user id>\", \"reason\": \"...\"}}"
    )]
    NotADecision(serde_json::Error),
    /// The prompt could not be written.
    #[error("cannot write the prompt: {0}")]
    WritePrompt(std::io::Error),
    /// The terminal reached its end.
    #[error("the terminal closed before an answer")]
    TerminalClosed,
    /// The answer could not be read.
    #[error("cannot read the answer: {0}")]
    ReadAnswer(std::io::Error),
    /// An earlier prompt panicked while holding the terminal.
    #[error("the terminal is unusable after an earlier failure")]
    TerminalPoisoned,
    /// The reviewer gave no id.
    #[error("no reviewer id given")]
    NoReviewerId,
    /// The prompt's task did not finish.
    #[error("{0}")]
    Prompt(tokio::task::JoinError),
}

impl Reviewer for CommandReviewer {
    fn name(&self) -> &str {
        &self.name
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(async move {
            self.run(pending).await.map_err(|e| ReviewError {
                reviewer: self.name.clone(),
                message: e.to_string(),
            })
        })
    }
}

/// The terminal a [`PromptReviewer`] talks to.
struct Terminal {
    input: Box<dyn std::io::BufRead + Send>,
    output: Box<dyn std::io::Write + Send>,
}

impl Terminal {
    fn ask(&mut self, question: &str) -> Result<String, ReviewerFailure> {
        write!(self.output, "{question}")
            .and_then(|_| self.output.flush())
            .map_err(ReviewerFailure::WritePrompt)?;
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) => Err(ReviewerFailure::TerminalClosed),
            Ok(_) => Ok(line.trim().to_string()),
            Err(e) => Err(ReviewerFailure::ReadAnswer(e)),
        }
    }
}

/// Asks at the terminal: shows the held call and reads approve or deny, the
/// reviewer's id and a reason. One prompt at a time; the reads run on the
/// blocking pool so no async worker waits on a human.
pub struct PromptReviewer {
    terminal: std::sync::Arc<std::sync::Mutex<Terminal>>,
    turn: tokio::sync::Mutex<()>,
}

impl Default for PromptReviewer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PromptReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptReviewer")
    }
}

impl PromptReviewer {
    /// A reviewer on this process's stdin and stderr.
    pub fn new() -> Self {
        Self::with_terminal(std::io::BufReader::new(std::io::stdin()), std::io::stderr())
    }

    /// A reviewer reading answers from `input` and writing prompts to `output`.
    pub fn with_terminal(
        input: impl std::io::BufRead + Send + 'static,
        output: impl std::io::Write + Send + 'static,
    ) -> Self {
        PromptReviewer {
            terminal: std::sync::Arc::new(std::sync::Mutex::new(Terminal {
                input: Box::new(input),
                output: Box::new(output),
            })),
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

fn describe(pending: &PendingApproval) -> String {
    let left = pending.deadline.duration_since(Timestamp::now());
    let held_by: Vec<String> = pending
        .demanded_by
        .iter()
        .map(|p| match &p.reason {
            Some(r) => format!("{} ({r})", p.id),
            None => p.id.clone(),
        })
        .collect();
    let chain: Vec<String> = pending
        .delegation_chain
        .iter()
        .map(ToString::to_string)
        .collect();
    // Tool, resource and arguments come from the agent: escaped, so that no
    // escape sequence or bidi control in them can redraw this block.
    let shown = |text: &str| crate::terminal::bounded(text, 4 * crate::terminal::DISPLAY_CHARS);
    format!(
        "\n-- approval needed ------------------------------\n  tool:      {}\n  resource:  {}\n  arguments: {}\n  user:      {} <{}>\n  agent:     {} {} ({})\n  on behalf: {}\n  held by:   {}\n  deadline:  {} ({}s left)\n",
        shown(&pending.tool),
        shown(&pending.resource),
        shown(&pending.arguments.to_string()),
        shown(&pending.user.id),
        shown(&pending.user.email),
        shown(&pending.agent.name),
        shown(&pending.agent.version),
        shown(&pending.agent.id),
        shown(&chain.join(" -> ")),
        shown(&held_by.join("; ")),
        pending.deadline,
        left.as_secs().max(0),
    )
}

/// The clear values for `reviewer`, escaped, or why they are not shown.
fn describe_revealed(revealed: &super::reveal::Revealed, reviewer: &str) -> String {
    let shown = |text: &str| crate::terminal::bounded(text, 16 * crate::terminal::DISPLAY_CHARS);
    match revealed.for_reviewer(reviewer) {
        Some(values) => {
            let mut text = String::from("  in clear (for you only; not in the log):\n");
            for v in values {
                let value = match &v.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                text.push_str(&format!("    {}: {}\n", shown(&v.path), shown(&value)));
            }
            text
        }
        None => format!(
            "  (the redacted values are not shown to `{}`)\n",
            shown(reviewer)
        ),
    }
}

impl Reviewer for PromptReviewer {
    fn name(&self) -> &str {
        "prompt"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            let fail = |e: ReviewerFailure| ReviewError {
                reviewer: "prompt".into(),
                message: e.to_string(),
            };
            let terminal = std::sync::Arc::clone(&self.terminal);
            let text = describe(pending);
            let revealed = pending.revealed.clone();
            let answers = tokio::task::spawn_blocking(move || {
                let mut t = terminal
                    .lock()
                    .map_err(|_| ReviewerFailure::TerminalPoisoned)?;
                let _ = write!(t.output, "{text}");
                if revealed.is_empty() {
                    let verdict = t.ask("approve? [y/N] ")?;
                    let reviewer = t.ask("your user id: ")?;
                    let reason = t.ask("reason (optional): ")?;
                    return Ok::<_, ReviewerFailure>((verdict, reviewer, reason));
                }
                // The operator lets some reviewers read the redacted values:
                // who is asking comes first, then the values, if allowed.
                let reviewer = t.ask("your user id: ")?;
                let _ = write!(t.output, "{}", describe_revealed(&revealed, &reviewer));
                let verdict = t.ask("approve? [y/N] ")?;
                let reason = t.ask("reason (optional): ")?;
                Ok::<_, ReviewerFailure>((verdict, reviewer, reason))
            })
            .await
            .map_err(|e| fail(ReviewerFailure::Prompt(e)))?
            .map_err(fail)?;
            let (verdict, reviewer, reason) = answers;
            if reviewer.is_empty() {
                return Err(fail(ReviewerFailure::NoReviewerId));
            }
            Ok(ReviewDecision {
                decision: if matches!(verdict.as_str(), "y" | "Y" | "yes") {
                    Verdict::Approve
                } else {
                    Verdict::Deny
                },
                reviewer,
                reason: (!reason.is_empty()).then_some(reason),
                scope: GrantScope::Once,
            })
        })
    }
}

/// Default time a reviewer has to decide.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::session::DelegateKind;

    fn pending() -> PendingApproval {
        PendingApproval {
            approval_id: "apr:s:1".into(),
            session_id: "s".into(),
            call_id: "s:1".into(),
            tool: "send_email".into(),
            arguments: serde_json::json!({"to": "bob@example.com", "body": "[redacted]"}),
            resource: "Tool::\"send_email\"".into(),
            user: UserRef {
                id: "alice".into(),
                email: "alice@example.com".into(),
            },
            agent: AgentRef {
                id: "a".into(),
                name: "A".into(),
                version: "1".into(),
            },
            delegation_chain: vec![Delegate {
                kind: DelegateKind::User,
                id: "alice".into(),
            }],
            demanded_by: vec![DeterminingPolicy {
                id: "email-requires-approval".into(),
                reason: Some("humans review email".into()),
            }],
            deadline: Timestamp::now(),
            revealed: Default::default(),
        }
    }

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_prompt_shows_the_call_and_reads_an_approval() {
        let out = Shared::default();
        let r = PromptReviewer::with_terminal(
            std::io::Cursor::new("y\ncarol\nlooks fine\n"),
            out.clone(),
        );
        let d = r.review(&pending()).await.unwrap();
        assert_eq!(d.decision, Verdict::Approve);
        assert_eq!(d.reviewer, "carol");
        assert_eq!(d.reason.as_deref(), Some("looks fine"));
        let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(shown.contains("send_email"), "{shown}");
        assert!(shown.contains("email-requires-approval (humans review email)"));
        assert!(shown.contains("approve? [y/N]"));
    }

    #[tokio::test]
    async fn the_prompt_escapes_what_the_agent_controls() {
        let out = Shared::default();
        let r = PromptReviewer::with_terminal(std::io::Cursor::new("n\ncarol\n\n"), out.clone());
        let mut held = pending();
        held.tool = "send_email\u{1b}[8m".into();
        held.arguments =
            serde_json::json!({"to": "eve@evil.example\u{202e}", "x\u{200b}": "\u{1b}[2J"});
        r.review(&held).await.unwrap();
        let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for c in ['\u{1b}', '\u{202e}', '\u{200b}'] {
            assert!(!shown.contains(c), "{c:?} shown raw: {shown}");
        }
        assert!(shown.contains("send_email\\u{1b}[8m"), "{shown}");
        assert!(shown.contains("eve@evil.example\\u{202e}"), "{shown}");
    }

    #[tokio::test]
    async fn anything_but_yes_denies_and_a_closed_terminal_fails() {
        let r = PromptReviewer::with_terminal(std::io::Cursor::new("n\ncarol\n\n"), Vec::new());
        let d = r.review(&pending()).await.unwrap();
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.reason, None);
        let r = PromptReviewer::with_terminal(std::io::Cursor::new("y\n"), Vec::new());
        let e = r.review(&pending()).await.unwrap_err();
        assert!(e.message.contains("closed"), "{e}");
    }

    #[tokio::test]
    async fn the_prompt_shows_clear_values_only_to_a_reviewer_the_operator_allows() {
        let allowed: std::sync::Arc<[String]> = vec!["carol".to_string()].into();
        let mut held = pending();
        held.revealed = crate::pipeline::reveal::Revealed::collect(
            &allowed,
            &serde_json::json!({"to": "bob@example.com", "body": {"redacted": "sha256:00"}}),
            &serde_json::json!({"to": "bob@example.com", "body": "the launch slips\u{1b}[8m"}),
        );
        let out = Shared::default();
        let r = PromptReviewer::with_terminal(std::io::Cursor::new("carol\ny\nok\n"), out.clone());
        let d = r.review(&held).await.unwrap();
        assert_eq!(
            (d.decision, d.reviewer.as_str()),
            (Verdict::Approve, "carol")
        );
        let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            shown.contains("arguments.body: the launch slips\\u{1b}[8m"),
            "{shown}"
        );

        let out = Shared::default();
        let r = PromptReviewer::with_terminal(std::io::Cursor::new("bob\ny\n\n"), out.clone());
        r.review(&held).await.unwrap();
        let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!shown.contains("launch slips"), "{shown}");
        assert!(shown.contains("not shown to `bob`"), "{shown}");
    }

    #[tokio::test]
    async fn deny_all_denies() {
        let d = DenyAll.review(&pending()).await.unwrap();
        assert_eq!(d.decision, Verdict::Deny);
    }
}
