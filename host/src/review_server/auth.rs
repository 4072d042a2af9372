//! How the page proves who it is without handing its token to whatever
//! answers on the port, and how the server proves it is the real one.
//!
//! A local user who binds the port while the server restarts must collect
//! nothing usable. So the page never sends the token:
//!
//! 1. The page derives its key `K = HMAC-SHA256(token, "mandate-review/key")`
//!    and names it by `key_id = HMAC-SHA256(K, "mandate-review/id")[..16]`.
//! 2. `POST /api/handshake {"key_id", "client_nonce"}` (16 fresh random bytes,
//!    hex). The server, which holds `K` for every token, answers a fresh
//!    `server_nonce`, a session id and
//!    `proof = HMAC(K, "mandate-review/server\n" + client_nonce + "\n" + server_nonce)`.
//!    The page checks the proof before it sends anything else: a server that
//!    does not know `K` cannot make it.
//! 3. Both derive the session key
//!    `S = HMAC(K, "mandate-review/session\n" + client_nonce + "\n" + server_nonce)`.
//!    Each request carries `Authorization: Mandate-MAC <session>.<seq>.<mac>`,
//!    `mac = HMAC(S, "mandate-review/request\n" + METHOD + "\n" + path + "\n" + seq + "\n" + hex(SHA-256(body)))`,
//!    `seq` never used before in the session (a replayed request is refused).
//! 4. Each answer carries `X-Mandate-Mac: HMAC(S, "mandate-review/response\n" + seq + "\n" + status + "\n" + hex(SHA-256(body)))`,
//!    which the page checks before it believes the answer.
//!
//! Sessions live in the server's memory only: after a restart the page must
//! handshake again, which the reviewer starts (the page stops on a lost
//! connection). A captured request is useless to its captor: it names a
//! session only the real server knew, its sequence number is spent, and
//! it MACs one method, path and body.
//!
//! `Authorization: Bearer <token>` still works for scripts (curl) that talk
//! to a server they trust; the page never uses it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::api::{ApiError, AppState};
use super::tokens::{KEY_ID_BYTES, same_bytes};
use crate::pipeline::hmac_sha256;

/// The header that carries the answer's MAC.
pub(super) const RESPONSE_MAC: HeaderName = HeaderName::from_static("x-mandate-mac");
/// The authorization scheme of a MAC'd request.
const SCHEME: &str = "Mandate-MAC";
/// Sessions kept at once; the oldest is forgotten first (its page must
/// handshake again).
const MAX_SESSIONS: usize = 1024;
/// How far behind the highest sequence number a request may arrive (the
/// page sends a poll and a decision at the same time).
const SEQ_WINDOW: u64 = 64;
/// Bytes of a nonce and of a session id.
const NONCE_BYTES: usize = 16;
/// Largest answer a MAC is computed over.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The reviewer a request was authenticated as.
#[derive(Debug, Clone)]
pub(super) struct Reviewer(pub(super) String);

/// The page sessions the server knows.
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<SessionMap>,
}

#[derive(Default)]
struct SessionMap {
    by_id: HashMap<String, PageSession>,
    order: VecDeque<String>,
}

struct PageSession {
    reviewer: String,
    key: [u8; 32],
    highest: u64,
    seen: BTreeSet<u64>,
}

impl Sessions {
    fn open(&self, reviewer: &str, key: [u8; 32]) -> Option<String> {
        let id = hex::encode(random()?);
        let mut map = self.map.lock().ok()?;
        while map.by_id.len() >= MAX_SESSIONS {
            let Some(old) = map.order.pop_front() else {
                break;
            };
            map.by_id.remove(&old);
        }
        map.by_id.insert(
            id.clone(),
            PageSession {
                reviewer: reviewer.to_string(),
                key,
                highest: 0,
                seen: BTreeSet::new(),
            },
        );
        map.order.push_back(id.clone());
        Some(id)
    }

