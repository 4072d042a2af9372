//! The call path of DESIGN.md, steps 2 to 9: look the tool up, check the
//! session, build the Cedar request, decide (with the counterfactual approval
//! rule), write the decision record durably, run the tool, write the outcome.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use cedar_policy::{Entities, EntityId, EntityTypeName, EntityUid};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::approval::PendingApproval;
use super::bounded;
use super::context::{self, CallRequest, SessionContext};
use super::evaluate::{ApprovalState, Screening, screen};
use super::record::{
    ActionRecord, ApprovalOutcome, ApprovalRecord, CallStatus, DecidedBy, DecisionRecord, GrantRef,
    OutcomeRecord, Record, RecordKind, RequestContext, RequestRecord,
};
use super::reveal::Revealed;
use super::review::ApprovalResult;
use super::session::Session;
use super::tools::{ParsedArgs, RegisteredTool, ToolContext};
use super::{GuardError, SessionGuard};
use crate::policy::{Decision, DeterminingPolicy, Effect, Policies};

/// What the agent gets back instead of a result. Mirrors the WIT
/// `tool-error` variant; a denial is a value, never a trap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    /// Policies deny the call.
    #[error("denied by {}", if .policies.is_empty() { "default (no policy permits it)".to_string() } else { .policies.join(", ") })]
    Denied {
        /// Determining policy ids (or those that failed to evaluate).
        policies: Vec<String>,
        /// Their reasons.
        reasons: Vec<String>,
    },
    /// A reviewer refused, or a reviewer policy does not accept.
    #[error("approval denied: {0}")]
    ApprovalDenied(String),
    /// Nobody decided in time.
    #[error("approval timed out")]
    ApprovalTimedOut,
    /// The session has expired.
    #[error("session expired")]
    SessionExpired,
    /// No such tool.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The arguments do not fit the tool.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool failed.
    #[error("tool failed: {0}")]
    ToolFailed(String),
    /// The audit log cannot be written; nothing ran.
    #[error("audit unavailable: {0}")]
    AuditUnavailable(String),
}

/// What happened to one call, for observers such as the CLI.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The call id.
    pub call_id: String,
    /// The tool asked for.
    pub tool: String,
    /// The Cedar resource, if one was derived.
    pub resource: Option<String>,
    /// The final effect.
    pub effect: Effect,
    /// The determining policies of the final decision.
    pub policies: Vec<String>,
    /// How approval went.
    pub approval: ApprovalOutcome,
    /// The reviewer, if one decided.
    pub reviewer: Option<String>,
    /// The error returned to the agent, if any.
    pub error: Option<ToolCallError>,
    /// Sequence number of the decision record, if it was written.
    pub decision_seq: Option<u64>,
}

/// The parts of a call's Cedar request that are the same for the whole
/// session, built once at session start.
pub(crate) struct PreparedSession {
    pub(crate) principal: EntityUid,
    /// `principal` as text, for every decision record.
    pub(crate) principal_text: String,
    /// `session`, `user` and `delegation`, evaluated once.
    pub(crate) context: SessionContext,
    /// The same parts as Cedar JSON, for the request each decision records.
    pub(crate) parts_json: Arc<Map<String, Value>>,
}

