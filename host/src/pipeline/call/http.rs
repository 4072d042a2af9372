//! The HTTP door: one outgoing request of the agent through the same
//! procedure as a tool call (request -> screening -> approval -> durable
//! decision -> run -> outcome), with `Action::"http_request"` and the
//! destination `Host::"<host>"` as the resource. What policies see of the
//! request is [`HttpRequestArgs`]: never a header value or the body.
//!
//! Before anything is decided, the session's request count and requests in
//! flight are checked and the request's shape is bounded; a refusal there
//! is recorded like any other. The decision is durable before a byte
//! leaves; the response is read whole and its outcome recorded before the
//! agent sees it. The agent gets every refusal as an HTTP response it can
//! read ([`HttpRefusal::response`]), never a trap.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::admit::Refusal;
use super::decision;
use super::report::CallReport;
use crate::egress::Outgoing;
use crate::limits::{HTTP_NAMES, HTTP_PATH_BYTES, HttpLimits};
use crate::pipeline::SessionGuard;
use crate::pipeline::bounded;
use crate::pipeline::call_error::{ToolCallError, audit_unavailable};
use crate::pipeline::record::{
    ActionKind, ActionRecord, CallStatus, DecidedBy, OutcomeRecord, Record, RecordKind,
};
use crate::pipeline::screening::Refused;
use crate::pipeline::tools::{HOST_ENTITY, HTTP_ACTION, HTTP_SCOPE, HttpRequestArgs};
use crate::policy::Effect;

/// The head of an outgoing request, as the agent made it.
#[derive(Debug, Clone)]
pub struct HttpRequestHead {
    /// The method.
    pub method: Method,
    /// The absolute URI: scheme, authority, path and query.
    pub uri: Uri,
    /// The headers the agent set.
    pub headers: HeaderMap,
}

/// Why a request's body could not be read from the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyProblem {
    /// It is longer than [`HttpLimits::request_bytes`].
    #[error("the request body is over the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The agent did not finish it within the exchange's time.
    #[error("the request body was not finished within {0} ms")]
    TimedOut(u128),
    /// The agent's stream failed.
    #[error("the request body could not be read: {0}")]
    Failed(String),
}

/// A request the guard did not send, or that got no response: what the
/// agent reads instead, as an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRefusal {
    /// The status the agent gets: 403 for a denial, 400 or 4xx for a
    /// request the guard refuses, 429 over a session limit, 502 or 504 when
    /// the destination did not answer, 503 when the audit log cannot be
    /// written.
    pub status: StatusCode,
    /// What the call path says, as for a tool call.
    pub error: ToolCallError,
}

/// The response header that marks an answer as the guard's, not the
/// destination's: its value is the kind of refusal (`denied`, ...).
pub const REFUSAL_HEADER: &str = "x-mandate-refusal";

impl HttpRefusal {
    fn new(status: StatusCode, error: ToolCallError) -> Self {
        HttpRefusal { status, error }
    }

    /// The kind of refusal, as the WIT `tool-error` cases name them, or
    /// `session-limit` and `request-failed`.
    pub fn kind(&self) -> &'static str {
        match (&self.error, self.status) {
            (_, StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE) => "session-limit",
            (ToolCallError::Denied { .. }, _) => "denied",
            (ToolCallError::ApprovalDenied(_), _) => "approval-denied",
            (ToolCallError::ApprovalTimedOut, _) => "approval-timed-out",
            (ToolCallError::SessionExpired, _) => "session-expired",
            (ToolCallError::UnknownTool(_), _) => "unknown-tool",
            (ToolCallError::InvalidArguments { .. }, _) => "invalid-request",
            (ToolCallError::ToolFailed(_), _) => "request-failed",
            (ToolCallError::AuditUnavailable(_), _) => "audit-unavailable",
        }
    }

    /// The answer the agent reads: the status, [`REFUSAL_HEADER`], and a
    /// JSON body shaped like an API error (`{"error": {"type", "message",
    /// ...}}`) so that HTTP and model clients show its message.
    pub fn response(&self) -> http::Response<Bytes> {
        // A tool's words would mislead here: the request is no tool.
        let message = match &self.error {
            ToolCallError::ToolFailed(why) => format!("request failed: {why}"),
            ToolCallError::InvalidArguments { problem, .. } => {
                format!("request refused: {problem}")
            }
            other => other.to_string(),
        };
        let mut error = json!({
            "type": self.kind(),
            "message": message,
        });
        if let ToolCallError::Denied { policies, reasons } = &self.error {
            error["policies"] = json!(policies);
            error["reasons"] = json!(reasons);
        }
        let body = serde_json::to_vec(&json!({ "error": error })).unwrap_or_default();
        let mut response = http::Response::new(Bytes::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(REFUSAL_HEADER, http::HeaderValue::from_static(self.kind()));
        response
    }
}

