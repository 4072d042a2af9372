//! The fleet's shared store on PostgreSQL, an engine operators already run
//! and back up. Each host keeps its local durable log as the system of
//! record (no tool runs without it); this crate holds what many hosts share:
//!
//! - [`connect`]: a connection from a `postgres://` URL, over a Unix socket
//!   or TCP (TLS with the platform's roots unless `sslmode=disable`);
//! - [`migrate`]: the versioned schema and its least-privilege roles, applied
//!   by `mandate fleet migrate` and by nothing else;
//! - [`ship`]: a host's records, shipped idempotently in its own name, with
//!   the query rows read from them and its signed checkpoints;
//! - [`query`], [`verify`] and [`export`]: the auditor's side, across hosts,
//!   from the database alone.

mod connect;
mod error;
pub mod export;
pub mod migrate;
pub mod query;
pub mod queue;
pub mod ship;
pub mod verify;

pub use connect::{Database, connect};
pub use error::FleetError;
