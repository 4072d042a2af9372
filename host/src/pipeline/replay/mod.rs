//! `mandate audit replay`: every decision a log records, decided again under
//! a candidate policy set, to see which calls the candidate would treat
//! differently before it is put in force.
//!
//! Each decision record of a call that policy decided carries the Cedar
//! request the guard evaluated (`decision.request`). The replay rebuilds it
//! with the record's `action.arguments`, evaluates it against the
//! candidate's policies, schema and **the candidate directory's
//! `entities.json`** through the guard's own screening (allow, deny, or
//! hold for a human by the counterfactual rule), and compares the effect and
//! whether approval is required with what the record says.
//!
//! Where the candidate holds a call for a human, the recorded human answer is
//! reused: a reviewer who approved is checked against the candidate's
//! policies, a reviewer who denied (or a review that timed out or failed)
//! still denies, and a call that no human was asked about is reported as
//! [`ReplayEffect::Held`]: nobody can know what a reviewer would have said.
//!
//! Arguments redacted in the log (commitments, see
//! [`REDACTED_FIELD`](super::REDACTED_FIELD)) are never guessed at: a call is
//! [not replayable](NotReplayableReason::RedactedArguments) when a candidate
//! policy reads one of them. When none does, the call is evaluated without
//! checking its arguments against the schema (a commitment does not fit a
//! `String`), since no policy looks at them.

mod call;
mod reads;

use std::path::{Path, PathBuf};

use serde::Serialize;

use self::reads::ArgumentReads;
use super::record::ApprovalOutcome;
use crate::audit::RecordReader;
use crate::policy::{Effect, Policies};

/// The effect a replayed call gets from the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayEffect {
    /// The call would run.
    Allow,
    /// The call would be refused.
    Deny,
    /// The call would wait for a reviewer, and no reviewer was asked when it
    /// was made, so what one would say is unknown.
    Held,
}

impl From<Effect> for ReplayEffect {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::Allow => ReplayEffect::Allow,
            Effect::Deny => ReplayEffect::Deny,
        }
    }
}

impl std::fmt::Display for ReplayEffect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplayEffect::Allow => "allow",
            ReplayEffect::Deny => "deny",
            ReplayEffect::Held => "held",
        })
    }
}

/// Which call a result is about, from its decision record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallRef {
    /// The decision record's seq.
    pub seq: u64,
    /// The call id.
    pub call_id: String,
    /// The session.
    pub session_id: String,
    /// The user's id.
    pub user: String,
    /// The agent's id.
    pub agent: String,
    /// The tool the agent called.
    pub tool: String,
}

/// What the log says was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedVerdict {
    /// The recorded effect.
    pub effect: Effect,
    /// Whether policy held the call for a human.
    pub approval_required: bool,
    /// How the review ended.
    pub approval_outcome: ApprovalOutcome,
    /// The reviewer who answered, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The determining policies of the recorded decision.
    pub determining_policies: Vec<String>,
    /// The policies that demanded approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub demanded_by: Vec<String>,
}

/// What the candidate decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayVerdict {
    /// The effect.
    pub effect: ReplayEffect,
    /// Whether the candidate holds the call for a human.
    pub approval_required: bool,
    /// The reviewer whose recorded approval was checked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The determining policies of the final evaluation (for a held or
    /// human-denied call, the policies that demand approval).
    pub determining_policies: Vec<String>,
    /// The policies that demand approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub demanded_by: Vec<String>,
    /// Evaluation errors, `policy: message` (each one denies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Why the candidate refuses the request itself, e.g. an action it does
    /// not declare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A call the candidate would decide differently: another effect, or
/// another answer to whether a human must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayChange {
    /// The call.
    #[serde(flatten)]
    pub call: CallRef,
    /// What was decided.
    pub old: RecordedVerdict,
    /// What the candidate decides.
    pub new: ReplayVerdict,
}

/// A call the replay cannot decide again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReplayable {
    /// The call.
    #[serde(flatten)]
    pub call: CallRef,
    /// Why.
    #[serde(flatten)]
    pub reason: NotReplayableReason,
}

/// Why a call cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotReplayableReason {
    /// Candidate policies read arguments that the log holds only as
    /// commitments; their values are unknown.
    RedactedArguments {
        /// The redacted values those policies would read, e.g. `arguments.body`.
        paths: Vec<String>,
        /// The candidate policies that read them.
        policies: Vec<String>,
    },
    /// The record has no `decision.request` (written before requests were
    /// recorded).
    NoRequest,
    /// The record's request or decision is not in the expected form.
    Malformed {
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for NotReplayableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReplayableReason::RedactedArguments { paths, policies } => write!(
                f,
                "{} redacted in the log, read by {}",
                paths.join(", "),
                policies.join(", ")
            ),
            NotReplayableReason::NoRequest => f.write_str("no request recorded"),
            NotReplayableReason::Malformed { message } => write!(f, "malformed record: {message}"),
        }
    }
}

