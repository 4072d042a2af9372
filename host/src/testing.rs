//! Declarative policy tests, the runner behind `mandate policy test`: the test files, their
//! cases, and how a case's expected decision is compared with what the guard would decide.
//!
//! Secondary to embedding (see the crate root for what an embedder needs). The runner lives in
//! the guard, whose decision procedure it runs; this module is its public home.

pub use crate::pipeline::testing::*;
