//! One decision record decided again: read it through the guard's own record
//! types, rebuild its Cedar request, screen it under the candidate and reuse
//! the recorded human answer where the candidate asks for one.

use std::str::FromStr;

use cedar_policy::{Context, EntityTypeName, EntityUid, Request, Schema};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::reads::{ArgumentReads, Redacted};
use super::{
    CallRef, NotReplayable, NotReplayableReason, RecordedVerdict, ReplayChange, ReplayEffect,
    ReplayVerdict, Replayed, Replayer,
};
use crate::audit::line_seq;
use crate::pipeline::ARGUMENTS_ROOT;
use crate::pipeline::evaluate::{ApprovalState, Screening, screen};
use crate::pipeline::record::{
    ApprovalOutcome, ApprovalRecord, DecidedBy, DecisionRecord, PolicyRef, Record, RecordKind,
    RequestRecord, effect_of,
};
use crate::pipeline::redact::{commitment_paths, is_commitment};
use crate::pipeline::request::uid;
use crate::policy::{Decision, DeterminingPolicy, Effect};

/// The recorded request, parsed.
struct RequestParts {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    /// `session`, `user`, `delegation`, `now` and `arguments`; `approval`
    /// is added per evaluation.
    context: Map<String, Value>,
}

/// The fields every line has, for lines that are not guard records the
/// guard's record types can read.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    kind: Option<String>,
}

impl Replayer<'_> {
    /// Decides the record on `line` again, when it is a decision record.
    /// A decision record the record types cannot read is not replayable
    /// ([`NotReplayableReason::Malformed`], naming the field); a line that is
    /// not JSON is an error.
    pub fn replay_line(&self, line: &[u8]) -> Result<Option<Replayed>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(line);
        let error = match serde_path_to_error::deserialize::<_, Record>(&mut de) {
            Ok(record) => {
                de.end()?;
                let seq = match line_seq(line) {
                    Some(seq) => seq,
                    None => serde_json::from_slice::<Head>(line)?.seq,
                };
                return Ok(self.replay_record(seq, &record));
            }
            Err(error) => error,
        };
        let head: Head = serde_json::from_slice(line)?;
        let kind = head.kind.as_deref().map(str::parse::<RecordKind>);
        if !matches!(kind, Some(Ok(RecordKind::Decision))) {
            // Another kind, perhaps using the guard's field names for other shapes.
            return Ok(None);
        }
        Ok(Some(Replayed::NotReplayable(Box::new(NotReplayable {
            call: CallRef {
                seq: head.seq,
                ..CallRef::default()
            },
            reason: NotReplayableReason::Malformed {
                message: match error.path().to_string() {
                    path if path == "." => error.inner().to_string(),
                    path => format!("`{path}`: {}", error.inner()),
                },
            },
        }))))
    }
}