    /// The reviewer and session key if `mac` is right for this request and
    /// `seq` was not used before; the sequence number is then spent.
    fn check(
        &self,
        claim: &Claim,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Option<(String, [u8; 32])> {
        let mut map = self.map.lock().ok()?;
        let session = map.by_id.get_mut(&claim.session)?;
        let expected = request_mac(&session.key, method, path, claim.seq, body);
        if !same_bytes(&expected, &claim.mac) {
            return None;
        }
        let fresh = claim.seq > 0
            && claim.seq > session.highest.saturating_sub(SEQ_WINDOW)
            && !session.seen.contains(&claim.seq);
        if !fresh {
            return None;
        }
        session.seen.insert(claim.seq);
        session.highest = session.highest.max(claim.seq);
        let floor = session.highest.saturating_sub(SEQ_WINDOW);
        session.seen = session.seen.split_off(&floor);
        Some((session.reviewer.clone(), session.key))
    }
}

fn random() -> Option<[u8; NONCE_BYTES]> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}

fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn session_key(page_key: &[u8; 32], client_nonce: &str, server_nonce: &str) -> [u8; 32] {
    let text = format!("mandate-review/session\n{client_nonce}\n{server_nonce}");
    hmac_sha256(page_key, &[text.as_bytes()])
}

fn server_proof(page_key: &[u8; 32], client_nonce: &str, server_nonce: &str) -> [u8; 32] {
    let text = format!("mandate-review/server\n{client_nonce}\n{server_nonce}");
    hmac_sha256(page_key, &[text.as_bytes()])
}

fn request_mac(key: &[u8; 32], method: &str, path: &str, seq: u64, body: &[u8]) -> [u8; 32] {
    let text = format!(
        "mandate-review/request\n{method}\n{path}\n{seq}\n{}",
        body_digest(body)
    );
    hmac_sha256(key, &[text.as_bytes()])
}

fn response_mac(key: &[u8; 32], seq: u64, status: u16, body: &[u8]) -> [u8; 32] {
    let text = format!(
        "mandate-review/response\n{seq}\n{status}\n{}",
        body_digest(body)
    );
    hmac_sha256(key, &[text.as_bytes()])
}

/// Lowercase hex of exactly `len` bytes.
fn hex_bytes(text: &str, len: usize) -> Option<Vec<u8>> {
    let lower = text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower || text.len() != 2 * len {
        return None;
    }
    hex::decode(text).ok()
}

/// The body of `POST /api/handshake`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Hello {
    key_id: String,
    client_nonce: String,
}

/// `POST /api/handshake`: the server proves it knows the page's key and
/// opens a session. Nothing about approvals is in the answer.
pub(super) async fn handshake(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hello: Hello = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the handshake is not {{\"key_id\": \"<32 hex>\", \"client_nonce\": \"<32 hex>\"}}: {e}"
        ))
    })?;
    let key_id = hex_bytes(&hello.key_id, KEY_ID_BYTES)
        .ok_or_else(|| ApiError::bad_request("`key_id` is not 32 lowercase hex digits"))?;
    if hex_bytes(&hello.client_nonce, NONCE_BYTES).is_none() {
        return Err(ApiError::bad_request(
            "`client_nonce` is not 32 lowercase hex digits",
        ));
    }
    let Some((reviewer, page_key)) = state.tokens.by_key_id(&key_id) else {
        return Err(ApiError::unauthorized("the reviewer token is not valid"));
    };
    let failed = || ApiError::internal("cannot open a page session: no randomness");
    let server_nonce = hex::encode(random().ok_or_else(failed)?);
    let proof = server_proof(&page_key, &hello.client_nonce, &server_nonce);
    let key = session_key(&page_key, &hello.client_nonce, &server_nonce);
    let session = state.sessions.open(reviewer, key).ok_or_else(failed)?;
    Ok(Json(serde_json::json!({
        "session": session,
        "server_nonce": server_nonce,
        "proof": hex::encode(proof),
    })))
}

/// A parsed `Mandate-MAC <session>.<seq>.<mac>`.
struct Claim {
    session: String,
    seq: u64,
    mac: Vec<u8>,
}

fn parse_claim(value: &str) -> Option<Claim> {
    let mut parts = value.split('.');
    let session = parts.next()?;
    let seq = parts.next()?;
    let mac = parts.next()?;
    if parts.next().is_some() || hex_bytes(session, NONCE_BYTES).is_none() {
        return None;
    }
    let seq_ok = !seq.is_empty() && seq.len() <= 15 && seq.bytes().all(|b| b.is_ascii_digit());
    Some(Claim {
        session: session.to_string(),
        seq: if seq_ok {
            seq.parse().ok()?
        } else {
            return None;
        },
        mac: hex_bytes(mac, 32)?,
    })
}

