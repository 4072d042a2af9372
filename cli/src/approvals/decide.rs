//! `mandate approvals approve|deny <id> --reviewer <user id>`

use std::process::ExitCode;

use clap::Args;
use mandate::pipeline::Verdict;
use mandate::pipeline::queue::{GrantScope, QueueDecision, QueueError};
use mandate::terminal::escape;

use super::QueueArg;

#[derive(Args)]
pub struct DecideArgs {
    /// The approval id, as `mandate approvals list` shows it.
    pub id: String,
    #[command(flatten)]
    pub queue: QueueArg,
    /// Your user id; policy decides whether this user may approve
    /// (`context.approval.reviewer`). With the fleet's database as the queue, your database
    /// login role: the database records the decision in your login's name and refuses another.
    #[arg(long, value_name = "USER ID")]
    pub reviewer: String,
    /// Why; shown to the agent on denial and written in the audit record.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// How long to wait for the waiting host to take or refuse the decision
    /// (it refuses a reviewer its policy does not accept, and the approval
    /// goes back to the other reviewers). 0: do not wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub wait: u64,
}

/// `approve` takes what `deny` takes, and a scope: a denial covers its call
/// only, so `deny` does not offer one.
#[derive(Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub decide: DecideArgs,
    /// `once`: this call only. `session`: also every later call of the same session on the same
    /// tool and resource, as long as policy accepts the standing grant (approve only).
    #[arg(long, value_name = "once|session", default_value = "once", value_parser = parse_scope)]
    pub scope: GrantScope,
}

fn parse_scope(text: &str) -> Result<GrantScope, String> {
    text.parse()
        .map_err(|e: mandate::pipeline::UnknownGrantScope| e.to_string())
}

/// `mandate approvals approve`.
pub fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    run(args.decide, Some(args.scope))
}

/// Records an approval with `scope` (`Some`) or a denial (`None`). Exit 0
/// when the decision was recorded, 1 when the queue refused it (unknown id,
/// already decided, past the deadline), 2 when the queue is unusable.
pub fn run(args: DecideArgs, scope: Option<GrantScope>) -> anyhow::Result<ExitCode> {
    let approve = scope.is_some();
    let scope = scope.unwrap_or(GrantScope::Once);
    let queue = args.queue.open()?;
    let decision = QueueDecision {
        verdict: if approve {
            Verdict::Approve
        } else {
            Verdict::Deny
        },
        reviewer: args.reviewer.clone(),
        reason: args.reason.clone(),
        scope,
    };
    match queue.decide(&args.id, &decision) {
        Ok(decided) => {
            if let Some(why) = refused_by_host(&queue, &decided, args.wait)? {
                eprintln!(
                    "refused: the waiting host refused your decision on {}: {}; the approval is pending again for other reviewers",
                    escape(&args.id),
                    escape(&why)
                );
                return Ok(ExitCode::from(1));
            }
            let p = &decided.pending;
            if approve {
                let scope = match scope {
                    GrantScope::Once => "this call only".to_string(),
                    GrantScope::Session => format!(
                        "this call and later {} calls on {} in session {}",
                        escape(&p.tool),
                        escape(&p.resource),
                        escape(&p.session_id)
                    ),
                };
                println!(
                    "approved {} as {} ({scope}); the waiting call proceeds if policy accepts {} as a reviewer",
                    escape(&args.id),
                    escape(&args.reviewer),
                    escape(&args.reviewer)
                );
            } else {
                println!(
                    "denied {} as {}; the waiting call is refused",
                    escape(&args.id),
                    escape(&args.reviewer)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (QueueError::NotFound { .. }
            | QueueError::AlreadyDecided { .. }
            | QueueError::PastDeadline { .. }
            | QueueError::InvalidDecision { .. }),
        ) => {
            eprintln!("refused: {}", escape(&e.to_string()));
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits up to `secs` for the host to take or refuse `decided`; the
/// refusal's reason if it refused it.
fn refused_by_host(
    queue: &super::Queue,
    decided: &mandate::pipeline::queue::QueuedApproval,
    secs: u64,
) -> anyhow::Result<Option<String>> {
    let id = &decided.pending.approval_id;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        let Some(now) = queue.get(id)? else {
            return Ok(None);
        };
        let mine = now.refused.iter().rev().find(|r| {
            Some(&r.reviewer) == decided.reviewer.as_ref()
                && Some(r.decided_at) == decided.decided_at
        });
        if let Some(r) = mine {
            return Ok(Some(r.why.clone()));
        }
        // Taken, expired, or decided again by someone else after a refusal
        // that is not ours: nothing more to wait for.
        if now.taken_at.is_some() || now.decided_at != decided.decided_at {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(None)
}