impl Replayer<'_> {
    /// Decides the decision record `record`, at `seq`, again. `None` when it
    /// is not a decision record.
    pub fn replay_record(&self, seq: u64, record: &Record) -> Option<Replayed> {
        if record.kind != RecordKind::Decision {
            return None;
        }
        let call = call_ref(seq, record);
        let not_replayable = |reason| {
            Some(Replayed::NotReplayable(Box::new(NotReplayable {
                call: call.clone(),
                reason,
            })))
        };
        let malformed =
            |message: String| not_replayable(NotReplayableReason::Malformed { message });
        let Some(decision) = &record.decision else {
            return malformed("no `decision.decided_by`".into());
        };
        match decision.decided_by {
            Some(DecidedBy::Policy) => {}
            Some(_) => return Some(Replayed::RefusedBeforePolicy),
            None => return malformed("no `decision.decided_by`".into()),
        }
        let old = recorded_verdict(decision, record.approval.as_ref());
        let Some(request) = &decision.request else {
            return not_replayable(NotReplayableReason::NoRequest);
        };
        // Written for every call; absent (read as null) only in a damaged record.
        let arguments = match &record.action {
            Some(action) if !action.arguments.is_null() => &action.arguments,
            _ => return malformed("no `action.arguments`".into()),
        };
        let parts = match request_parts(request, arguments) {
            Ok(p) => p,
            Err(message) => return malformed(message),
        };

        let (redacted, paths) = redacted(arguments);
        let new = if paths.is_empty() {
            self.decide_again(&parts, &old, Some(self.policies.schema()))
        } else {
            let readers: Vec<&(String, ArgumentReads)> = self
                .reads
                .iter()
                .filter(|(_, reads)| reads.reads_any(&redacted))
                .collect();
            if !readers.is_empty() {
                let read = |field: &str| {
                    readers
                        .iter()
                        .any(|(_, r)| r.all || r.fields.contains(field))
                };
                return not_replayable(NotReplayableReason::RedactedArguments {
                    paths: paths
                        .into_iter()
                        .filter(|p| redacted.root || top_level(p).is_some_and(read))
                        .collect(),
                    policies: readers.iter().map(|(id, _)| id.clone()).collect(),
                });
            }
            // No policy looks at the commitments, so they need not fit the
            // schema; what can be checked without them still is.
            match loosely_fits(self.policies.schema(), &parts) {
                Ok(()) => self.decide_again(&parts, &old, None),
                Err(message) => refused(message),
            }
        };
        let changed = ReplayEffect::from(old.effect) != new.effect
            || old.approval_required != new.approval_required;
        Some(if changed {
            Replayed::Changed(Box::new(ReplayChange { call, old, new }))
        } else {
            Replayed::Unchanged
        })
    }

    /// Screens the request under the candidate, then reuses the recorded
    /// human answer if the candidate holds the call.
    fn decide_again(
        &self,
        parts: &RequestParts,
        old: &RecordedVerdict,
        schema: Option<&Schema>,
    ) -> ReplayVerdict {
        let entities = self.policies.entities();
        let decide = |approval: ApprovalState<'_>| -> Result<Decision, String> {
            let mut context = parts.context.clone();
            context.insert("approval".into(), approval.json());
            let context = Context::from_json_value(
                Value::Object(context),
                schema.map(|s| (s, &parts.action)),
            )
            .map_err(|e| e.to_string())?;
            let request = Request::new(
                parts.principal.clone(),
                parts.action.clone(),
                parts.resource.clone(),
                context,
                schema,
            )
            .map_err(|e| e.to_string())?;
            Ok(self.policies.decide(&request, entities))
        };
        let demanded_by = match screen(&decide) {
            Err(e) => {
                return refused(format!(
                    "the request does not fit the candidate schema: {e}"
                ));
            }
            Ok(Screening::Allowed(d) | Screening::Denied(d)) => {
                return verdict(&d, false, Vec::new());
            }
            Ok(Screening::NeedsApproval { demanded_by, .. }) => demanded_by,
        };
        let held = |effect| ReplayVerdict {
            effect,
            approval_required: true,
            reviewer: None,
            determining_policies: ids(&demanded_by),
            demanded_by: ids(&demanded_by),
            errors: Vec::new(),
            message: None,
        };
        match (old.approval_outcome, &old.reviewer) {
            // A reviewer approved: does the candidate accept that reviewer?
            (ApprovalOutcome::Approved | ApprovalOutcome::ReviewerNotAllowed, Some(reviewer)) => {
                let with = uid("User", reviewer).and_then(|r| decide(ApprovalState::GrantedBy(&r)));
                match with {
                    Ok(d) => ReplayVerdict {
                        reviewer: Some(reviewer.clone()),
                        ..verdict(&d, true, ids(&demanded_by))
                    },
                    // As the guard does: a failed check leaves the call denied.
                    Err(e) => ReplayVerdict {
                        reviewer: Some(reviewer.clone()),
                        message: Some(format!("reviewer `{reviewer}`: {e}")),
                        ..held(ReplayEffect::Deny)
                    },
                }
            }
            // A standing grant was reused: does the candidate accept it? If
            // not, the guard would have asked a reviewer again.
            (ApprovalOutcome::ApprovedByGrant, Some(reviewer)) => {
                match uid("User", reviewer).and_then(|r| decide(ApprovalState::Standing(&r))) {
                    Ok(d) if d.effect == Effect::Allow => ReplayVerdict {
                        reviewer: Some(reviewer.clone()),
                        ..verdict(&d, true, ids(&demanded_by))
                    },
                    Ok(_) => ReplayVerdict {
                        reviewer: Some(reviewer.clone()),
                        message: Some(format!(
                            "the standing grant of `{reviewer}` is not accepted; a reviewer would be asked again"
                        )),
                        ..held(ReplayEffect::Held)
                    },
                    Err(e) => ReplayVerdict {
                        reviewer: Some(reviewer.clone()),
                        message: Some(format!("reviewer `{reviewer}`: {e}")),
                        ..held(ReplayEffect::Held)
                    },
                }
            }
            // The human's answer stands.
            (
                ApprovalOutcome::Denied
                | ApprovalOutcome::TimedOut
                | ApprovalOutcome::ReviewerFailed,
                _,
            ) => held(ReplayEffect::Deny),
            // Nobody was asked: what a reviewer would say is unknown.
            _ => held(ReplayEffect::Held),
        }
    }
}

