//! Cedar: loading and validating policies, converting arguments, deciding. A crate of its own so
//! that the policy layer cannot depend on wasmtime.
//!
//! Nothing here knows about wasmtime; the guard builds requests and calls
//! [`Policies::decide`].
#![deny(missing_docs)]

mod decide;
mod error;
mod index;
mod json;
mod load;
mod mismatch;
mod source;
#[doc(hidden)]
pub mod synthetic;

pub use decide::{Decision, DeterminingPolicy, Effect, EvaluationError};
pub use error::{PolicyLoadError, Problem};
pub use index::{IndexError, IndexedResponse, PolicyIndex, evaluate_whole};
#[doc(hidden)]
pub use json::to_value;
pub use json::{ArgumentError, to_cedar};
pub use load::{ENTITIES_FILE, Policies, PolicyInfo, SCHEMA_FILE};
pub use source::{SourceFile, SourcePos};