pub(crate) fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str(ty).map_err(|e| format!("entity type `{ty}`: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// Cedar's datetime wants exactly millisecond precision in UTC.
fn datetime_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A datetime as Cedar evaluates it.
pub(crate) fn cedar_datetime(t: Timestamp) -> Result<cedar_policy_core::ast::Value, String> {
    context::datetime(&datetime_text(t))
}

/// A datetime in Cedar JSON, from [`datetime_text`].
fn datetime_json_text(text: &str) -> Value {
    json!({ "__extn": { "fn": "datetime", "arg": text } })
}

/// A datetime in Cedar JSON.
pub(crate) fn datetime_json(t: Timestamp) -> Value {
    json!({ "__extn": { "fn": "datetime", "arg": datetime_text(t) } })
}

/// An entity reference in Cedar JSON.
pub(crate) fn entity_json(ty: &str, id: &str) -> Value {
    json!({ "__entity": { "type": ty, "id": id } })
}

impl PreparedSession {
    pub(crate) fn new(session: &Session) -> Result<Self, String> {
        let chain: Vec<String> = session
            .delegation_chain
            .iter()
            .map(ToString::to_string)
            .collect();
        let parts_json = json!({
            "session": {
                "id": session.session_id,
                "scopes": session.scopes,
                "type": session.session_type.as_str(),
                "expires_at": datetime_json(session.expires_at),
            },
            "user": entity_json("User", &session.user.id),
            "delegation": { "chain": chain, "depth": chain.len() },
        });
        let Value::Object(parts_json) = parts_json else {
            return Err("session context is not a record".into());
        };
        let principal = uid("Agent", &session.agent.id)?;
        Ok(PreparedSession {
            context: SessionContext::from_json(&parts_json)?,
            parts_json: Arc::new(parts_json),
            principal_text: principal.to_string(),
            principal,
        })
    }
}

impl SessionGuard {
    /// Handles one tool call from the agent: `arguments` is the JSON text the
    /// guest passed. Returns the tool's result as JSON text, or why not.
    pub async fn call(&self, tool_name: &str, arguments: &str) -> Result<String, ToolCallError> {
        // One policy set decides the whole call, however long a reviewer
        // takes, even if the guard reloads meanwhile.
        let policies = self.inner.policies.load_full();
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("{}:{n}", self.session.session_id);
        let screened = match self.screen_call(&policies, call_id, tool_name, arguments) {
            Ok(s) => *s,
            Err(r) => {
                let Refusal {
                    call_id,
                    action,
                    decided_by,
                    err,
                } = *r;
                return self
                    .refuse(&policies, call_id, action, decided_by, err)
                    .await;
            }
        };
        let Screened {
            call_id,
            tool,
            typed,
            action,
            resource,
            entities,
            now,
            now_text,
            cedar_now,
            cedar_args,
            screening,
            clear_args,
        } = screened;
        let call_request = self.call_request(&tool, &resource, &cedar_now, &cedar_args);
        let decide =
            |approval: ApprovalState<'_>| call_request.decide(&policies, &entities, approval);
        let resource_text = resource.to_string();
        let mut approval = match settled(&policies, screening) {
            Ok(settled) => settled,
            Err(demanded_by) => {
                // A standing grant for this tool and resource decides without
                // a human, if policy accepts it for this call.
                let standing = self
                    .grants
                    .get(tool_name, &resource_text)
                    .and_then(|grant| self.use_grant(&grant, &demanded_by, &decide));
                if let Some(granted) = standing {
                    granted
                } else {
                    // A reviewer may answer minutes later: the call is decided
                    // again at the time of the answer, not at the time it was
                    // held, so `context.now` and the expiry are current.
                    let decide_at = |approval: ApprovalState<'_>, at: Timestamp| {
                        let at_text = datetime_text(at);
                        let cedar_at = context::now(at.as_millisecond(), &at_text)?;
                        self.call_request(&tool, &resource, &cedar_at, &cedar_args)
                            .decide(&policies, &entities, approval)
                    };
                    let pending = PendingApproval {
                        approval_id: approval_id(&call_id),
                        session_id: self.session.session_id.clone(),
                        call_id: call_id.clone(),
                        tool: tool_name.to_string(),
                        arguments: action.arguments.clone(),
                        resource: resource.to_string(),
                        user: self.session.user.clone(),
                        agent: self.session.agent.clone(),
                        delegation_chain: self.session.delegation_chain.clone(),
                        demanded_by,
                        // No approval outlives the session it is for.
                        deadline: deadline(now, self.inner.approval_timeout)
                            .min(self.session.expires_at),
                        revealed: Revealed::collect(
                            &self.inner.reveal.allowed,
                            &action.arguments,
                            &clear_args,
                        ),
                    };
                    self.ask_reviewer(pending, &action, &decide_at).await
                }
            }
        };
        let allowed = approval.error.is_none() && approval.decision.effect == Effect::Allow;
        // The record says when the deciding evaluation ran, so that replay
        // decides it with the same `now`.
        let now_text = approval.evaluated_at.map_or(now_text, datetime_text);
        let record = self.decision_of(
            &policies, &call_id, action, &tool, &resource, &now_text, &approval,
        );
        let mut report = CallReport {
            call_id: call_id.clone(),
            tool: tool_name.to_string(),
            resource: Some(resource.to_string()),
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            policies: approval
                .decision
                .determining_policies
                .iter()
                .map(|p| p.id.clone())
                .collect(),
            approval: approval.record.outcome,
            reviewer: approval.record.reviewer.clone(),
            error: None,
            decision_seq: None,
        };
        // Write-ahead: the decision is durable before the tool can run.
        let appended = match self.write(record).await {
            Ok(a) => a,
            Err(e) => return self.finish(report, Err(audit_unavailable(&e))),
        };
        report.decision_seq = Some(appended.seq);
        if let Some((approval_id, reviewer)) = approval.session_grant.take() {
            // Remembered only once the approval is on record, so that every
            // reuse can point at it.
            self.grants.remember(
                tool_name,
                &resource_text,
                GrantRef {
                    approval_id,
                    reviewer,
                    decision_seq: appended.seq,
                },
            );
        }
        if let Some(err) = approval.error {
            return self.finish(report, Err(err));
        }
        if !allowed {
            return self.finish(report, Err(denial(&policies, &approval.decision)));
        }

        let ctx = ToolContext {
            session_id: self.session.session_id.clone(),
            call_id: call_id.clone(),
            user_id: self.session.user.id.clone(),
            decision_seq: appended.seq,
            audit_path: self.inner.audit.path().to_path_buf(),
        };
        let started = Instant::now();
        let result = tool.run(ctx, typed).await;
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A tool's error can quote what the agent passed it: bounded.
        let outcome_error = match &result {
            Err(e) => {
                let (text, truncated) = bounded::text(&e.0);
                (Some(text), truncated)
            }
            Ok(_) => (None, None),
        };
        let mut outcome = Record::new(RecordKind::Outcome, &self.identity);
        outcome.call_id = Some(call_id);
        outcome.outcome = Some(OutcomeRecord {
            decision_seq: appended.seq,
            status: if result.is_ok() {
                CallStatus::Ok
            } else {
                CallStatus::Failed
            },
            latency_us,
            error: outcome_error.0,
            error_truncated: outcome_error.1,
        });
        // The tool has run; if its outcome cannot be recorded the agent does
        // not get the result, so nothing continues on an unrecorded action.
        if let Err(e) = self.write(outcome).await {
            return self.finish(report, Err(audit_unavailable(&e)));
        }
        let result = result
            .map_err(|e| ToolCallError::ToolFailed(bounded::cut(&e.0)))
            .and_then(|v| {
                serde_json::to_string(&v).map_err(|e| ToolCallError::ToolFailed(e.to_string()))
            });
        self.finish(report, result)
    }

    /// Steps 2 to 6 of the call path, everything before a reviewer, the log
    /// or the tool: look the tool up, check the session and the arguments,
    /// build the Cedar request and screen it. Nothing here waits.
    fn screen_call(
        &self,
        policies: &Policies,
        call_id: String,
        tool_name: &str,
        arguments: &str,
    ) -> Result<Box<Screened>, Box<Refusal>> {
        let parsed: Result<Value, _> = serde_json::from_str(arguments);

        // A name outside the registered-name alphabet is no tool's: only
        // its bounded, escaped form is recorded or told back.
        let tool = match bounded::is_tool_name(tool_name) {
            true => self.inner.tools.get(tool_name).cloned(),
            false => None,
        };
        let Some(tool) = tool else {
            let (shown, tool_truncated) = bounded::tool_name(tool_name);
            let mut action = ActionRecord {
                kind: "tool_call",
                tool: shown.clone(),
                tool_truncated,
                scope: None,
                arguments: parsed.unwrap_or_else(|_| Value::String(arguments.to_string())),
                resource: None,
            };
            let err = match arguments_too_large(&mut action, arguments) {
                Some(err) => err,
                None => ToolCallError::UnknownTool(shown),
            };
            return Err(refusal(call_id, action, DecidedBy::UnknownTool, err));
        };
        let spec = tool.spec();
        let mut action = ActionRecord {
            kind: "tool_call",
            tool: tool_name.to_string(),
            tool_truncated: None,
            scope: Some(spec.scope.clone()),
            arguments: match &parsed {
                // Sensitive values become commitments before the arguments
                // reach a record or a reviewer.
                Ok(v) => tool
                    .sensitive_paths()
                    .redact(v, &self.inner.redaction_key, &call_id),
                // Unparseable text may hold a secret too; keep only its size.
                Err(_) if !tool.sensitive_paths().is_empty() => {
                    Value::String(format!("[unparsed, {} bytes]", arguments.len()))
                }
                Err(_) => Value::String(arguments.to_string()),
            },
            resource: None,
        };
        if let Some(err) = arguments_too_large(&mut action, arguments) {
            return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
        }

        let now = Timestamp::now();
        if self.session.is_expired(now) {
            return Err(refusal(
                call_id,
                action,
                DecidedBy::SessionExpired,
                ToolCallError::SessionExpired,
            ));
        }

        let args = match parsed {
            Ok(v) => v,
            Err(e) => {
                let err =
                    ToolCallError::InvalidArguments(format!("arguments are not valid json: {e}"));
                return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
            }
        };
        let resource = match tool.resource(&args) {
            Ok(r) => r,
            Err(e) => {
                let err = ToolCallError::InvalidArguments(e);
                return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
            }
        };
        action.resource = Some(resource.to_string());
        let typed = match tool.parse(&args) {
            Ok(t) => t,
            Err(e) => {
                // serde quotes the offending value; for a tool with secrets
                // that value may be one, and the message goes into the log.
                let e = if tool.sensitive_paths().is_empty() {
                    e
                } else {
                    without_values(&e)
                };
                let err = ToolCallError::InvalidArguments(e);
                return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
            }
        };
        let cedar_args = match context::arguments(&args, "arguments") {
            Ok(a) => a,
            Err(e) => {
                let err = ToolCallError::InvalidArguments(e.to_string());
                return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
            }
        };
        let entities = match self.inner.entities_for(policies, &self.session, &resource) {
            Ok(e) => e,
            Err(e) => {
                let err = ToolCallError::Denied {
                    policies: Vec::new(),
                    reasons: vec![e.to_string()],
                };
                return Err(refusal(call_id, action, DecidedBy::EntityLookup, err));
            }
        };

        let now_text = datetime_text(now);
        let cedar_now = match context::now(now.as_millisecond(), &now_text) {
            Ok(now) => now,
            // Cannot happen for a time formatted above; were it to,
            // the call is denied and recorded, like any failed decision.
            Err(e) => {
                let err = ToolCallError::Denied {
                    policies: Vec::new(),
                    reasons: vec![format!("cannot evaluate the call's time: {e}")],
                };
                return Err(refusal(call_id, action, DecidedBy::Policy, err));
            }
        };
        let call_request = self.call_request(&tool, &resource, &cedar_now, &cedar_args);
        let decide =
            |approval: ApprovalState<'_>| call_request.decide(policies, &entities, approval);
        let screening = match screen(&decide) {
            Ok(s) => s,
            Err(e) => {
                let err = ToolCallError::InvalidArguments(format!(
                    "arguments do not match the schema of action `{}`: {e}",
                    tool.action()
                ));
                return Err(refusal(call_id, action, DecidedBy::InvalidArguments, err));
            }
        };
        Ok(Box::new(Screened {
            call_id,
            tool,
            typed,
            action,
            resource,
            entities,
            now,
            now_text,
            cedar_now,
            cedar_args,
            screening,
            clear_args: args,
        }))
    }

    /// The Cedar request of a call of `tool` on `resource`, over the
    /// session's prepared context.
    fn call_request<'a>(
        &'a self,
        tool: &'a RegisteredTool,
        resource: &'a EntityUid,
        now: &'a cedar_policy_core::ast::Value,
        arguments: &'a cedar_policy_core::ast::Value,
    ) -> CallRequest<'a> {
        CallRequest {
            principal: self.principal(),
            action: tool.action(),
            action_text: tool.action_text(),
            resource,
            session: self.session_context(),
            now,
            arguments,
        }
    }

    /// The decision record of a screened (and, if needed, reviewed) call.
    #[allow(clippy::too_many_arguments)]
    fn decision_of(
        &self,
        policies: &Policies,
        call_id: &str,
        action: ActionRecord,
        tool: &RegisteredTool,
        resource: &EntityUid,
        now_text: &str,
        approval: &ApprovalResult,
    ) -> Record {
        let request = RequestRecord {
            principal: self.prepared.principal_text.clone(),
            action: tool.action_text().to_string(),
            // Written once by the screening, for the action record.
            resource: action
                .resource
                .clone()
                .unwrap_or_else(|| resource.to_string()),
            context: RequestContext {
                session: Arc::clone(&self.prepared.parts_json),
                now: datetime_json_text(now_text),
            },
        };
        let mut record = Record::new(RecordKind::Decision, &self.identity);
        record.call_id = Some(call_id.to_string());
        record.action = Some(action);
        let mut decision = decision_record(policies, &approval.decision, DecidedBy::Policy, None);
        decision.request = Some(request);
        record.decision = Some(decision);
        record.approval = Some(approval.record.clone());
        record
    }

    /// The decision record a call of `tool_name` with `arguments` would get
    /// now, as the line the audit log would write next ([`AuditLog::preview`]),
    /// without asking a reviewer, writing anything or running the tool. It
    /// goes through the call path's own steps, so it costs what deciding a
    /// call costs. A call refused before policy gets that refusal; one that
    /// needs a reviewer gets [`ToolCallError::ApprovalDenied`], since a dry
    /// run asks nobody. The call id is `<session>:dry-run`.
    ///
    /// [`AuditLog::preview`]: crate::audit::AuditLog::preview
    pub fn dry_run(&self, tool_name: &str, arguments: &str) -> Result<String, ToolCallError> {
        let policies = self.inner.policies.load_full();
        let call_id = format!("{}:dry-run", self.session.session_id);
        let screened = self
            .screen_call(&policies, call_id, tool_name, arguments)
            .map_err(|r| r.err)?;
        let Ok(approval) = settled(&policies, screened.screening.clone()) else {
            return Err(ToolCallError::ApprovalDenied(
                "a dry run does not ask a reviewer".into(),
            ));
        };
        let Screened {
            call_id,
            tool,
            action,
            resource,
            now_text,
            ..
        } = *screened;
        let record = self.decision_of(
            &policies, &call_id, action, &tool, &resource, &now_text, &approval,
        );
        self.inner
            .audit
            .preview_fixed(&record)
            .map_err(|e| ToolCallError::AuditUnavailable(e.to_string()))
    }

    /// Records a call refused before policy evaluation and returns `err`.
    async fn refuse(
        &self,
        policies: &Policies,
        call_id: String,
        action: ActionRecord,
        decided_by: DecidedBy,
        err: ToolCallError,
    ) -> Result<String, ToolCallError> {
        let denied = Decision {
            effect: Effect::Deny,
            determining_policies: Vec::new(),
            errors: Vec::new(),
        };
        let mut report = CallReport {
            call_id: call_id.clone(),
            tool: action.tool.clone(),
            resource: action.resource.clone(),
            effect: Effect::Deny,
            policies: Vec::new(),
            approval: ApprovalOutcome::NotRequired,
            reviewer: None,
            error: None,
            decision_seq: None,
        };
        let mut record = Record::new(RecordKind::Decision, &self.identity);
        record.call_id = Some(call_id);
        record.action = Some(action);
        // The message can quote the agent (a field name, a tool's error):
        // recorded bounded, with the whole message's size and digest.
        let (message, message_truncated) = bounded::text(&err.to_string());
        let mut decision = decision_record(policies, &denied, decided_by, Some(message));
        decision.message_truncated = message_truncated;
        record.decision = Some(decision);
        record.approval = Some(ApprovalRecord::not_required());
        match self.write(record).await {
            Ok(a) => {
                report.decision_seq = Some(a.seq);
                self.finish(report, Err(err))
            }
            Err(e) => self.finish(report, Err(audit_unavailable(&e))),
        }
    }

    fn finish(
        &self,
        mut report: CallReport,
        result: Result<String, ToolCallError>,
    ) -> Result<String, ToolCallError> {
        let result = result.map_err(ToolCallError::bounded);
        if let Err(e) = &result {
            report.effect = match e {
                ToolCallError::ToolFailed(_) => report.effect,
                _ => Effect::Deny,
            };
            report.error = Some(e.clone());
        }
        if let Some(observer) = &self.inner.observer {
            observer(&report);
        }
        result
    }
}

