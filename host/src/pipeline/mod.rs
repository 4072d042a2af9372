//! The guard: sessions, tools, approval and the call path that ties Cedar
//! decisions to the audit log. No wasmtime here; the runtime calls in.

mod approval;
pub(crate) mod bounded;
mod call;
mod call_error;
mod entities;
mod evaluate;
mod explain;
pub mod queue;
mod record;
mod redact;
mod reload;
mod replay;
mod request;
pub mod reveal;
mod schema;
mod screening;
mod session;
mod tools;

// Public at `mandate::testing`, the front door's secondary module.
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use cedar_policy::{Entities, EntityUid};

pub use approval::{
    CommandReviewer, DEFAULT_APPROVAL_TIMEOUT, DenyAll, GrantScope, PendingApproval,
    PromptReviewer, RefusedDecision, ReviewDecision, ReviewError, Reviewer, UnknownGrantScope,
    Verdict,
};
pub use call::{BodyProblem, CallReport, HttpRefusal, HttpRequestHead, REFUSAL_HEADER};
pub use call_error::ToolCallError;
pub use entities::{EntityError, EntityProvider, StaticEntities};
pub use explain::{ExplainError, Explanation, HypotheticalCall, explain};
pub use record::{
    ActionKind, ActionRecord, Agent, ApprovalOutcome, ApprovalRecord, Authorization, CallStatus,
    DecidedBy, DecisionRecord, GrantRef, Identity, OutcomeRecord, PolicyError, PolicyRef,
    PolicyReloadRecord, Record, RecordKind, RequestContext, RequestRecord, Truncated, User,
};
pub(crate) use redact::hmac_sha256;
pub use redact::{
    ARGUMENTS_ROOT, COMMITMENT_PREFIX, JcsError, KEY_ID_FIELD, NONCE_FIELD, Proof, ProveError,
    REDACTED_FIELD, RedactionKey, SensitivePathError, SensitivePaths, canonical_json, commitment,
    commitment_v2, jcs, prove,
};
pub use reload::{ReloadError, Reloaded};
pub use replay::{
    CallRef, NotReplayable, NotReplayableReason, RecordedVerdict, ReplayChange, ReplayEffect,
    ReplayError, ReplayReport, ReplayTotals, ReplayVerdict, Replayed, Replayer, replay,
};
pub use schema::{Attribute, CedarType, EntityTypeDecl, SchemaError, Unrepresentable};
pub use session::{AgentRef, Delegate, DelegateKind, Session, SessionError, SessionType, UserRef};
pub use tools::{
    ArgumentsError, BoxFuture, DEFAULT_TOOL_TIMEOUT, Door, DynamicSpec, DynamicTool, HOST_ENTITY,
    HTTP_ACTION, HTTP_SCOPE, HttpRequestArgs, ParsedArgs, RegisteredTool, RegistryError,
    ResourceBinding, Tool, ToolContext, ToolFailure, ToolRegistry, ToolSpec,
};

use crate::audit::{AuditError, AuditLog};
use crate::egress::Egress;
use crate::policy::Policies;

/// Called with each finished call, e.g. to print it as it happens.
pub type CallObserver = Arc<dyn Fn(&CallReport) + Send + Sync>;

