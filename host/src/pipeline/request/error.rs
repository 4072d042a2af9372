//! Why a call's Cedar request could not be built, or does not fit the
//! schema: one type for every step that builds or checks it, so that the
//! call path can tell the agent's mistake (a context that does not fit)
//! from the guard's (a session it could not evaluate).

use cedar_policy_core::entities::json::ContextJsonDeserializationError;
use cedar_policy_core::evaluator::EvaluationError;
use cedar_policy_core::parser::err::ParseErrors as CoreParseErrors;

/// Why a request could not be built or checked. The texts are the ones the
/// records and the agent have always been given. Cedar's errors are boxed:
/// they are large, and the call path passes this error by value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// An entity type Cedar does not accept.
    #[error("entity type `{ty}`: {cause}")]
    EntityType {
        /// The type as given.
        ty: String,
        /// Cedar's parse errors.
        cause: Box<cedar_policy::ParseErrors>,
    },
    /// The session's parts could not be evaluated.
    #[error("session context: {0}")]
    SessionContext(Box<ContextJsonDeserializationError>),
    /// The session's context is not fully known (it has unknowns).
    #[error("session context has unknowns")]
    SessionUnknowns,
    /// Cedar's `datetime` constructor name did not parse (it always does).
    #[error("{0}")]
    DatetimeName(Box<CoreParseErrors>),
    /// A call's time that Cedar's `datetime` does not accept.
    #[error("datetime `{text}`: {cause}")]
    Datetime {
        /// The text given to `datetime`.
        text: String,
        /// Cedar's evaluation error.
        cause: Box<EvaluationError>,
    },
    /// The request's shape key could not be written.
    #[error("{0}")]
    Shape(#[from] std::fmt::Error),
    /// The request does not fit the schema; the policy set's value-free
    /// description, naming attributes (`context.arguments.extra`) and types.
    #[error("{0}")]
    Schema(String),
}