/// Every `/api` route but the handshake: finds the reviewer (a MAC'd
/// request from the page, or a bearer token from a script), and MACs the
/// page's answers.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return ApiError::unauthorized(
            "not signed in: the page signs each request; a script sends `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return ApiError::unauthorized("the authorization header is not `Bearer <token>`")
            .into_response();
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let Some(reviewer) = state.tokens.authenticate(rest).map(str::to_string) else {
            return ApiError::unauthorized("the reviewer token is not valid").into_response();
        };
        let mut request = request;
        request.extensions_mut().insert(Reviewer(reviewer));
        return next.run(request).await;
    }
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return ApiError::unauthorized("the authorization header is not `Bearer <token>`")
            .into_response();
    }
    let Some(claim) = parse_claim(rest) else {
        return ApiError::unauthorized("the request signature is malformed").into_response();
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY_BYTES).await else {
        return ApiError::bad_request("the request body is too large").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Some((reviewer, key)) = state
        .sessions
        .check(&claim, parts.method.as_str(), &path, &body)
    else {
        return ApiError::unauthorized(
            "this page session is unknown to the server (it restarted?) or the request was replayed; reconnect",
        )
        .into_response();
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(Reviewer(reviewer));
    let response = next.run(request).await;
    sign_response(response, &key, claim.seq).await
}

async fn sign_response(response: Response, key: &[u8; 32], seq: u64) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await else {
        return ApiError::internal("the answer is too large to sign").into_response();
    };
    let mac = response_mac(key, seq, parts.status.as_u16(), &body);
    if let Ok(value) = HeaderValue::from_str(&hex::encode(mac)) {
        parts.headers.insert(RESPONSE_MAC, value);
    }
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_mac_is_spent_once_and_binds_its_method_path_and_body() {
        let sessions = Sessions::default();
        let key = [7u8; 32];
        let id = sessions.open("carol", key).unwrap();
        let claim = |seq: u64, mac: [u8; 32]| Claim {
            session: id.clone(),
            seq,
            mac: mac.to_vec(),
        };
        let mac = request_mac(&key, "GET", "/api/pending", 1, b"");
        assert_eq!(
            sessions
                .check(&claim(1, mac), "GET", "/api/pending", b"")
                .map(|(r, _)| r),
            Some("carol".to_string())
        );
        // The same request again: replayed.
        assert!(
            sessions
                .check(&claim(1, mac), "GET", "/api/pending", b"")
                .is_none()
        );
        let mac = request_mac(&key, "POST", "/api/approvals/a/approve", 2, b"{}");
        for (method, path, body) in [
            ("POST", "/api/approvals/a/deny", &b"{}"[..]),
            ("GET", "/api/approvals/a/approve", b"{}"),
            (
                "POST",
                "/api/approvals/a/approve",
                b"{\"scope\":\"session\"}",
            ),
        ] {
            assert!(sessions.check(&claim(2, mac), method, path, body).is_none());
        }
        assert!(
            sessions
                .check(&claim(2, mac), "POST", "/api/approvals/a/approve", b"{}")
                .is_some()
        );
        // Far behind the highest number: refused.
        let mac = request_mac(&key, "GET", "/api/pending", 500, b"");
        assert!(
            sessions
                .check(&claim(500, mac), "GET", "/api/pending", b"")
                .is_some()
        );
        let mac = request_mac(&key, "GET", "/api/pending", 3, b"");
        assert!(
            sessions
                .check(&claim(3, mac), "GET", "/api/pending", b"")
                .is_none()
        );
    }

    #[test]
    fn the_derivations_match_the_page() {
        // The same numbers app.js computes with WebCrypto (checked in the
        // browser test); here the shape: different labels, different keys.
        let k = [1u8; 32];
        assert_ne!(server_proof(&k, "a", "b"), session_key(&k, "a", "b"));
        assert_ne!(session_key(&k, "a", "b"), session_key(&k, "a", "c"));
        assert!(parse_claim(&format!("{}.1.{}", "0".repeat(32), "0".repeat(64))).is_some());
        assert!(parse_claim(&format!("{}.x.{}", "0".repeat(32), "0".repeat(64))).is_none());
        assert!(parse_claim(&format!("{}.1.{}.2", "0".repeat(32), "0".repeat(64))).is_none());
    }
}