/// A session's share of the HTTP door: its requests so far and in flight.
pub(crate) struct HttpSession {
    requests: AtomicU64,
    in_flight: Arc<Semaphore>,
}

impl HttpSession {
    pub(crate) fn new(limits: &HttpLimits) -> Self {
        HttpSession {
            requests: AtomicU64::new(0),
            in_flight: Arc::new(Semaphore::new(limits.concurrent)),
        }
    }
}

/// A request described for policy, and the URL it goes to.
struct Described {
    args: HttpRequestArgs,
    url: String,
    /// What the guard refuses in it before policy, with the status.
    problem: Option<(StatusCode, String)>,
}

impl SessionGuard {
    /// Handles one outgoing request of the agent: decides it, records the
    /// decision durably, sends it with the destination's credential added,
    /// records the outcome and returns the response, read whole. `body` is
    /// read only once the session's limits let the request through.
    pub async fn http_request(
        &self,
        head: HttpRequestHead,
        body: impl Future<Output = Result<Bytes, BodyProblem>>,
    ) -> Result<http::Response<Bytes>, HttpRefusal> {
        let policies = self.inner.policies.load_full();
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("{}:{n}", self.session.session_id);
        let egress = &self.inner.egress;
        let limits = egress.limits();

        // The session's limits first: over them, the body is never read.
        let count = self.http.requests.fetch_add(1, Ordering::Relaxed) + 1;
        // Refused before its body is read: the record says `body_bytes` 0.
        let unread = || describe(&head, &Bytes::new(), egress).args;
        if count > limits.requests {
            let problem = format!(
                "the session's limit of {} http requests is reached",
                limits.requests
            );
            return self
                .refuse_http(
                    &policies,
                    &call_id,
                    unread(),
                    StatusCode::TOO_MANY_REQUESTS,
                    DecidedBy::SessionLimit,
                    problem,
                )
                .await;
        }
        let Ok(_permit) = Arc::clone(&self.http.in_flight).try_acquire_owned() else {
            let problem = format!(
                "the session's limit of {} http requests in flight is reached; wait for one to finish",
                limits.concurrent
            );
            return self
                .refuse_http(
                    &policies,
                    &call_id,
                    unread(),
                    StatusCode::TOO_MANY_REQUESTS,
                    DecidedBy::SessionLimit,
                    problem,
                )
                .await;
        };
        let body = match body.await {
            Ok(body) => body,
            Err(problem) => {
                let status = match problem {
                    BodyProblem::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                return self
                    .refuse_http(
                        &policies,
                        &call_id,
                        unread(),
                        status,
                        DecidedBy::SessionLimit,
                        problem.to_string(),
                    )
                    .await;
            }
        };
        let Described { args, url, problem } = describe(&head, &body, egress);
        if let Some((status, problem)) = problem {
            return self
                .refuse_http(
                    &policies,
                    &call_id,
                    args,
                    status,
                    DecidedBy::InvalidArguments,
                    problem,
                )
                .await;
        }
        let tool = match self.inner.tools.get(HTTP_ACTION) {
            Some(tool) if policies.schema().actions().any(|a| a == tool.action()) => {
                Arc::clone(tool)
            }
            // A schema without the action closes the door, and says how to
            // open it.
            _ => {
                let err = ToolCallError::Denied {
                    policies: Vec::new(),
                    reasons: vec![format!(
                        "the policy schema does not declare `Action::\"{HTTP_ACTION}\"`; regenerate it with `mandate policy schema`"
                    )],
                };
                let refusal = Refusal {
                    action: action_record(&args),
                    refused: Refused {
                        decided_by: DecidedBy::Policy,
                        err,
                        resource: Some(host_entity(&args.host)),
                    },
                };
                let result: Result<http::Response<Bytes>, _> =
                    self.refuse(&policies, &call_id, refusal).await;
                return result.map_err(|e| HttpRefusal::new(StatusCode::FORBIDDEN, e));
            }
        };
        let arguments = serde_json::to_string(&args).unwrap_or_default();

        // The shared procedure, as for a tool call.
        let (admitted, _typed) =
            match self.admit(&policies, &call_id, &tool, &arguments, Timestamp::now()) {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    let result: Result<http::Response<Bytes>, _> =
                        self.refuse(&policies, &call_id, *refusal).await;
                    return result.map_err(refusal_of);
                }
            };
        let mut approval = self.approve(&policies, &call_id, &admitted).await;
        let allowed = approval.error.is_none() && approval.decision.effect == Effect::Allow;
        let mut report = CallReport::decided(&call_id, &admitted, &approval, allowed);
        let decision_seq = match self
            .decide(&policies, &call_id, &admitted, &mut approval)
            .await
        {
            Ok(seq) => seq,
            Err(e) => return self.finish(report, Err(e)).map_err(refusal_of),
        };
        report.decision_seq = Some(decision_seq);
        if let Some(err) = approval.error {
            return self.finish(report, Err(err)).map_err(refusal_of);
        }
        if !allowed {
            let err = decision::denial(&policies, &approval.decision);
            return self.finish(report, Err(err)).map_err(refusal_of);
        }
        drop(admitted);

        // Sent only now that the decision is durable.
        let started = Instant::now();
        let mut headers = head.headers;
        for name in [http::header::HOST, http::header::CONTENT_LENGTH] {
            headers.remove(name);
        }
        let exchange = egress
            .send(Outgoing {
                method: head.method,
                url: &url,
                host: &args.host,
                headers,
                body,
            })
            .await;
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (error, error_truncated) = match &exchange.response {
            Err(e) => {
                let (text, truncated) = bounded::text(&e.message);
                (Some(text), truncated)
            }
            Ok(_) => (None, None),
        };
        let mut outcome = Record::new(RecordKind::Outcome, &self.identity);
        outcome.call_id = Some(call_id.clone());
        outcome.outcome = Some(OutcomeRecord {
            decision_seq,
            status: if exchange.response.is_ok() {
                CallStatus::Ok
            } else {
                CallStatus::Failed
            },
            latency_us,
            error,
            error_truncated,
            http: Some(exchange.record),
        });
        // Nothing continues on an unrecorded exchange.
        if let Err(e) = self.write(outcome).await {
            return self
                .finish(report, Err(audit_unavailable(&e)))
                .map_err(refusal_of);
        }
        match exchange.response {
            Ok(response) => self.finish(report, Ok(response)).map_err(refusal_of),
            Err(failure) => {
                let status = if failure.timed_out {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                let result: Result<http::Response<Bytes>, _> =
                    self.finish(report, Err(ToolCallError::ToolFailed(failure.message)));
                result.map_err(|e| HttpRefusal::new(status, e))
            }
        }
    }

    /// Records a request refused before policy, and answers it with `status`.
    async fn refuse_http(
        &self,
        policies: &crate::policy::Policies,
        call_id: &str,
        args: HttpRequestArgs,
        status: StatusCode,
        decided_by: DecidedBy,
        problem: String,
    ) -> Result<http::Response<Bytes>, HttpRefusal> {
        let resource = Some(host_entity(&args.host));
        let refusal = Refusal {
            action: action_record(&args),
            refused: Refused {
                decided_by,
                err: ToolCallError::InvalidArguments {
                    field: None,
                    problem,
                },
                resource,
            },
        };
        let result: Result<http::Response<Bytes>, _> =
            self.refuse(policies, call_id, refusal).await;
        result.map_err(|e| match e {
            e @ ToolCallError::AuditUnavailable(_) => {
                HttpRefusal::new(StatusCode::SERVICE_UNAVAILABLE, e)
            }
            e => HttpRefusal::new(status, e),
        })
    }
}

/// The status for a refusal the shared procedure made.
fn refusal_of(error: ToolCallError) -> HttpRefusal {
    let status = match &error {
        ToolCallError::InvalidArguments { .. } | ToolCallError::UnknownTool(_) => {
            StatusCode::BAD_REQUEST
        }
        ToolCallError::ToolFailed(_) => StatusCode::BAD_GATEWAY,
        ToolCallError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ToolCallError::Denied { .. }
        | ToolCallError::ApprovalDenied(_)
        | ToolCallError::ApprovalTimedOut
        | ToolCallError::SessionExpired => StatusCode::FORBIDDEN,
    };
    HttpRefusal::new(status, error)
}

/// `Host::"<host>"`, as records write a resource.
fn host_entity(host: &str) -> String {
    format!("{HOST_ENTITY}::{}", Value::String(host.to_string()))
}

/// The action record of a request refused before it had a tool's screening.
fn action_record(args: &HttpRequestArgs) -> ActionRecord {
    ActionRecord {
        kind: ActionKind::HttpRequest,
        tool: HTTP_ACTION.to_string(),
        tool_truncated: None,
        scope: Some(HTTP_SCOPE.to_string()),
        arguments: serde_json::to_value(args).unwrap_or(Value::Null),
        resource: None,
    }
}

/// What policy sees of a request, bounded, and what the guard refuses in
/// it before policy: a scheme other than http(s), no host, a path or name
/// list over its limit, or a credential header the host adds itself.
fn describe(head: &HttpRequestHead, body: &Bytes, egress: &crate::egress::Egress) -> Described {
    let mut problem = None;
    let uri = &head.uri;
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        problem = Some((
            StatusCode::BAD_REQUEST,
            format!(
                "the scheme `{}` is not http or https",
                bounded::cut(&scheme)
            ),
        ));
    }
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() && problem.is_none() {
        problem = Some((
            StatusCode::BAD_REQUEST,
            "the request names no host".to_string(),
        ));
    }
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    let whole_path = uri.path();
    let path = if whole_path.len() > HTTP_PATH_BYTES {
        problem.get_or_insert((
            StatusCode::URI_TOO_LONG,
            format!(
                "the path is {} bytes, over the limit of {HTTP_PATH_BYTES}",
                whole_path.len()
            ),
        ));
        cut_at(whole_path, HTTP_PATH_BYTES)
    } else {
        whole_path.to_string()
    };
    let mut query_keys: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k).to_string())
        .collect();
    let mut header_names: Vec<String> = Vec::new();
    for name in head.headers.keys() {
        // The host sets the `host` header from the URL.
        if name != http::header::HOST && !header_names.iter().any(|n| n == name.as_str()) {
            header_names.push(name.as_str().to_string());
        }
    }
    for (what, names) in [
        ("query parameters", &mut query_keys),
        ("headers", &mut header_names),
    ] {
        if names.len() > HTTP_NAMES {
            problem.get_or_insert((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "the request has {} {what}, over the limit of {HTTP_NAMES}",
                    names.len()
                ),
            ));
            names.truncate(HTTP_NAMES);
        }
        for name in names.iter_mut() {
            if name.len() > HTTP_PATH_BYTES {
                *name = cut_at(name, HTTP_PATH_BYTES);
            }
        }
    }
    if let Some(header) = egress.credential_header(&host)
        && head.headers.contains_key(header)
    {
        problem.get_or_insert((
            StatusCode::BAD_REQUEST,
            format!(
                "the request sets `{header}`, which the host adds for `{host}`; send it without credentials"
            ),
        ));
    }
    let url = uri.to_string();
    Described {
        args: HttpRequestArgs {
            method: head.method.as_str().to_string(),
            scheme,
            host,
            port: i64::from(port),
            path,
            query_keys,
            header_names,
            body_bytes: i64::try_from(body.len()).unwrap_or(i64::MAX),
            body_sha256: hex::encode(Sha256::digest(body)),
        },
        url,
        problem,
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut_at(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