impl ToolCallError {
    /// The same error with every text it carries cut to
    /// [`crate::limits::RECORDED_TEXT_BYTES`]: what the agent is told is
    /// bounded like what is recorded.
    fn bounded(self) -> Self {
        match self {
            ToolCallError::Denied { policies, reasons } => ToolCallError::Denied {
                policies,
                reasons: reasons.iter().map(|r| bounded::cut(r)).collect(),
            },
            ToolCallError::ApprovalDenied(m) => ToolCallError::ApprovalDenied(bounded::cut(&m)),
            ToolCallError::UnknownTool(m) => ToolCallError::UnknownTool(bounded::cut(&m)),
            ToolCallError::InvalidArguments(m) => ToolCallError::InvalidArguments(bounded::cut(&m)),
            ToolCallError::ToolFailed(m) => ToolCallError::ToolFailed(bounded::cut(&m)),
            ToolCallError::AuditUnavailable(m) => ToolCallError::AuditUnavailable(bounded::cut(&m)),
            e @ (ToolCallError::ApprovalTimedOut | ToolCallError::SessionExpired) => e,
        }
    }
}

/// Refuses a call whose arguments, as the decision record would write them
/// (escaped, sensitive values as commitments), exceed
/// [`crate::limits::RECORDED_ARGUMENTS_BYTES`]: such a record could exceed
/// what the log accepts, and a call must fail closed with a typed error
/// before that, not at the writer. The record keeps their size and SHA-256.
fn arguments_too_large(action: &mut ActionRecord, arguments: &str) -> Option<ToolCallError> {
    let limit = crate::limits::RECORDED_ARGUMENTS_BYTES;
    let recorded = bounded::json_len(&action.arguments);
    if recorded <= limit {
        return None;
    }
    let whole = bounded::Truncated::of(arguments);
    action.arguments = json!({
        "omitted": "over the record limit",
        "bytes": whole.bytes,
        "sha256": whole.sha256,
    });
    Some(ToolCallError::InvalidArguments(format!(
        "arguments take {recorded} bytes in the audit record, over the limit of {limit}; pass less"
    )))
}

