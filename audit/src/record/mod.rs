//! The records the guard writes about sessions and tool calls, as one set of types that the
//! guard writes with and every reader (`mandate audit query`'s index, `mandate audit replay`)
//! reads back with, so that a field renamed in one place is renamed for all of them.
//!
//! These are the bodies of §5 of `docs/audit-log-format.md`: the log adds `seq`, `prev_hash`,
//! `timestamp` and `hash` around them (see the [crate](crate) docs), and readers find those in
//! the line's fixed prefix. The types are plain serde data with no Cedar and no host types in
//! them; the guard converts its policy and session types into them in one place.
//!
//! A record is read in one of two [`Form`]s: [`Full`], every field, which the guard writes and
//! replay reads; or [`Skim`], which leaves the bulky parts no query looks at (the arguments, the
//! Cedar request, the authorization, the delegation chain, `detail`) unparsed, so that indexing
//! a record costs about what the fields the index keeps cost. Fields that records written by
//! earlier versions (or by hand, in tests) may lack read as absent rather than failing.

mod action;
mod approval;
mod decision;
mod identity;
mod outcome;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{DeserializeOwned, IntoDeserializer, value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use action::{ActionKind, ActionRecord, Truncated};
pub use approval::{ApprovalOutcome, ApprovalRecord, GrantRef, GrantScope, UnknownGrantScope};
pub use decision::{
    DecidedBy, DecisionRecord, Effect, PolicyError, PolicyRef, RequestContext, RequestRecord,
};
pub use identity::{Agent, Authorization, Identity, SessionType, User};
pub use outcome::{CallStatus, HttpExchange, OutcomeRecord};

/// How much of a record is read: [`Full`] or [`Skim`].
///
/// `F::Part<T>` is the type of a bulky part that holds a `T`: `T` itself in the full form,
/// [`Skipped`] in the skimmed one.
pub trait Form: Copy + fmt::Debug + Default + PartialEq + Send + Sync + 'static {
    /// A part holding a `T`, in this form.
    type Part<T>: Serialize + DeserializeOwned + fmt::Debug + Clone + PartialEq + Default
    where
        T: Serialize + DeserializeOwned + fmt::Debug + Clone + PartialEq + Default;
}

/// Every field: what the guard writes and what replay reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Full;

impl Form for Full {
    type Part<T>
        = T
    where
        T: Serialize + DeserializeOwned + fmt::Debug + Clone + PartialEq + Default;
}

/// The fields a query reads, with the bulky parts left unparsed: what the index reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skim;

impl Form for Skim {
    type Part<T>
        = Skipped
    where
        T: Serialize + DeserializeOwned + fmt::Debug + Clone + PartialEq + Default;
}

/// A part that was present (or not) but not parsed: read as [`serde::de::IgnoredAny`], which
/// checks its syntax and allocates nothing. It cannot be written back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Skipped)
    }
}

impl Serialize for Skipped {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a skimmed record cannot be written: its skipped parts were not read",
        ))
    }
}

/// The kind of a record the guard writes (the first body field, `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A session began.
    SessionStart,
    /// A call is held for a reviewer (written before anyone is asked, so a
    /// hold that is never decided still shows in the log).
    ApprovalRequested,
    /// A reviewer's decision on a held call was refused (policy does not
    /// accept that reviewer) and the call is held for the other reviewers.
    ApprovalRefused,
    /// A tool call was decided (written before the tool runs).
    Decision,
    /// A tool call that was allowed finished.
    Outcome,
    /// The guest trapped or otherwise failed.
    GuestFault,
    /// A session ended.
    SessionEnd,
}

impl RecordKind {
    /// Every kind, in the order above.
    pub const ALL: [RecordKind; 7] = [
        RecordKind::SessionStart,
        RecordKind::ApprovalRequested,
        RecordKind::ApprovalRefused,
        RecordKind::Decision,
        RecordKind::Outcome,
        RecordKind::GuestFault,
        RecordKind::SessionEnd,
    ];
}

/// A `kind` that is not one the guard writes (the log's own kinds, or a later version's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a kind of record the guard writes")]
pub struct NotAGuardKind(pub String);

impl FromStr for RecordKind {
    type Err = NotAGuardKind;

    /// The kind named as in a record, through the same names serde writes.
    fn from_str(kind: &str) -> Result<Self, Self::Err> {
        let de: value::StrDeserializer<'_, value::Error> = kind.into_deserializer();
        RecordKind::deserialize(de).map_err(|_| NotAGuardKind(kind.to_string()))
    }
}

/// One record body the guard writes, and reads back.
///
/// Every record of a session repeats its identity (`session_id` to `delegation_chain`), so each
/// answers who, for whom and under what authorization on its own; the guard builds an
/// [`Identity`] once per session and [`Record::new`] shares its parts. The other fields are
/// those of the kind: `call_id`, `action`, `decision`, `approval` for a decision, `outcome` for
/// an outcome, `detail` for guest faults, session ends and approval holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Record<F: Form = Full> {
    /// What happened.
    pub kind: RecordKind,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Arc<str>>,
    /// The host's trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Arc<str>>,
    /// Question 1: the human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<User>>,
    /// Question 2: the agent, with the digest of its component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Arc<Agent>>,
    /// Question 3: what it was authorized to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<F::Part<Arc<Authorization>>>,
    /// Question 5: on whose behalf, `user:alice` -> `agent:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_chain: Option<F::Part<Arc<[String]>>>,
    /// The call, for the records of a tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Question 4: what the agent tried to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRecord<F>>,
    /// Which policies decided, under which set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord<F>>,
    /// Question 6: whether a human approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
    /// What came of an allowed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeRecord>,
    /// Why the guest stopped, for guest faults and session ends; the hold, for approval records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<F::Part<Value>>,
}

// Every field name of `Record` is fixed, and none is `seq`, `prev_hash`, `timestamp` or `hash`:
// the test below checks it.
impl crate::chain::FixedKeys for Record {}

impl Record {
    /// A record of `kind` with only the session's identity filled in.
    pub fn new(kind: RecordKind, identity: &Identity) -> Self {
        Record {
            kind,
            session_id: Some(Arc::clone(&identity.session_id)),
            trace_id: Some(Arc::clone(&identity.trace_id)),
            user: Some(Arc::clone(&identity.user)),
            agent: Some(Arc::clone(&identity.agent)),
            authorization: Some(Arc::clone(&identity.authorization)),
            delegation_chain: Some(Arc::clone(&identity.delegation_chain)),
            call_id: None,
            action: None,
            decision: None,
            approval: None,
            outcome: None,
            detail: None,
        }
    }
}

#[cfg(test)]
mod tests;