/// The candidate refuses the request before any policy decides.
fn refused(message: String) -> ReplayVerdict {
    ReplayVerdict {
        effect: ReplayEffect::Deny,
        approval_required: false,
        reviewer: None,
        determining_policies: Vec::new(),
        demanded_by: Vec::new(),
        errors: Vec::new(),
        message: Some(message),
    }
}

fn verdict(d: &Decision, approval_required: bool, demanded_by: Vec<String>) -> ReplayVerdict {
    ReplayVerdict {
        effect: d.effect.into(),
        approval_required,
        reviewer: None,
        determining_policies: ids(&d.determining_policies),
        demanded_by,
        errors: errors(d),
        message: None,
    }
}

fn ids(policies: &[DeterminingPolicy]) -> Vec<String> {
    policies.iter().map(|p| p.id.clone()).collect()
}

fn errors(d: &Decision) -> Vec<String> {
    d.errors
        .iter()
        .map(|e| format!("{}: {}", e.policy, e.message))
        .collect()
}

fn call_ref(seq: u64, record: &Record) -> CallRef {
    CallRef {
        seq,
        call_id: record.call_id.clone().unwrap_or_default(),
        session_id: record
            .session_id
            .as_deref()
            .map(str::to_string)
            .unwrap_or_default(),
        user: record
            .user
            .as_ref()
            .map(|u| u.id.clone())
            .unwrap_or_default(),
        agent: record
            .agent
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default(),
        tool: record
            .action
            .as_ref()
            .map(|a| a.tool.clone())
            .unwrap_or_default(),
    }
}

/// The ids of a recorded list of policies.
fn policy_ids(policies: &[PolicyRef]) -> Vec<String> {
    policies.iter().map(|p| p.id.clone()).collect()
}

fn recorded_verdict(
    decision: &DecisionRecord,
    approval: Option<&ApprovalRecord>,
) -> RecordedVerdict {
    RecordedVerdict {
        effect: effect_of(decision.effect),
        approval_required: approval.is_some_and(|a| a.required),
        approval_outcome: approval.map_or(ApprovalOutcome::NotRequired, |a| a.outcome),
        reviewer: approval.and_then(|a| a.reviewer.clone()),
        determining_policies: policy_ids(&decision.determining_policies),
        demanded_by: approval
            .map(|a| policy_ids(&a.demanded_by))
            .unwrap_or_default(),
    }
}

