//! `mandate approvals approve|deny <id> --reviewer <user id>`

use std::process::ExitCode;

use clap::Args;
use mandate::guard::Verdict;
use mandate::guard::queue::{GrantScope, QueueDecision, QueueError};
use mandate::terminal::escape;

use super::approvals::QueueArg;

#[derive(Args)]
pub struct DecideArgs {
    /// The approval id, as `mandate approvals list` shows it.
    pub id: String,
    #[command(flatten)]
    pub queue: QueueArg,
    /// Your user id; policy decides whether this user may approve
    /// (`context.approval.reviewer`).
    #[arg(long, value_name = "USER ID")]
    pub reviewer: String,
    /// Why; shown to the agent on denial and written in the audit record.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
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
        .map_err(|e: mandate::guard::UnknownGrantScope| e.to_string())
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
