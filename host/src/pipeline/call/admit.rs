//! Steps 2 to 6a for a tool call: what the agent asked, as the records
//! show it (sensitive values as commitments, bounded), then the shared
//! screening ([`crate::pipeline::screening`]) over the session's entities.

use std::sync::Arc;

use cedar_policy::Entities;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::pipeline::SessionGuard;
use crate::pipeline::bounded;
use crate::pipeline::call_error::{ArgumentProblem, ToolCallError};
use crate::pipeline::record::{ActionKind, ActionRecord, DecidedBy};
use crate::pipeline::screening::{Refused, Screened, screen_call};
use crate::pipeline::tools::{Door, ParsedArgs, RegisteredTool};
use crate::policy::Policies;

/// A call that passed steps 2 to 6a: what the rest of the call path needs.
pub(super) struct Admitted<'a> {
    /// The screened request.
    pub(super) screened: Screened<'a, Arc<Entities>>,
    /// What the agent asked, as every record of the call shows it.
    pub(super) action: ActionRecord,
    /// The arguments in clear, for the reviewers the operator lets see
    /// them while the call is held (never recorded).
    pub(super) clear_args: Value,
}

/// A call refused before policy decided it: recorded, then returned.
pub(super) struct Refusal {
    pub(super) action: ActionRecord,
    pub(super) refused: Refused,
}

impl SessionGuard {
    /// Steps 2 to 6a of a call of `tool` with the JSON text `arguments`;
    /// the arguments as the tool's struct come back apart, for step 8.
    pub(super) fn admit<'a>(
        &'a self,
        policies: &Policies,
        call_id: &str,
        tool: &'a RegisteredTool,
        arguments: &str,
        now: Timestamp,
    ) -> Result<(Admitted<'a>, ParsedArgs), Box<Refusal>> {
        let parsed: Result<Value, _> = serde_json::from_str(arguments);
        let spec = tool.spec();
        let mut action = ActionRecord {
            kind: match tool.door() {
                Door::Http => ActionKind::HttpRequest,
                _ => ActionKind::ToolCall,
            },
            tool: spec.name.clone(),
            tool_truncated: None,
            scope: Some(spec.scope.clone()),
            arguments: match &parsed {
                // Sensitive values become commitments before the arguments
                // reach a record or a reviewer.
                Ok(v) => tool
                    .sensitive_paths()
                    .redact(v, &self.inner.redaction_key, call_id),
                // Unparseable text may hold a secret too; keep only its size.
                Err(_) if !tool.sensitive_paths().is_empty() => {
                    Value::String(format!("[unparsed, {} bytes]", arguments.len()))
                }
                Err(_) => Value::String(arguments.to_string()),
            },
            resource: None,
        };
        if let Some(err) = arguments_too_large(&mut action, arguments) {
            let refused = Refused {
                decided_by: DecidedBy::InvalidArguments,
                err,
                resource: None,
            };
            return Err(Box::new(Refusal { action, refused }));
        }
        let screened = screen_call(
            policies,
            &self.session,
            &self.prepared,
            tool,
            parsed.as_ref(),
            now,
            |resource| self.inner.entities_for(policies, &self.session, resource),
        );
        match screened {
            Ok((screened, typed)) => {
                // Written once, for every record of the call.
                action.resource = Some(screened.request.resource().to_string());
                let admitted = Admitted {
                    screened,
                    action,
                    clear_args: parsed.unwrap_or(Value::Null),
                };
                Ok((admitted, typed))
            }
            Err(refused) => {
                action.resource.clone_from(&refused.resource);
                Err(Box::new(Refusal { action, refused }))
            }
        }
    }
}

/// Refuses a call whose arguments, as the decision record would write them
/// (escaped, sensitive values as commitments), exceed
/// [`crate::limits::RECORDED_ARGUMENTS_BYTES`]: such a record could exceed
/// what the log accepts, and a call must fail closed with a typed error
/// before that, not at the writer. The record keeps their size and SHA-256.
pub(super) fn arguments_too_large(
    action: &mut ActionRecord,
    arguments: &str,
) -> Option<ToolCallError> {
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
    Some(ToolCallError::from(ArgumentProblem::TooLarge {
        recorded,
        limit,
    }))
}
