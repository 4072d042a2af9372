//! One decision record decided again: read what it recorded, rebuild its
//! Cedar request, screen it under the candidate and reuse the recorded human
//! answer where the candidate asks for one.

use std::str::FromStr;

use cedar_policy::{Context, EntityTypeName, EntityUid, Request, Schema};
use serde_json::{Map, Value};

use super::reads::{ArgumentReads, Redacted};
use super::{
    CallRef, NotReplayable, NotReplayableReason, RecordedVerdict, ReplayChange, ReplayEffect,
    ReplayVerdict, Replayed, Replayer,
};
use crate::pipeline::ARGUMENTS_ROOT;
use crate::pipeline::evaluate::{ApprovalState, Screening, screen};
use crate::pipeline::record::ApprovalOutcome;
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

impl Replayer<'_> {
    /// Decides the decision record `record` again. `None` when it is not a
    /// decision record.
    pub fn replay_record(&self, record: &Value) -> Option<Replayed> {
        if record.get("kind").and_then(Value::as_str) != Some("decision") {
            return None;
        }
        let call = call_ref(record);
        let not_replayable = |reason| {
            Some(Replayed::NotReplayable(Box::new(NotReplayable {
                call: call.clone(),
                reason,
            })))
        };
        let malformed =
            |message: String| not_replayable(NotReplayableReason::Malformed { message });
        let decision = record.get("decision");
        match decision
            .and_then(|d| d.get("decided_by"))
            .and_then(Value::as_str)
        {
            Some("policy") => {}
            Some(_) => return Some(Replayed::RefusedBeforePolicy),
            None => return malformed("no `decision.decided_by`".into()),
        }
        let old = match recorded_verdict(record) {
            Ok(v) => v,
            Err(message) => return malformed(message),
        };
        let Some(request) = decision.and_then(|d| d.get("request")) else {
            return not_replayable(NotReplayableReason::NoRequest);
        };
        let Some(arguments) = record.get("action").and_then(|a| a.get(ARGUMENTS_ROOT)) else {
            return malformed("no `action.arguments`".into());
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

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

fn call_ref(record: &Value) -> CallRef {
    CallRef {
        seq: record
            .get("seq")
            .and_then(Value::as_u64)
            .unwrap_or_default(),
        call_id: text(record.get("call_id")),
        session_id: text(record.get("session_id")),
        user: text(record.get("user").and_then(|u| u.get("id"))),
        agent: text(record.get("agent").and_then(|a| a.get("id"))),
        tool: text(record.get("action").and_then(|a| a.get("tool"))),
    }
}

/// The ids of a recorded list of policies (`[{"id": ..}, ..]`).
fn policy_ids(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| p.get("id").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn outcome(text: &str) -> Option<ApprovalOutcome> {
    Some(match text {
        "not_required" => ApprovalOutcome::NotRequired,
        "approved" => ApprovalOutcome::Approved,
        "denied" => ApprovalOutcome::Denied,
        "timed_out" => ApprovalOutcome::TimedOut,
        "reviewer_failed" => ApprovalOutcome::ReviewerFailed,
        "reviewer_not_allowed" => ApprovalOutcome::ReviewerNotAllowed,
        "approved_by_grant" => ApprovalOutcome::ApprovedByGrant,
        _ => return None,
    })
}

fn recorded_verdict(record: &Value) -> Result<RecordedVerdict, String> {
    let decision = record.get("decision");
    let effect = match decision
        .and_then(|d| d.get("effect"))
        .and_then(Value::as_str)
    {
        Some("allow") => Effect::Allow,
        Some("deny") => Effect::Deny,
        other => return Err(format!("`decision.effect` is {other:?}, not allow or deny")),
    };
    let approval = record.get("approval");
    let approval_required = approval
        .and_then(|a| a.get("required"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let approval_outcome = match approval
        .and_then(|a| a.get("outcome"))
        .and_then(Value::as_str)
    {
        None => ApprovalOutcome::NotRequired,
        Some(o) => outcome(o).ok_or_else(|| format!("unknown `approval.outcome` `{o}`"))?,
    };
    Ok(RecordedVerdict {
        effect,
        approval_required,
        approval_outcome,
        reviewer: approval
            .and_then(|a| a.get("reviewer"))
            .and_then(Value::as_str)
            .map(str::to_string),
        determining_policies: policy_ids(decision.and_then(|d| d.get("determining_policies"))),
        demanded_by: policy_ids(approval.and_then(|a| a.get("demanded_by"))),
    })
}

fn request_parts(request: &Value, arguments: &Value) -> Result<RequestParts, String> {
    let entity = |field: &str| -> Result<EntityUid, String> {
        let text = request
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no `decision.request.{field}`"))?;
        EntityUid::from_str(text)
            .map_err(|e| format!("`decision.request.{field}` `{text}` is not an entity: {e}"))
    };
    let Some(Value::Object(context)) = request.get("context") else {
        return Err("`decision.request.context` is not an object".into());
    };
    let mut context = context.clone();
    context.insert(ARGUMENTS_ROOT.into(), arguments.clone());
    Ok(RequestParts {
        principal: entity("principal")?,
        action: entity("action")?,
        resource: entity("resource")?,
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