/// The result of replaying one decision record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Refused before policy (unknown tool, invalid arguments, expired
    /// session, entity lookup): not evaluated again.
    RefusedBeforePolicy,
    /// Same effect and same approval requirement.
    Unchanged,
    /// Decided differently.
    Changed(Box<ReplayChange>),
    /// Cannot be decided again.
    NotReplayable(Box<NotReplayable>),
}

/// Counts over the decision records of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplayTotals {
    /// Decision records read.
    pub decisions: u64,
    /// Decided again by the candidate: `unchanged + changed`.
    pub re_evaluated: u64,
    /// Decided the same way.
    pub unchanged: u64,
    /// Decided differently.
    pub changed: u64,
    /// Could not be decided again.
    pub not_replayable: u64,
    /// Refused before policy, so not evaluated again.
    pub refused_before_policy: u64,
}

/// What a candidate policy set would change over a log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// The candidate's digest (policies, schema and entities).
    pub candidate_digest: String,
    /// Calls decided differently, in log order.
    pub changes: Vec<ReplayChange>,
    /// Calls that could not be decided again, in log order.
    pub not_replayable: Vec<NotReplayable>,
    /// The counts.
    pub totals: ReplayTotals,
}

impl ReplayReport {
    /// An empty report for the candidate with `digest`.
    pub fn new(digest: &str) -> Self {
        ReplayReport {
            candidate_digest: digest.to_string(),
            ..ReplayReport::default()
        }
    }

    /// Counts one decision record's result.
    pub fn add(&mut self, replayed: Replayed) {
        let t = &mut self.totals;
        t.decisions += 1;
        match replayed {
            Replayed::RefusedBeforePolicy => t.refused_before_policy += 1,
            Replayed::Unchanged => {
                t.re_evaluated += 1;
                t.unchanged += 1;
            }
            Replayed::Changed(change) => {
                t.re_evaluated += 1;
                t.changed += 1;
                self.changes.push(*change);
            }
            Replayed::NotReplayable(call) => {
                t.not_replayable += 1;
                self.not_replayable.push(*call);
            }
        }
    }
}

/// Why a log could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The log could not be read.
    #[error("cannot read audit log `{}`: {error}", log.display())]
    Read {
        /// The log.
        log: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// A record line is not JSON.
    #[error(
        "line {line} of `{}` is not valid json: {message}; run `mandate audit verify` on the log",
        segment.display()
    )]
    NotJson {
        /// The segment file.
        segment: PathBuf,
        /// The 1-based line number in it.
        line: u64,
        /// The parser's message.
        message: String,
    },
}

/// Decides recorded calls again under one candidate policy set. Each
/// candidate policy is analysed once for the arguments it reads.
pub struct Replayer<'a> {
    policies: &'a Policies,
    /// Policy id and what it reads of `context.arguments`, by id.
    reads: Vec<(String, ArgumentReads)>,
}

impl<'a> Replayer<'a> {
    /// Prepares a replay under `candidate`, whose `entities.json` supplies
    /// the entities.
    pub fn new(candidate: &'a Policies) -> Self {
        let mut reads: Vec<(String, ArgumentReads)> = candidate
            .policy_set()
            .policies()
            .map(|p| (p.id().to_string(), ArgumentReads::of_policy(p)))
            .collect();
        reads.sort_by(|a, b| a.0.cmp(&b.0));
        Replayer {
            policies: candidate,
            reads,
        }
    }
}

/// Replays every decision record of the log at `log` (a log directory or a
/// single segment file) under `candidate`, with the candidate's own
/// entities. It does not verify the log; run the verifier for that.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mandate::pipeline::{ReplayEffect, replay};
/// use mandate::policy::Policies;
///
/// let candidate = Policies::load_dir(std::path::Path::new("policies-next"))?;
/// let report = replay(std::path::Path::new("demo/audit"), &candidate)?;
/// for change in &report.changes {
///     let old = ReplayEffect::from(change.old.effect);
///     println!("{} {}: {old} -> {}", change.call.seq, change.call.tool, change.new.effect);
/// }
/// # Ok(())
/// # }
/// ```
pub fn replay(log: &Path, candidate: &Policies) -> Result<ReplayReport, ReplayError> {
    let read_error = |error| ReplayError::Read {
        log: log.to_path_buf(),
        error,
    };
    let replayer = Replayer::new(candidate);
    let mut report = ReplayReport::new(candidate.digest());
    for raw in RecordReader::open(log).map_err(read_error)? {
        let raw = raw.map_err(read_error)?;
        let replayed = replayer
            .replay_line(&raw.bytes)
            .map_err(|e| ReplayError::NotJson {
                segment: raw.segment.clone(),
                line: raw.line,
                message: e.to_string(),
            })?;
        if let Some(replayed) = replayed {
            report.add(replayed);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
