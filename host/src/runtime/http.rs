//! `wasi:http` for agents: linked, so that components whose toolchain
//! imports it (componentize-js does by default) load, but every outgoing
//! request is refused before it leaves the host. An agent's one door to the
//! world stays `mandate:guard/tools`; deciding outgoing requests like tool
//! calls is its own piece of work (the call path's second door).
//!
//! The refusal is `wasi:http`'s own `HTTP-request-denied` error code, so the
//! agent's HTTP library reports a denied request (a `fetch` that rejects, a
//! Python exception) instead of a trap that would stop the whole session.

use std::future::Future;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The hooks of every session's `wasi:http`: the defaults for headers and
/// schemes, and a `send_request` that refuses.
#[derive(Debug, Default)]
pub(crate) struct RefuseOutgoing;

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

impl WasiHttpHooks for RefuseOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
