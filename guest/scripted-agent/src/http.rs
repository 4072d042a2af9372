//! Outgoing HTTP requests through `wasi:http/outgoing-handler`, the guard's
//! second door, for end-to-end tests and benchmarks: each step is sent as
//! the agent would send it, and its report says what came back.
//!
//! A step: `{"method": "POST", "url": "http://host:port/path?q=1",
//! "headers": [["content-type", "text/plain"]], "body": "text",
//! "body_bytes": 2000000}` (`body_bytes` sends that many `x`s instead of
//! `body`). Its report: `{"status": 200, "headers": {"name": "value"},
//! "body": "<the body as text>"}`, or `{"error": "<the wasi:http error code>"}`.

use serde_json::{Map, Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// One request of the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Step {
    pub fn parse(step: &Value) -> Result<Step, String> {
        let Some(url) = step.get("url").and_then(Value::as_str) else {
            return Err("needs a string \"url\"".to_string());
        };
        let method = step
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_string();
        let mut headers = Vec::new();
        if let Some(list) = step.get("headers") {
            let Some(list) = list.as_array() else {
                return Err("\"headers\" must be a list of [name, value] pairs".to_string());
            };
            for pair in list {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), Value::String(value)]) => {
                        headers.push((name.clone(), value.clone()));
                    }
                    _ => return Err(format!("header {pair} is not a [name, value] pair")),
                }
            }
        }
        let body = match (
            step.get("body"),
            step.get("body_bytes").and_then(Value::as_u64),
        ) {
            (_, Some(n)) => vec![b'x'; usize::try_from(n).unwrap_or(0)],
            (Some(Value::String(text)), None) => text.as_bytes().to_vec(),
            (Some(other), None) => other.to_string().into_bytes(),
            (None, None) => Vec::new(),
        };
        Ok(Step {
            method,
            url: url.to_string(),
            headers,
            body,
        })
    }

    /// Sends the request and reads the response whole.
    pub fn send(&self) -> Value {
        match self.exchange() {
            Ok(report) => report,
            Err(error) => json!({ "error": error }),
        }
    }

    fn exchange(&self) -> Result<Value, String> {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| format!("{} has no scheme", self.url))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let entries: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&entries).map_err(|e| format!("header: {e:?}"))?;
        let request = OutgoingRequest::new(fields);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        request
            .set_method(&method)
            .map_err(|()| "method refused".to_string())?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| "scheme refused".to_string())?;
        request
            .set_authority(Some(authority))
            .map_err(|()| "authority refused".to_string())?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| "path refused".to_string())?;
        let body = request.body().map_err(|()| "no body".to_string())?;
        // Sent first, the body written after: the host reads it as it
        // comes, so a body larger than any buffer cannot block.
        let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
        if !self.body.is_empty() {
            let stream = body.write().map_err(|()| "no body stream".to_string())?;
            for chunk in self.body.chunks(4096) {
                // The host stops reading a body over its limit; its answer
                // says so, so a failed write is not the report.
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
            drop(stream);
        }
        let _ = OutgoingBody::finish(body, None);
        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = response
            .map_err(|()| "the response was taken twice".to_string())?
            .map_err(|e| format!("{e:?}"))?;
        let mut headers = Map::new();
        for (name, value) in response.headers().entries() {
            headers.insert(
                name,
                Value::String(String::from_utf8_lossy(&value).into_owned()),
            );
        }
        let status = response.status();
        let incoming = response
            .consume()
            .map_err(|()| "no response body".to_string())?;
        let stream = incoming
            .stream()
            .map_err(|()| "no response body stream".to_string())?;
        let mut bytes = Vec::new();
        // The stream ends with `closed`; a guest cannot tell it from a failure here.
        while let Ok(chunk) = stream.blocking_read(65536) {
            bytes.extend_from_slice(&chunk);
        }
        Ok(json!({
            "status": status,
            "headers": headers,
            "body": String::from_utf8_lossy(&bytes),
        }))
    }
}
