//! An embedding host that implements the approval callback itself.
//!
//! `ChatReviewer` approves email to the company's own domain by rule and asks
//! a chat channel about everything else, awaiting the human's answer. The
//! channel is simulated by a tokio channel and a task playing the human, who
//! approves one email, denies another and answers a third too late.
//!
//! ```text
//! cargo run -p mandate --example custom_reviewer
//! ```
//!
//! The contract of [`Reviewer::review`]:
//!
//! - It gets the [`PendingApproval`]: tool, arguments (sensitive ones already
//!   replaced by commitments), resource, session, user, agent, delegation
//!   chain, the policies that hold the call with their `@reason`, and the
//!   deadline. `approval_id` is unique; use it to match answers to requests.
//! - It returns a [`ReviewDecision`]: approve or deny, the reviewer's user id,
//!   an optional reason, and a [`GrantScope`] (`Once`, or `Session` for the
//!   rest of the session on the same tool and resource).
//! - An approval is not the last word: policy is evaluated again with the
//!   reviewer in `context.approval.reviewer`, and only an allow lets the call
//!   run (`reviewer_not_allowed` otherwise).
//! - It is async and must not block a thread while a human thinks. The guard
//!   drops the future at the deadline (the call is denied as `timed_out`), so
//!   whatever it holds is released then: here, the reply channel closes and
//!   the human's late answer is refused.
//! - An `Err(ReviewError)` denies the call (`reviewer_failed`, with the
//!   message in the record). Fail closed: when in doubt, return an error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mandate::audit::{AuditLog, RecordReader, verify_file};
use mandate::pipeline::{
    BoxFuture, CallReport, GrantScope, Guard, PendingApproval, ReviewDecision, ReviewError,
    Reviewer, Session, Verdict,
};
use mandate::policy::Policies;
use mandate::tools::{Workspace, example_registry};
use tokio::sync::{mpsc, oneshot};

/// A message posted to the approvals channel: what to decide, and where to
/// answer.
struct Ask {
    pending: PendingApproval,
    answer: oneshot::Sender<ReviewDecision>,
}

/// The host's reviewer: internal email by rule, the rest by a human on chat.
struct ChatReviewer {
    internal_domain: String,
    channel: mpsc::Sender<Ask>,
}

impl ChatReviewer {
    async fn ask(&self, pending: &PendingApproval) -> Result<ReviewDecision, ReviewError> {
        let fail = |message: &str| ReviewError {
            reviewer: "chat".into(),
            message: message.into(),
        };
        let to = pending.arguments["to"].as_str().unwrap_or_default();
        if pending.tool == "send_email" && one_address_at(to, &self.internal_domain) {
            return Ok(ReviewDecision {
                decision: Verdict::Approve,
                // The rule acts for the reviewer who set it up; policy still
                // checks that carol may approve.
                reviewer: "carol".into(),
                reason: Some(format!("internal recipient {to}, approved by rule")),
                scope: GrantScope::Once,
            });
        }
        let (answer, reply) = oneshot::channel();
        self.channel
            .send(Ask {
                pending: pending.clone(),
                answer,
            })
            .await
            .map_err(|_| fail("the approvals channel is closed"))?;
        // Dropped at the deadline by the guard, which closes `reply`.
        reply
            .await
            .map_err(|_| fail("the channel dropped the request unanswered"))
    }
}

// ANCHOR: reviewer_impl
impl Reviewer for ChatReviewer {
    fn name(&self) -> &str {
        "chat"
    }

    fn review<'a>(
        &'a self,
        pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        Box::pin(self.ask(pending))
    }
}
// ANCHOR_END: reviewer_impl

/// Whether `to` is exactly one address at `domain` (e.g. `example.com`): the
/// whole text is checked, since a suffix test also passes
/// `"eve@evil.example, bob@example.com"`.
fn one_address_at(to: &str, domain: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    match to.split_once('@') {
        Some((local, d)) => {
            !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
                && d.eq_ignore_ascii_case(domain)
        }
        None => false,
    }
}