/// Why a guard could not be built or a session started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A tool's action is not declared in the schema, so no policy could
    /// ever allow it.
    #[error(
        "tool `{tool}`: action `{action}` is not declared in the schema; regenerate schema.cedarschema from the tools (`mandate policy schema`, or `ToolRegistry::cedar_schema`), or add `action {tool} in [\"{scope}\"] appliesTo {{ ... }};` to it"
    )]
    ToolNotInSchema {
        /// The tool.
        tool: String,
        /// Its action.
        action: String,
        /// Its scope.
        scope: String,
    },
    /// The schema's type of a tool's arguments is not the tool's.
    #[error(transparent)]
    StaleSchema(SchemaError),
    /// The session is malformed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session's Cedar context could not be built.
    #[error("session `{session_id}`: {message}")]
    SessionContext {
        /// The session.
        session_id: String,
        /// What Cedar refused.
        message: String,
    },
    /// The audit log refused the record, so nothing may run.
    #[error("audit log unavailable: {0}")]
    Audit(#[from] AuditError),
    /// No salt key was given and a one-time one could not be made.
    #[error("cannot make a one-time redaction key: {0}")]
    RedactionKey(crate::audit::KeyError),
    /// The HTTP door cannot be set up.
    #[error(transparent)]
    Egress(#[from] crate::egress::EgressError),
}

struct Inner {
    /// Swapped whole by [`Guard::reload`]; each call takes one snapshot.
    policies: ArcSwap<Policies>,
    /// Serializes reloads, so that records and swaps happen in one order.
    reloading: tokio::sync::Mutex<()>,
    tools: ToolRegistry,
    /// `None`: the entities of the policy set in force (`entities.json`).
    entities: Option<Arc<dyn EntityProvider>>,
    reviewer: Arc<dyn Reviewer>,
    audit: Arc<AuditLog>,
    approval_timeout: Duration,
    observer: Option<CallObserver>,
    redaction_key: RedactionKey,
    reveal: reveal::RevealConfig,
    /// Where the agent's HTTP requests may go, and how they are sent.
    egress: Arc<Egress>,
}

/// The policy and audit guard. Build it once with [`Guard::builder`]; start a
/// [`SessionGuard`] per agent run. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

/// Builds a [`Guard`].
pub struct GuardBuilder {
    policies: Arc<Policies>,
    audit: Arc<AuditLog>,
    tools: ToolRegistry,
    entities: Option<Arc<dyn EntityProvider>>,
    reviewer: Arc<dyn Reviewer>,
    approval_timeout: Duration,
    observer: Option<CallObserver>,
    redaction_key: Option<RedactionKey>,
    reveal: reveal::RevealConfig,
    egress: Option<Egress>,
}

impl GuardBuilder {
    /// Where the agent's HTTP requests may go (destinations with the keys
    /// the host adds, and the limits); without it every request is decided
    /// by policy, sent without a key, and only to public addresses.
    pub fn egress(mut self, egress: Egress) -> Self {
        self.egress = Some(egress);
        self
    }

    /// The tools agents may call.
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = tools;
        self
    }

    /// Where entities come from; defaults to the policy directory's
    /// `entities.json`.
    pub fn entity_provider(mut self, provider: impl EntityProvider) -> Self {
        self.entities = Some(Arc::new(provider));
        self
    }

    /// Who decides held calls; defaults to [`DenyAll`].
    pub fn reviewer(mut self, reviewer: impl Reviewer) -> Self {
        self.reviewer = Arc::new(reviewer);
        self
    }

    /// Same as [`GuardBuilder::reviewer`] for an already shared reviewer.
    pub fn reviewer_arc(mut self, reviewer: Arc<dyn Reviewer>) -> Self {
        self.reviewer = reviewer;
        self
    }

    /// How long a reviewer has; defaults to [`DEFAULT_APPROVAL_TIMEOUT`].
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout;
        self
    }

    /// Called after every call with what happened.
    pub fn on_call(mut self, observer: impl Fn(&CallReport) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The salt key sensitive arguments are committed with, so that whoever
    /// holds it can later prove a value (see [`prove`]). Without one the
    /// guard makes a one-time random key that is never stored: values are
    /// still never written in clear, but cannot be proven.
    pub fn redaction_key(mut self, key: RedactionKey) -> Self {
        self.redaction_key = Some(key);
        self
    }

    /// Which reviewers may see the clear values of a held call's sensitive
    /// arguments, while it is held (nobody by default); see [`reveal`].
    pub fn reveal(mut self, config: reveal::RevealConfig) -> Self {
        self.reveal = config;
        self
    }

    /// Checks that every tool's action is in the schema and builds the guard.
    pub fn build(self) -> Result<Guard, GuardError> {
        check_tools(&self.tools, &self.policies)?;
        let redaction_key = match self.redaction_key {
            Some(key) => key,
            None => RedactionKey::generate().map_err(GuardError::RedactionKey)?,
        };
        let egress = match self.egress {
            Some(egress) => egress,
            None => Egress::closed()?,
        };
        Ok(Guard {
            inner: Arc::new(Inner {
                policies: ArcSwap::new(self.policies),
                reloading: tokio::sync::Mutex::new(()),
                tools: self.tools,
                entities: self.entities,
                reviewer: self.reviewer,
                audit: self.audit,
                approval_timeout: self.approval_timeout,
                observer: self.observer,
                redaction_key,
                reveal: self.reveal,
                egress: Arc::new(egress),
            }),
        })
    }
}

impl Guard {
    /// Starts building a guard over validated `policies` writing to `audit`.
    pub fn builder(policies: Policies, audit: AuditLog) -> GuardBuilder {
        GuardBuilder {
            policies: Arc::new(policies),
            audit: Arc::new(audit),
            tools: ToolRegistry::new(),
            entities: None,
            reviewer: Arc::new(DenyAll),
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            observer: None,
            redaction_key: None,
            reveal: reveal::RevealConfig::default(),
            egress: None,
        }
    }

    /// The policies in force now (a later [`Guard::reload`] does not change
    /// the set returned here).
    pub fn policies(&self) -> Arc<Policies> {
        self.inner.policies.load_full()
    }

