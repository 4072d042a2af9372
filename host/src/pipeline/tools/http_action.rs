//! The action of the guard's second door: an outgoing HTTP request the agent
//! makes through `wasi:http/outgoing-handler`. It is registered in every
//! registry, so that the schema, policy tests, explanations and replays know
//! it like any tool's action; the agent cannot reach it through
//! `tools.call` (see [`Door`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, ResourceBinding, Tool, ToolContext, ToolFailure, ToolSpec, Value};

/// The action's name: `Action::"http_request"` in the schema and records.
pub const HTTP_ACTION: &str = "http_request";

/// The scope (action group) of outgoing requests.
pub const HTTP_SCOPE: &str = "http:request";

/// The entity type of a request's destination: `Host::"api.example.com"`.
pub const HOST_ENTITY: &str = "Host";

/// Which door of the guard an action comes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Door {
    /// `tools.call`.
    Tool,
    /// `wasi:http/outgoing-handler`.
    Http,
}

/// What policies see of an outgoing request, as `context.arguments`: never
/// a header value or the body, which may hold secrets, only their names and
/// size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestArgs {
    /// `GET`, `POST`, ... in capitals.
    pub method: String,
    /// `https` or `http`.
    pub scheme: String,
    /// The destination's host name or address, lowercase: the resource
    /// `Host::"<host>"`.
    pub host: String,
    /// The destination port (443 for `https` when the URL names none).
    pub port: i64,
    /// The path, without the query.
    pub path: String,
    /// The names of the query's parameters, in order, without values.
    pub query_keys: Vec<String>,
    /// The names of the headers the agent set, lowercase, in order.
    pub header_names: Vec<String>,
    /// Bytes of request body.
    pub body_bytes: i64,
    /// SHA-256 of the request body, lowercase hex.
    pub body_sha256: String,
}

/// The registry's entry for [`HTTP_ACTION`]. It never runs as a tool: the
/// HTTP door sends the request itself, after the decision.
pub(super) struct HttpAction;

impl HttpAction {
    pub(super) fn spec() -> ToolSpec {
        ToolSpec {
            name: HTTP_ACTION.to_string(),
            description: "An outgoing HTTP request of the agent (wasi:http/outgoing-handler)."
                .to_string(),
            scope: HTTP_SCOPE.to_string(),
            resource: ResourceBinding::Argument {
                entity_type: HOST_ENTITY.to_string(),
                argument: "host".to_string(),
            },
            sensitive: Vec::new(),
        }
    }
}

impl Tool for HttpAction {
    type Args = HttpRequestArgs;

    fn spec(&self) -> ToolSpec {
        Self::spec()
    }

    fn run(
        &self,
        _ctx: ToolContext,
        _args: HttpRequestArgs,
    ) -> impl std::future::Future<Output = Result<Value, ToolFailure>> + Send {
        // Unreachable through the call path: `look_up` refuses the HTTP
        // door's action, and the door does not call `run`.
        let failed: BoxFuture<'static, _> = Box::pin(async {
            Err(ToolFailure(
                "http_request is not a tool: requests go through wasi:http".into(),
            ))
        });
        failed
    }
}