fn request_parts(request: &RequestRecord, arguments: &Value) -> Result<RequestParts, String> {
    let entity = |field: &str, text: &str| -> Result<EntityUid, String> {
        EntityUid::from_str(text)
            .map_err(|e| format!("`decision.request.{field}` `{text}` is not an entity: {e}"))
    };
    // The context as recorded, through its own type: `now` beside the session's parts.
    let Ok(Value::Object(mut context)) = serde_json::to_value(&request.context) else {
        return Err("`decision.request.context` is not an object".into());
    };
    context.insert(ARGUMENTS_ROOT.into(), arguments.clone());
    Ok(RequestParts {
        principal: entity("principal", &request.principal)?,
        action: entity("action", &request.action)?,
        resource: entity("resource", &request.resource)?,
        context,
    })
}

/// The redacted arguments: which top-level ones hold a commitment, and the
/// concrete path of every commitment (`arguments.attachments[1].content`).
fn redacted(arguments: &Value) -> (Redacted, Vec<String>) {
    let mut found = Redacted::default();
    let mut paths = Vec::new();
    if is_commitment(arguments) {
        found.root = true;
        paths.push(ARGUMENTS_ROOT.to_string());
        return (found, paths);
    }
    if let Value::Object(map) = arguments {
        for (name, value) in map {
            let found_here =
                commitment_paths(value, &format!("{ARGUMENTS_ROOT}.{name}"), usize::MAX);
            if !found_here.is_empty() {
                found.fields.insert(name.clone());
                paths.extend(found_here);
            }
        }
    }
    (found, paths)
}

/// The top-level argument of a concrete path: `body` of `arguments.body[0]`.
fn top_level(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(ARGUMENTS_ROOT)?.strip_prefix('.')?;
    Some(rest.split(['.', '[']).next().unwrap_or(rest))
}

/// What the schema can check of a request whose arguments are not checked:
/// that the candidate declares the action, for this principal and resource.
fn loosely_fits(schema: &Schema, parts: &RequestParts) -> Result<(), String> {
    let action = &parts.action;
    let misfit = |why: String| format!("the request does not fit the candidate schema: {why}");
    let principals: Option<Vec<&EntityTypeName>> =
        schema.principals_for_action(action).map(Iterator::collect);
    let resources: Option<Vec<&EntityTypeName>> =
        schema.resources_for_action(action).map(Iterator::collect);
    let (Some(principals), Some(resources)) = (principals, resources) else {
        return Err(misfit(format!("action `{action}` is not declared")));
    };
    for (what, uid, types) in [
        ("principal", &parts.principal, principals),
        ("resource", &parts.resource, resources),
    ] {
        if !types.contains(&uid.type_name()) {
            return Err(misfit(format!(
                "{what} `{uid}` is not of a type action `{action}` applies to"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn commitments_are_found_with_their_top_level_argument() {
        let c = json!({"redacted": "sha256:00", "key_id": "k"});
        let args = json!({
            "to": "bob@example.com",
            "body": c,
            "attachments": [{"name": "a", "content": c}, {"name": "b", "content": c}],
        });
        let (found, paths) = redacted(&args);
        assert!(!found.root);
        assert_eq!(
            found.fields.iter().map(String::as_str).collect::<Vec<_>>(),
            ["attachments", "body"]
        );
        assert_eq!(
            paths,
            // In the order the record holds them.
            [
                "arguments.body",
                "arguments.attachments[0].content",
                "arguments.attachments[1].content",
            ]
        );
        assert_eq!(
            top_level("arguments.attachments[1].content"),
            Some("attachments")
        );
        assert_eq!(top_level("arguments.body"), Some("body"));
        let (whole, paths) = redacted(&c);
        assert!(whole.root);
        assert_eq!(paths, ["arguments"]);
        let (none, paths) = redacted(&json!({"document_id": "d"}));
        assert_eq!(none, Redacted::default());
        assert!(paths.is_empty());
    }
}
