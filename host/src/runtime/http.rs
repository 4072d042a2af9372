//! `wasi:http` for agents: the guard's second door. Every outgoing request
//! goes through [`SessionGuard::http_request`], which decides, records and
//! sends it exactly like a tool call; what the agent gets back is the
//! destination's response read whole, or the guard's refusal as an HTTP
//! response it can read (status, `x-mandate-refusal`, a JSON body), never a
//! trap.
//!
//! wasmtime-wasi-http spawns the future returned here on a tokio task, so
//! the call path runs on that task's own stack, not on the guest's fiber
//! (Cedar misreads the remaining stack there; see the `host_calls` module).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::pipeline::{BodyProblem, HttpRequestHead, SessionGuard};

/// The hooks of one session's `wasi:http`.
pub(crate) struct GuardedOutgoing {
    pub(crate) guard: Arc<SessionGuard>,
}

/// What a hook returns for a request it sends: the response and a future
/// that ends with the transfer.
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for GuardedOutgoing {
    /// The host names the destination from the URL itself; a `host` header
    /// would only be a second, possibly different, name for policy to miss.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        // The agent's own timeouts may only shorten the host's, and the
        // host's limits already bound every exchange: they are not used.
        let guard = Arc::clone(&self.guard);
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let head = HttpRequestHead {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
            };
            let limits = guard.egress().limits().clone();
            let body = read_body(body, limits.request_bytes, limits.total);
            let response = match guard.http_request(head, body).await {
                Ok(response) => response,
                Err(refusal) => refusal.response(),
            };
            let response = response.map(|bytes| {
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            });
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The agent's request body, read whole up to `limit` bytes within `time`.
async fn read_body(mut body: WasiBody, limit: usize, time: Duration) -> Result<Bytes, BodyProblem> {
    let deadline = tokio::time::Instant::now() + time;
    let mut read = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyProblem::TimedOut(time.as_millis())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyProblem::Failed(format!("{e:?}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing the door sends.
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > limit {
                return Err(BodyProblem::TooLarge { limit });
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.freeze())
}
