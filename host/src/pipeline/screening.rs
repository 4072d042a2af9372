//! Steps 2 to 6a of the call path for one tool, shared by the call,
//! `dry_run` and `explain` (and through it `policy test`), so that what they
//! report cannot drift from what the guard does. In the call's order: the
//! session's expiry, the arguments (JSON, the tool's resource, the tool's
//! typed struct, Cedar values), the entities, then the Cedar request, built
//! once and screened by the counterfactual approval rule. Nothing here
//! waits, records or runs.

use std::borrow::Borrow;

use cedar_policy::{Entities, EntityUid};
use jiff::Timestamp;
use serde_json::Value;

use super::call_error::{ArgumentProblem, ToolCallError};
use super::entities::EntityError;
use super::evaluate::{ApprovalState, Screening, screen};
use super::record::DecidedBy;
use super::request::{self, CallRequest, PreparedSession, RequestError};
use super::session::Session;
use super::tools::{ArgumentsError, ParsedArgs, RegisteredTool};
use crate::policy::{Decision, Policies};

/// A call that passed steps 2 to 6a.
pub(crate) struct Screened<'a, E> {
    /// The Cedar request, built once for every evaluation of the call.
    pub(crate) request: CallRequest<'a>,
    /// The entities the call is decided over.
    pub(crate) entities: E,
    /// What policy says before any human is asked.
    pub(crate) screening: Screening,
}

impl<E: Borrow<Entities>> Screened<'_, E> {
    /// One more evaluation of the same request, under `approval`.
    pub(crate) fn decide(
        &self,
        policies: &Policies,
        approval: ApprovalState<'_>,
    ) -> Result<Decision, RequestError> {
        self.request
            .decide(policies, self.entities.borrow(), approval)
    }
}

/// A call refused before policy decided it: which step, and what the agent
/// is told.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The step that refused it, as the record says.
    pub(crate) decided_by: DecidedBy,
    /// What the agent is told.
    pub(crate) err: ToolCallError,
    /// The resource, if the refusal came after it was derived.
    pub(crate) resource: Option<String>,
}

fn refused(decided_by: DecidedBy, err: ToolCallError, resource: Option<&EntityUid>) -> Refused {
    Refused {
        decided_by,
        err,
        resource: resource.map(ToString::to_string),
    }
}

/// Screens a call of `tool` at `now` with `arguments` (the agent's JSON, or
/// why it is not JSON) in `session`. `entities` gives the entities for the
/// call's resource. The arguments as the tool's own struct come back
/// apart, for running the tool: they need not be shared across threads
/// while the call waits for a reviewer.
pub(crate) fn screen_call<'a, E: Borrow<Entities>>(
    policies: &Policies,
    session: &Session,
    prepared: &'a PreparedSession,
    tool: &'a RegisteredTool,
    arguments: Result<&Value, &serde_json::Error>,
    now: Timestamp,
    entities: impl FnOnce(&EntityUid) -> Result<E, EntityError>,
) -> Result<(Screened<'a, E>, ParsedArgs), Refused> {
    use DecidedBy::{EntityLookup, InvalidArguments, Policy, SessionExpired};
    let invalid = |problem: ArgumentProblem, r: Option<&EntityUid>| {
        refused(InvalidArguments, ToolCallError::from(problem), r)
    };
    if session.is_expired(now) {
        return Err(refused(SessionExpired, ToolCallError::SessionExpired, None));
    }
    let args = arguments.map_err(|e| {
        let message = e.to_string();
        invalid(ArgumentProblem::NotJson { message }, None)
    })?;
    let resource = tool
        .resource(args)
        .map_err(|e| invalid(ArgumentProblem::Tool(e), None))?;
    let typed = tool.parse(args).map_err(|e| {
        // serde quotes the offending value; for a tool with secrets that
        // value may be one, and the message goes into the log.
        let e = match e {
            ArgumentsError::Mismatch { field, at, message }
                if !tool.sensitive_paths().is_empty() =>
            {
                ArgumentsError::Mismatch {
                    field,
                    at,
                    message: without_values(&message),
                }
            }
            e => e,
        };
        invalid(ArgumentProblem::Tool(e), Some(&resource))
    })?;
    let cedar_args = request::arguments(args, "arguments")
        .map_err(|e| invalid(ArgumentProblem::NotCedar(e), Some(&resource)))?;
    let entities = entities(&resource).map_err(|e| {
        let err = ToolCallError::Denied {
            policies: Vec::new(),
            reasons: vec![e.to_string()],
        };
        refused(EntityLookup, err, Some(&resource))
    })?;
    let resource_text = resource.to_string();
    let request = CallRequest::new(
        prepared,
        tool.action(),
        tool.action_text(),
        resource,
        now,
        cedar_args,
    )
    .map_err(|e| {
        // Cannot happen for a time formatted by the guard; were it to,
        // the call is denied and recorded, like any failed decision.
        let err = ToolCallError::Denied {
            policies: Vec::new(),
            reasons: vec![format!("cannot evaluate the call's time: {e}")],
        };
        Refused {
            decided_by: Policy,
            err,
            resource: Some(resource_text.clone()),
        }
    })?;
    let entities_ref: &Entities = entities.borrow();
    let screening =
        screen(&|approval: ApprovalState<'_>| request.decide(policies, entities_ref, approval))
            .map_err(|cause| Refused {
                decided_by: InvalidArguments,
                err: ToolCallError::from(ArgumentProblem::NotInSchema {
                    action: tool.action().to_string(),
                    cause,
                }),
                resource: Some(resource_text.clone()),
            })?;
    let screened = Screened {
        request,
        entities,
        screening,
    };
    Ok((screened, typed))
}

/// Drops the values serde quotes in its messages (`invalid type: string
/// "hunter2", expected u64` -> `invalid type: string, expected u64`), keeping
/// the field path and what was expected.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let found = ["invalid type: ", "invalid value: ", "unknown variant "]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i);
        let Some((i, marker)) = found else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[i + marker.len()..];
        let end = after.find(", expected").unwrap_or(after.len());
        out.push_str(&rest[..i + marker.len()]);
        if marker == "unknown variant " {
            out.push_str("(value withheld)");
        } else {
            // Keep the kind (`string`, `integer`, ...), drop the value.
            out.push_str(after[..end].split_whitespace().next().unwrap_or(""));
        }
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn values_quoted_by_serde_are_withheld() {
        assert_eq!(
            without_values("field `pin`: invalid type: string \"hunter2\", expected u64"),
            "field `pin`: invalid type: string, expected u64"
        );
        assert_eq!(
            without_values("invalid value: integer `1234`, expected a short code"),
            "invalid value: integer, expected a short code"
        );
        assert_eq!(
            without_values("unknown variant `secret`, expected `a` or `b`"),
            "unknown variant (value withheld), expected `a` or `b`"
        );
        assert_eq!(without_values("missing field `to`"), "missing field `to`");
    }
}
