//! The shape of every call's Cedar context, in each form it takes: the
//! schema text policies are validated against, the Cedar JSON the records
//! hold (and replay reads back), and the evaluated Cedar values. They live
//! together so that adding an attribute is one edit here, and the tests in
//! `request/tests.rs` fail if the forms disagree.

use cedar_policy_core::ast::{self, Value};
use serde_json::{Map, Value as Json, json};

use super::cedar_json::{datetime_json, entity_json};
use crate::pipeline::evaluate::ApprovalState;
use crate::pipeline::session::Session;

/// The schema's common types for the context, as `.cedarschema` text.
pub(crate) const COMMON_TYPES: &str = "\
// What the session grants; the same for every call of a session.
type Session = {
  id: String,
  scopes: Set<String>,
  // \"human_approved\" or \"autonomous\"
  type: String,
  expires_at: datetime,
};

// On whose behalf: [\"user:alice\", \"agent:document-summarizer\", ...].
type Delegation = { chain: Set<String>, depth: Long };

// `granted` is false on the first evaluation; Mandate evaluates again with
// `granted: true` to learn whether a human could allow the call, and a third
// time with the reviewer once one has approved. `standing` is true only when
// the approval is a reviewer's standing grant for the session, given on an
// earlier call on the same tool and resource, and reused without asking.
type Approval = { granted: Bool, reviewer?: User, standing: Bool };
";

/// The context fields every action has besides `arguments`, as
/// `.cedarschema` text.
pub(crate) const CONTEXT_FIELDS: &str =
    "session: Session, user: User, delegation: Delegation, approval: Approval, now: datetime,";

/// `session`, `user` and `delegation` in Cedar JSON.
pub(crate) fn session_json(session: &Session) -> Map<String, Json> {
    let chain: Vec<String> = session
        .delegation_chain
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut parts = Map::new();
    parts.insert(
        "session".into(),
        json!({
            "id": session.session_id,
            "scopes": session.scopes,
            "type": session.session_type.as_str(),
            "expires_at": datetime_json(session.expires_at),
        }),
    );
    parts.insert("user".into(), entity_json("User", &session.user.id));
    parts.insert(
        "delegation".into(),
        json!({ "chain": chain, "depth": chain.len() }),
    );
    parts
}

/// `context.approval` as a Cedar value, for evaluation.
pub(crate) fn approval_value(state: ApprovalState<'_>) -> Value {
    let (granted, reviewer, standing) = state.parts();
    let mut fields = vec![
        ("granted", Value::from(granted)),
        ("standing", Value::from(standing)),
    ];
    if let Some(r) = reviewer {
        let uid: &ast::EntityUID = r.as_ref();
        fields.push(("reviewer", Value::from(uid.clone())));
    }
    Value::record(fields, None)
}

/// `context.approval` in Cedar JSON, for requests rebuilt from a record.
pub(crate) fn approval_json(state: ApprovalState<'_>) -> Json {
    let (granted, reviewer, standing) = state.parts();
    let mut approval = Map::new();
    approval.insert("granted".into(), Json::Bool(granted));
    approval.insert("standing".into(), Json::Bool(standing));
    if let Some(r) = reviewer {
        approval.insert(
            "reviewer".into(),
            entity_json(&r.type_name().to_string(), r.id().unescaped()),
        );
    }
    Json::Object(approval)
}