/// A call refused before policy evaluation: recorded, then returned.
struct Refusal {
    call_id: String,
    action: ActionRecord,
    decided_by: DecidedBy,
    err: ToolCallError,
}

fn refusal(
    call_id: String,
    action: ActionRecord,
    decided_by: DecidedBy,
    err: ToolCallError,
) -> Box<Refusal> {
    Box::new(Refusal {
        call_id,
        action,
        decided_by,
        err,
    })
}

/// A call through steps 2 to 6: what the rest of the call path needs.
struct Screened {
    call_id: String,
    tool: Arc<RegisteredTool>,
    typed: ParsedArgs,
    action: ActionRecord,
    resource: EntityUid,
    entities: Arc<Entities>,
    now: Timestamp,
    /// `now` as Cedar's datetime text.
    now_text: String,
    cedar_now: cedar_policy_core::ast::Value,
    cedar_args: cedar_policy_core::ast::Value,
    screening: Screening,
    /// The arguments in clear, for the reviewers the operator lets see
    /// them while the call is held (never recorded).
    clear_args: Value,
}

/// The outcome of a screening that needs no reviewer; else the policies
/// that demand one.
fn settled(
    policies: &Policies,
    screening: Screening,
) -> Result<ApprovalResult, Vec<DeterminingPolicy>> {
    match screening {
        Screening::Allowed(decision) => Ok(ApprovalResult::screened(decision, None)),
        Screening::Denied(decision) => {
            let error = denial(policies, &decision);
            Ok(ApprovalResult::screened(decision, Some(error)))
        }
        Screening::NeedsApproval { demanded_by, .. } => Err(demanded_by),
    }
}

