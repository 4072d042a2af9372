//! Mandate: a WebAssembly policy and audit guard for agent runtimes.
//!
//! Dependency direction, one way: [`audit`] (no Cedar, no wasmtime) <-
//! [`policy`] (Cedar, no wasmtime) <- [`guard`] (sessions, tools, approval,
//! the call path) <- [`runtime`] (wasmtime) <- the `mandate` CLI.
#![deny(missing_docs)]

pub use mandate_audit as audit;
pub mod guard;
pub mod limits;
pub use mandate_policy as policy;
pub mod review_server;
pub mod runtime;
pub mod terminal;
pub mod tools;