    /// The tools.
    pub fn tools(&self) -> &ToolRegistry {
        &self.inner.tools
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Where the agent's HTTP requests may go, and their limits.
    pub fn egress(&self) -> &Egress {
        &self.inner.egress
    }

    /// Starts a session: checks it, prepares its Cedar context once, and
    /// writes the session-start record. `component_digest` identifies the
    /// agent's code in every record.
    pub async fn start_session(
        &self,
        session: Session,
        component_digest: Option<String>,
    ) -> Result<SessionGuard, GuardError> {
        session.check(&session.session_id)?;
        let prepared =
            request::PreparedSession::new(&session).map_err(|e| GuardError::SessionContext {
                session_id: session.session_id.clone(),
                message: e.to_string(),
            })?;
        let identity = Arc::new(record::identity(&session, component_digest));
        let guard = SessionGuard {
            inner: Arc::clone(&self.inner),
            session: Arc::new(session),
            identity,
            prepared,
            next_call: AtomicU64::new(1),
            http: call::HttpSession::new(self.inner.egress.limits()),
            grants: call::SessionGrants::default(),
        };
        guard
            .write(Record::new(RecordKind::SessionStart, &guard.identity))
            .await?;
        Ok(guard)
    }
}

impl Inner {
    /// The entities for one call: the host's provider, or else the policy
    /// set's own `entities.json` (so a reload swaps them with the policies).
    fn entities_for(
        &self,
        policies: &Policies,
        session: &Session,
        resource: &EntityUid,
    ) -> Result<Arc<Entities>, EntityError> {
        match &self.entities {
            Some(provider) => provider.entities_for(session, resource),
            None => Ok(policies.entities_arc()),
        }
    }
}

/// Every tool must be an action of the schema, or no policy could allow it,
/// and the schema must type its arguments as the tool does (see
/// [`schema::check_arguments`]).
fn check_tools(tools: &ToolRegistry, policies: &Policies) -> Result<(), GuardError> {
    let schema = policies.schema();
    for tool in tools.iter() {
        // A schema without the HTTP action closes that door: every request
        // is refused, and recorded, with a hint to regenerate the schema.
        if tool.door() == Door::Http {
            continue;
        }
        if !schema.actions().any(|a| a == tool.action()) {
            return Err(GuardError::ToolNotInSchema {
                tool: tool.spec().name.clone(),
                action: tool.action().to_string(),
                scope: tool.spec().scope.clone(),
            });
        }
    }
    schema::check_arguments(tools, schema).map_err(GuardError::StaleSchema)
}

/// A tool name an agent gave, as a record or message may show it: itself
/// when it could be a registered name, else cut and escaped.
pub(crate) fn bounded_tool_name(name: &str) -> String {
    bounded::tool_name(name).0
}

/// A session end's detail: `status` and the bounded `message`.
fn detail(status: &str, message: &str) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("status".into(), serde_json::Value::String(status.into()));
    bounded::insert_text(&mut body, "message", message);
    serde_json::Value::Object(body)
}

/// One session's view of the guard: every tool call of the agent goes
/// through [`SessionGuard::call`].
pub struct SessionGuard {
    inner: Arc<Inner>,
    session: Arc<Session>,
    identity: Arc<Identity>,
    prepared: request::PreparedSession,
    next_call: AtomicU64,
    /// Standing approvals reviewers gave for the rest of this session.
    grants: call::SessionGrants,
    /// Its HTTP requests so far and in flight.
    http: call::HttpSession,
}

impl SessionGuard {
    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The tools the agent may ask for.
    pub fn tools(&self) -> &ToolRegistry {
        &self.inner.tools
    }

    /// Where the agent's HTTP requests may go, and their limits.
    pub fn egress(&self) -> &Egress {
        &self.inner.egress
    }

    /// Writes the record that ends the session: `ok` with the agent's result,
    /// or the error it gave up with. The agent's error is its own text, of
    /// any size: the record keeps it cut to
    /// [`crate::limits::RECORDED_TEXT_BYTES`], with the whole text's size
    /// and SHA-256 in `message_truncated`.
    pub async fn end(&self, result: &Result<String, String>) -> Result<(), GuardError> {
        let mut record = Record::new(RecordKind::SessionEnd, &self.identity);
        record.detail = Some(match result {
            Ok(_) => serde_json::json!({ "status": "completed" }),
            Err(e) => detail("agent_error", e),
        });
        self.write(record).await.map(|_| ())
    }

    /// Records that the guest faulted (trapped, ran out of a limit, ...), then
    /// ends the session. A fault message can quote the guest (a trap's
    /// backtrace names its functions), so it is bounded like the agent's
    /// error.
    pub async fn fault(&self, message: &str) -> Result<(), GuardError> {
        let mut record = Record::new(RecordKind::GuestFault, &self.identity);
        let mut body = serde_json::Map::new();
        bounded::insert_text(&mut body, "message", message);
        record.detail = Some(serde_json::Value::Object(body));
        self.write(record).await?;
        let mut end = Record::new(RecordKind::SessionEnd, &self.identity);
        end.detail = Some(detail("guest_fault", message));
        self.write(end).await.map(|_| ())
    }

    /// Appends `record` durably. The record is serialized here; when the
    /// log's writer is idle this worker commits it itself (one write and one
    /// sync, only while syncs take under a millisecond), otherwise it is
    /// queued for the writer thread, which syncs it together with other
    /// sessions' records (group commit).
    async fn write(&self, record: Record) -> Result<crate::audit::Appended, GuardError> {
        self.inner
            .audit
            .append_fixed_async(&record)
            .await
            .map_err(GuardError::Audit)
    }
}