fn decision_record(
    policies: &Policies,
    decision: &Decision,
    decided_by: DecidedBy,
    message: Option<String>,
) -> DecisionRecord {
    DecisionRecord {
        effect: decision.effect,
        decided_by,
        determining_policies: decision.determining_policies.clone(),
        errors: decision.errors.clone(),
        message,
        message_truncated: None,
        policy_digest: policies.digest().to_string(),
        request: None,
    }
}

/// The denial the agent is told (see [`Policies::told_to_agent`]).
fn denial(policies: &Policies, decision: &Decision) -> ToolCallError {
    let (policies, reasons) = policies.told_to_agent(decision);
    ToolCallError::Denied { policies, reasons }
}

/// `apr:<call id>:<8 hex digits>`: the call it is for, made unique so that a
/// decision can only ever reach the request the reviewer saw, even when a
/// later run reuses the session id and a queue outlives the run.
fn approval_id(call_id: &str) -> String {
    let mut nonce = [0u8; 4];
    if getrandom::fill(&mut nonce).is_err() {
        // The clock still tells runs apart; uniqueness is also enforced by
        // the queue, which refuses an id it already holds.
        let nanos = Timestamp::now().as_nanosecond().to_le_bytes();
        nonce.copy_from_slice(nanos.get(..4).unwrap_or(&[0; 4]));
    }
    format!("apr:{call_id}:{}", hex::encode(nonce))
}

fn deadline(now: Timestamp, timeout: std::time::Duration) -> Timestamp {
    let d = SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// What the agent is told when the log cannot be written: why, but not where
/// the log lives on the host; its file is named without its directory.
pub(crate) fn audit_unavailable(e: &GuardError) -> ToolCallError {
    let mut message = e.to_string();
    if let GuardError::Audit(audit) = e {
        let path = audit.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        message = message.replace(&path.display().to_string(), &name);
    }
    ToolCallError::AuditUnavailable(message)
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
