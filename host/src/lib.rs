//! Mandate: a WebAssembly policy and audit guard for agent runtimes.
//!
//! An agent runs as a WebAssembly component whose doors to the world are a tool call and an
//! outgoing HTTP request ([`egress`]). Every call and request is decided by Cedar policies against
//! the session's scope, may wait for a human, and is written to a hash-chained audit log before it
//! runs or is sent.
//!
//! # Embedding: the names you need
//!
//! These are re-exported here, at the crate root; `host/examples/embed.rs` and
//! `host/examples/custom_reviewer.rs` use them end to end.
//!
//! - Once, at start: [`Policies::load_dir`] (policies, schema and entities, validated), an
//!   [`AuditLog`] (or [`AuditLog::open_with`] and an [`AuditConfig`] for segments, retention and
//!   signed checkpoints), and from the two a [`Guard`] built with [`Guard::builder`]
//!   ([`GuardBuilder`]).
//! - Tools: implement [`Tool`] (described by a [`ToolSpec`]; it runs with a [`ToolContext`] and
//!   fails with a [`ToolFailure`]) and register them in a [`ToolRegistry`] passed to
//!   [`GuardBuilder::tools`]. The example document tools are
//!   [`tools::example_registry`].
//! - Humans: a [`Reviewer`] receives each [`PendingApproval`] and answers (a [`BoxFuture`]) with
//!   a [`ReviewDecision`] carrying its [`Verdict`], or a [`ReviewError`]. Built in: [`DenyAll`] (the default), [`CommandReviewer`] (an external
//!   program, like a git hook) and [`PromptReviewer`] (the terminal).
//! - Per session: a [`Session`] (user, agent, scopes, expiry, delegation) starts a
//!   [`SessionGuard`] ([`Guard::start_session`]), through which every call goes. To run a
//!   WebAssembly agent, [`Runtime`] loads the component and runs it under the guard.
//! - A refused call is a [`ToolCallError`], a value returned to the agent, never a trap.
//! - At the end: `guard.audit().shutdown()` writes the final checkpoint; [`verify_log`] checks a
//!   log (it needs only the [`audit`] crate, no Cedar and no wasmtime).
//!
//! ```no_run
//! use mandate::{AuditLog, Guard, Policies, Session};
//! use std::path::Path;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policies = Policies::load_dir(Path::new("policies"))?;
//! let audit = AuditLog::open("audit")?;
//! let guard = Guard::builder(policies, audit).build()?;
//! let session = Session::from_file(Path::new("policies/session.json"))?;
//! let calls = guard.start_session(session, None).await?;
//! // ... every tool call of the agent: `calls.call(..)`
//! # drop(calls);
//! guard.audit().shutdown()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Everything else
//!
//! The modules hold the rest, and are secondary for an embedder: [`audit`] (the log's records,
//! chain, writer, verifier and index), [`policy`] (loading and deciding), [`guard`] (the call
//! path and its records, explain, replay, redaction), [`runtime`] (wasmtime), [`tools`],
//! [`review_server`], [`limits`] and [`terminal`]. [`testing`] holds the `mandate policy test`
//! runner; helpers that exist only for this workspace's tests and benchmarks are hidden from
//! these docs.
//!
//! Dependency direction, one way: [`audit`] (a crate of its own, `mandate-audit`: no Cedar, no
//! wasmtime) <- [`policy`] (`mandate-policy`: Cedar, no wasmtime) <- [`guard`] (sessions, tools,
//! approval, the call path) <- [`runtime`] (wasmtime) <- the `mandate` CLI (`mandate-cli`).
#![deny(missing_docs)]

pub use mandate_audit as audit;
pub use mandate_policy as policy;

pub mod egress;
pub mod limits;
pub mod pipeline;
pub mod review_server;
pub mod runtime;
pub mod terminal;
pub mod testing;
pub mod tools;

pub use audit::{AuditConfig, AuditLog, verify_log};
pub use pipeline::{
    BoxFuture, CommandReviewer, DenyAll, Guard, GuardBuilder, PendingApproval, PromptReviewer,
    ReviewDecision, ReviewError, Reviewer, Session, SessionGuard, Tool, ToolCallError, ToolContext,
    ToolFailure, ToolRegistry, ToolSpec, Verdict,
};
pub use policy::Policies;
pub use runtime::Runtime;
