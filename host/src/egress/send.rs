//! Sending a decided request: the host's credential added, the connection
//! only to checked addresses, the response read whole within the limits, so
//! that its outcome (status, sizes, digest) is recorded before the agent
//! sees a byte of it.

use std::net::IpAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::Egress;
use crate::audit::record::HttpExchange;

/// Why a decided request got no response. The text is what the outcome
/// record and the agent are told; it never quotes the host's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendFailure {
    /// What went wrong.
    pub message: String,
    /// Whether a limit of time ended it (a gateway timeout, not a bad gateway).
    pub timed_out: bool,
}

impl SendFailure {
    fn new(message: impl Into<String>) -> Self {
        SendFailure {
            message: message.into(),
            timed_out: false,
        }
    }

    fn timeout(message: impl Into<String>) -> Self {
        SendFailure {
            message: message.into(),
            timed_out: true,
        }
    }
}

/// What came of sending: the response, or why none came, and what the
/// outcome record says of the exchange either way.
#[derive(Debug)]
pub struct Exchange {
    /// The response, read whole.
    pub response: Result<http::Response<Bytes>, SendFailure>,
    /// Status, address, sizes and digest.
    pub record: HttpExchange,
}

/// A request the guard allowed, ready to send.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a str,
    /// The destination's host, lowercase.
    pub(crate) host: &'a str,
    /// The agent's headers, without those the host sets.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Egress {
    /// Sends `request` and reads its response within the limits.
    pub(crate) async fn send(&self, request: Outgoing<'_>) -> Exchange {
        let mut record = HttpExchange {
            request_bytes: request.body.len() as u64,
            ..HttpExchange::default()
        };
        let response = self.exchange(request, &mut record).await;
        Exchange { response, record }
    }

    async fn exchange(
        &self,
        request: Outgoing<'_>,
        record: &mut HttpExchange,
    ) -> Result<http::Response<Bytes>, SendFailure> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.limits.total);
        // The resolver checks names; an address in the URL is checked here.
        let literal = request
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>();
        if let Ok(ip) = literal
            && !self.allows_private(request.host)
            && let Some(what) = super::non_public(ip)
        {
            return Err(SendFailure::new(super::refusal(request.host, ip, what)));
        }
        let mut headers = request.headers;
        if let Some((name, value)) = self.credential(request.host) {
            headers.insert(name.clone(), value.clone());
        }
        let sending = self
            .client
            .request(request.method, request.url)
            .headers(headers)
            .body(request.body)
            .send();
        let first_byte = (started + self.limits.first_byte).min(started + self.limits.total);
        let mut response = match tokio::time::timeout_at(
            tokio::time::Instant::from_std(first_byte),
            sending,
        )
        .await
        {
            Err(_) => {
                return Err(SendFailure::timeout(format!(
                    "no response within {} ms",
                    (first_byte - started).as_millis()
                )));
            }
            Ok(Err(e)) => return Err(SendFailure::new(describe(&e))),
            Ok(Ok(response)) => response,
        };
        record.status = Some(response.status().as_u16());
        record.address = response.remote_addr().map(|a| a.to_string());

        let limit = self.limits.response_bytes;
        let mut body = BytesMut::new();
        let mut digest = Sha256::new();
        loop {
            let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => {
                    return Err(SendFailure::timeout(format!(
                        "the response took longer than {} ms",
                        self.limits.total.as_millis()
                    )));
                }
                Ok(Err(e)) => return Err(SendFailure::new(describe(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            record.response_bytes += chunk.len() as u64;
            if body.len() + chunk.len() > limit {
                return Err(SendFailure::new(format!(
                    "the response is over the limit of {limit} bytes"
                )));
            }
            digest.update(&chunk);
            body.extend_from_slice(&chunk);
        }
        record.response_sha256 = Some(hex::encode(digest.finalize()));

        let mut answer = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = answer.headers_mut() {
            for (name, value) in response.headers() {
                // The body is whole now: framing headers no longer apply.
                if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        answer
            .body(body.freeze())
            .map_err(|e| SendFailure::new(format!("cannot pass the response on: {e}")))
    }
}

/// reqwest's error with its causes, down to the resolver's refusal, which
/// is the innermost.
fn describe(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if let Some(refused) = text.find("destination refused:") {
            return text[refused..].to_string();
        }
        // reqwest repeats the URL, which can carry query values.
        if !causes.iter().any(|c: &String| c.contains(&text)) {
            causes.push(text);
        }
        source = e.source();
    }
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "the exchange failed"
    };
    let detail: Vec<String> = causes.into_iter().skip(1).collect();
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", detail.join(": "))
    }
}
