//! Steps 5 and 6 of the call path over one policy set, with no human and no
//! log: the Cedar request of a call, the screening (allow, deny, or hold for a
//! reviewer by the counterfactual rule) and the reviewer check. The guard's
//! call path, `explain`, `policy test` and `audit replay` all decide through
//! here, so what they report cannot drift from what the guard does.

use cedar_policy::EntityUid;

use crate::policy::{Decision, DeterminingPolicy, Effect};

/// What `context.approval` says in one evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ApprovalState<'a> {
    /// The first evaluation: nobody has approved.
    NotGranted,
    /// The counterfactual: would a human's approval allow the call?
    Granted,
    /// A reviewer approved: does policy accept this reviewer?
    GrantedBy(&'a EntityUid),
    /// A reviewer approved an earlier call of the session on the same tool
    /// and resource for the rest of the session: does policy accept that
    /// standing grant for this call (`context.approval.standing`)?
    Standing(&'a EntityUid),
}

impl<'a> ApprovalState<'a> {
    /// `granted`, the reviewer, and `standing`.
    pub(crate) fn parts(self) -> (bool, Option<&'a EntityUid>, bool) {
        match self {
            ApprovalState::NotGranted => (false, None, false),
            ApprovalState::Granted => (true, None, false),
            ApprovalState::GrantedBy(reviewer) => (true, Some(reviewer), false),
            ApprovalState::Standing(reviewer) => (true, Some(reviewer), true),
        }
    }

    /// `context.approval` in Cedar JSON, for requests rebuilt from a record.
    pub(crate) fn json(self) -> serde_json::Value {
        super::request::approval_json(self)
    }
}

/// What policy says before any human is asked.
#[derive(Debug, Clone)]
pub(crate) enum Screening {
    /// Allowed outright.
    Allowed(Decision),
    /// Denied, and no approval could change that (or an evaluation failed).
    Denied(Decision),
    /// Denied now, allowed with a human's approval: hold for a reviewer.
    NeedsApproval {
        /// The first evaluation (a deny).
        first: Decision,
        /// The forbids that hold the call, or else the permits that would
        /// allow it once approved: what a reviewer is shown.
        demanded_by: Vec<DeterminingPolicy>,
    },
}

/// Steps 5 and 6a: evaluates without approval and, if that denies cleanly,
/// again as if a human had approved. An error building the first request
/// (arguments that do not fit the schema) is returned; a counterfactual that
/// cannot be evaluated leaves the first deny standing. The error is the one
/// `decide` gives: the call path's typed [`super::request::RequestError`],
/// or whatever a caller that rebuilds requests another way reports.
pub(crate) fn screen<E>(
    decide: &impl Fn(ApprovalState<'_>) -> Result<Decision, E>,
) -> Result<Screening, E> {
    let first = decide(ApprovalState::NotGranted)?;
    if first.effect == Effect::Allow {
        return Ok(Screening::Allowed(first));
    }
    if !first.errors.is_empty() {
        return Ok(Screening::Denied(first));
    }
    match decide(ApprovalState::Granted) {
        Ok(counterfactual) if counterfactual.effect == Effect::Allow => {
            let demanded_by = if first.determining_policies.is_empty() {
                counterfactual.determining_policies
            } else {
                first.determining_policies.clone()
            };
            Ok(Screening::NeedsApproval { first, demanded_by })
        }
        _ => Ok(Screening::Denied(first)),
    }
}