/// The human on the other end of the channel.
async fn human(mut channel: mpsc::Receiver<Ask>) {
    while let Some(ask) = channel.recv().await {
        let p = &ask.pending;
        let held: Vec<String> = p
            .demanded_by
            .iter()
            .map(|d| d.reason.clone().unwrap_or_else(|| d.id.clone()))
            .collect();
        println!(
            "  #approvals: {} wants {} to {} ({}); deadline {}",
            p.agent.name,
            p.tool,
            p.arguments["to"],
            held.join("; "),
            p.deadline
        );
        let to = p.arguments["to"].as_str().unwrap_or_default().to_string();
        let (verdict, reason, think) = if one_address_at(&to, "partner.example") {
            (Verdict::Approve, "partner under contract", 50)
        } else if to.starts_with("mallory") {
            (Verdict::Approve, "sure", 2_500)
        } else {
            (Verdict::Deny, "unknown recipient", 50)
        };
        tokio::time::sleep(Duration::from_millis(think)).await;
        let decision = ReviewDecision {
            decision: verdict,
            reviewer: "carol".into(),
            reason: Some(reason.into()),
            scope: GrantScope::Once,
        };
        if ask.answer.send(decision).is_err() {
            println!(
                "  #approvals: carol's answer on {to} came after the deadline and was refused"
            );
        }
    }
}

fn print_call(call: &CallReport) {
    let what = match &call.error {
        None => "allowed".to_string(),
        Some(e) => e.to_string(),
    };
    let by = call.reviewer.as_deref().unwrap_or("-");
    println!(
        "  {} {}: {what} (approval {}, reviewer {by})",
        call.call_id, call.tool, call.approval
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir()?;
    let (channel, inbox) = mpsc::channel(16);
    let human = tokio::spawn(human(inbox));

    let guard = Guard::builder(
        Policies::load_dir(&root.join("policies"))?,
        AuditLog::open(work.path().join("audit"))?,
    )
    .tools(example_registry(&Workspace::new(work.path()))?)
    .reviewer(ChatReviewer {
        internal_domain: "example.com".into(),
        channel,
    })
    .approval_timeout(Duration::from_secs(2))
    .on_call(print_call)
    .build()?;

    // No wasm here: the host calls the guard as an agent's tool calls would.
    let session = Arc::new(
        guard
            .start_session(
                Session::from_file(&root.join("policies/session.json"))?,
                None,
            )
            .await?,
    );
    for to in [
        "bob@example.com",
        "dana@partner.example",
        "eve@elsewhere.example",
        "mallory@elsewhere.example",
    ] {
        let arguments =
            serde_json::json!({"to": to, "subject": "Q3 notes", "body": "see attached"});
        let _ = session.call("send_email", &arguments.to_string()).await;
    }
    session.end(&Ok("done".into())).await?;

    println!("the audit log's approvals:");
    for raw in RecordReader::open(&work.path().join("audit"))? {
        let record: serde_json::Value = serde_json::from_slice(&raw?.bytes)?;
        if record["kind"] == "decision" {
            let a = &record["approval"];
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
            println!(
                "  seq {} to {}: {} by {} ({})",
                record["seq"],
                text(&record["action"]["arguments"]["to"]),
                text(&a["outcome"]),
                text(&a["reviewer"]),
                text(&a["reason"])
            );
        }
    }
    // Closing writes the final checkpoint (when a signer is configured) and stops the writer.
    drop(session);
    guard.audit().shutdown()?;
    // Dropping the guard drops the reviewer's channel: the human's late answer finds nobody
    // waiting, and its task ends.
    drop(guard);
    let _ = tokio::time::timeout(Duration::from_secs(2), human).await;
    let verified = verify_file(&work.path().join("audit"))?;
    println!("audit log verified: {} records", verified.records);
    Ok(())
}
