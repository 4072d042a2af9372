//! The HTTP door end to end: the scripted agent's requests through
//! `wasi:http/outgoing-handler`, decided by Cedar, held for a reviewer,
//! recorded before they are sent, sent by the host with the key only it
//! holds, against a server on loopback that this test starts.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use common::{Env, FixedReviewer};
use mandate::egress::{Destination, DestinationCredential, Egress};
use mandate::limits::HttpLimits;
use mandate::pipeline::{BodyProblem, HttpRequestHead, REFUSAL_HEADER, Verdict};
use mandate::runtime::RunOutcome;
use mandate::tools::Credential;
use serde_json::{Value, json};

/// The key the host holds for the loopback destination.
const KEY: &str = "sk-test-4f1d9a7c2b8e";

/// What the loopback server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    with_key: AtomicUsize,
}

/// A loopback server: `/hello`, `/echo` (what it received, as JSON, never
/// the key), `/redirect` (to the cloud metadata address), `/big` (128 KiB)
/// and `/slow` (answers after 2 s).
async fn server() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/hello",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                "hello"
            }),
        )
        .route("/echo", any(echo))
        .route(
            "/redirect",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::FOUND,
                    [("location", "http://169.254.169.254/latest/meta-data/")],
                )
            }),
        )
        .route(
            "/big",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                vec![b'b'; 128 * 1024]
            }),
        )
        .route(
            "/slow",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

async fn echo(
    State(seen): State<Arc<Seen>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let keyed = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {KEY}"));
    if keyed {
        seen.with_key.fetch_add(1, Ordering::SeqCst);
    }
    let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
    axum::Json(json!({
        "path": uri.path(),
        "query": uri.query(),
        "headers": names,
        "keyed": keyed,
        "body_bytes": body.len(),
    }))
}

/// Policies: the example ones, plus HTTP rules. Requests to the loopback
/// destination are allowed, except `/forbidden`; a POST to `/held` needs a
/// reviewer; any other host is allowed too, so that the host's own address
/// checks are what stop the SSRF attempts.
const HTTP_POLICIES: &str = r#"
@id("http-anywhere")
permit (principal, action == Action::"http_request", resource);

@id("http-no-forbidden-path")
@reason("the forbidden path is off limits")
forbid (principal, action == Action::"http_request", resource)
when { context.arguments.path == "/forbidden" };

@id("http-post-held")
@reason("a post to /held is reviewed by a human")
forbid (principal, action == Action::"http_request", resource)
when { context.arguments.method == "POST" && context.arguments.path == "/held" }
unless { context.approval.granted };
"#;

struct World {
    env: Env,
    addr: SocketAddr,
    seen: Arc<Seen>,
    _dir: tempfile::TempDir,
}

fn limits() -> HttpLimits {
    HttpLimits {
        request_bytes: 64 * 1024,
        response_bytes: 64 * 1024,
        first_byte: Duration::from_millis(400),
        total: Duration::from_secs(5),
        concurrent: 2,
        requests: 1_000,
    }
}

async fn world(reviewer: FixedReviewer) -> World {
    world_with(reviewer, limits()).await
}

async fn world_with(reviewer: FixedReviewer, limits: HttpLimits) -> World {
    let (addr, seen) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    common::copy_policies(&policies);
    std::fs::write(policies.join("http.cedar"), HTTP_POLICIES).unwrap();
    let key_file = dir.path().join("model.key");
    mandate::audit::write_private(&key_file, format!("{KEY}\n").as_bytes()).unwrap();
    let egress = Egress::new(
        vec![Destination {
            host: "127.0.0.1".into(),
            credential: Some(DestinationCredential {
                header: http::header::AUTHORIZATION,
                source: Credential::File(key_file),
            }),
            allow_private: true,
        }],
        limits,
    )
    .unwrap();
    let env = Env::builder()
        .policies(&policies)
        .reviewer(reviewer)
        .egress(egress)
        .build();
    World {
        env,
        addr,
        seen,
        _dir: dir,
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs the scripted agent over `steps` and returns what each got.
    async fn send(&self, steps: Value) -> Vec<Value> {
        let report = self
            .env
            .run(common::session(), &json!({ "http": steps }))
            .await;
        let report = report_json(&report.outcome);
        report["http"].as_array().cloned().unwrap_or_default()
    }

    /// The decision and outcome records of HTTP requests.
    fn http_records(&self) -> Vec<Value> {
        self.env
            .records()
            .into_iter()
            .filter(|r| r["action"]["type"] == "http_request" || r["kind"] == "outcome")
            .collect()
    }
}

fn report_json(outcome: &RunOutcome) -> Value {
    let RunOutcome::Finished(Ok(text)) = outcome else {
        panic!("the agent did not finish: {outcome:?}");
    };
    serde_json::from_str(text).unwrap()
}

fn body_json(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_request_is_decided_and_recorded_before_it_is_sent() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let answers = w
        .send(json!([{ "url": w.url("/hello?lang=en&token=x") }]))
        .await;
    assert_eq!(answers[0]["status"], 200, "{answers:?}");
    assert_eq!(answers[0]["body"], "hello");

    let records = w.http_records();
    let decision = &records[0];
    assert_eq!(decision["kind"], "decision");
    assert_eq!(decision["action"]["tool"], "http_request");
    assert_eq!(decision["action"]["scope"], "http:request");
    assert_eq!(decision["action"]["resource"], "Host::\"127.0.0.1\"");
    let args = &decision["action"]["arguments"];
    assert_eq!(args["method"], "GET");
    assert_eq!(args["scheme"], "http");
    assert_eq!(args["port"], w.addr.port());
    assert_eq!(args["path"], "/hello");
    // Query values can be secrets: only their names reach policy and the log.
    assert_eq!(args["query_keys"], json!(["lang", "token"]));
    assert_eq!(decision["decision"]["effect"], "allow");
    assert_eq!(
        decision["decision"]["determining_policies"][0]["id"],
        "http-anywhere"
    );
    let outcome = &records[1];
    assert_eq!(outcome["kind"], "outcome");
    assert_eq!(outcome["outcome"]["decision_seq"], decision["seq"]);
    assert_eq!(outcome["outcome"]["status"], "ok");
    let http = &outcome["outcome"]["http"];
    assert_eq!(http["status"], 200);
    assert_eq!(http["response_bytes"], 5);
    assert_eq!(http["address"], w.addr.to_string());
    assert_eq!(
        http["response_sha256"],
        hex::encode(sha2::Sha256::digest(b"hello"))
    );
    // Verifies, and replays with no change.
    w.env.assert_verifies(w.env.records().len() as u64);
    let policies = mandate::policy::Policies::load_dir(&w._dir.path().join("policies")).unwrap();
    let replayed = mandate::pipeline::replay(&w.env.audit_path, &policies).unwrap();
    assert_eq!(replayed.totals.re_evaluated, 1, "{replayed:?}");
    assert_eq!(replayed.totals.changed, 0, "{replayed:?}");
}

use sha2::Digest as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_added_by_the_host_and_never_recorded_or_shown() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let answers = w
        .send(json!([
            { "method": "POST", "url": w.url("/echo"), "headers": [["content-type", "application/json"]], "body": "{\"q\":1}" },
            // The agent's own credential for a keyed host is refused.
            { "method": "POST", "url": w.url("/echo"), "headers": [["authorization", "Bearer stolen"]], "body": "{}" },
        ]))
        .await;
    let echoed = body_json(&answers[0]);
    assert_eq!(echoed["keyed"], true, "{answers:?}");
    assert_eq!(echoed["body_bytes"], 7);
    assert_eq!(answers[1]["status"], 400, "{answers:?}");
    assert_eq!(answers[1]["headers"][REFUSAL_HEADER], "invalid-request");
    let refusal = body_json(&answers[1]);
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sets `authorization`, which the host adds for `127.0.0.1`"),
        "{refusal}"
    );
    assert_eq!(w.seen.requests.load(Ordering::SeqCst), 1);
    assert_eq!(w.seen.with_key.load(Ordering::SeqCst), 1);

    let decisions = w.env.records_of("decision");
    let refused = decisions.last().unwrap();
    assert_eq!(refused["decision"]["decided_by"], "invalid_arguments");
    // The agent saw the echo's header names, not the key; no record holds it.
    let log = common::log_text(&w.env.audit_path);
    assert!(!log.contains(KEY), "the key is in the log");
    assert!(!serde_json::to_string(&answers).unwrap().contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_attempts_are_refused_by_the_host() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let port = w.addr.port();
    let answers = w
        .send(json!([
            { "url": "http://169.254.169.254/latest/meta-data/" },
            { "url": format!("http://127.0.0.2:{port}/hello") },
            // A name that resolves to loopback.
            { "url": format!("http://localhost:{port}/hello") },
            { "url": format!("http://[::ffff:127.0.0.1]:{port}/hello") },
            // A redirect is not followed: the agent gets it, and following
            // it is a new request, refused like the first.
            { "url": w.url("/redirect") },
            { "url": "http://169.254.169.254/latest/meta-data/" },
        ]))
        .await;
    for (index, why) in [
        (
            0,
            "destination refused: 169.254.169.254 is a link-local address",
        ),
        (1, "destination refused: 127.0.0.2 is a loopback address"),
        (2, "destination refused: `localhost` resolves to"),
        (3, "is a loopback address"),
    ] {
        assert_eq!(answers[index]["status"], 502, "{index}: {answers:?}");
        let message = body_json(&answers[index])["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(why), "{index}: {message}");
    }
    assert_eq!(answers[4]["status"], 302);
    assert_eq!(
        answers[4]["headers"]["location"],
        "http://169.254.169.254/latest/meta-data/"
    );
    assert_eq!(answers[5]["status"], 502);
    // Only the redirect reached the server; each attempt is recorded.
    assert_eq!(w.seen.requests.load(Ordering::SeqCst), 1);
    let outcomes = w.env.records_of("outcome");
    assert_eq!(outcomes.len(), 6);
    assert_eq!(outcomes[0]["outcome"]["status"], "failed");
    assert!(
        outcomes[0]["outcome"]["error"]
            .as_str()
            .unwrap()
            .starts_with("destination refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_request_is_an_http_error_the_agent_reads() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let answers = w
        .send(json!([{ "url": w.url("/forbidden") }, { "url": w.url("/hello") }]))
        .await;
    assert_eq!(answers[0]["status"], 403, "{answers:?}");
    assert_eq!(answers[0]["headers"][REFUSAL_HEADER], "denied");
    let error = &body_json(&answers[0])["error"];
    assert_eq!(error["type"], "denied");
    assert_eq!(error["policies"], json!(["http-no-forbidden-path"]));
    assert_eq!(
        error["reasons"],
        json!(["the forbidden path is off limits"])
    );
    // The agent handled it and went on.
    assert_eq!(answers[1]["status"], 200);
    assert_eq!(w.seen.requests.load(Ordering::SeqCst), 1);
    let decisions = w.env.records_of("decision");
    assert_eq!(decisions[0]["decision"]["effect"], "deny");
    assert_eq!(w.env.records_of("outcome").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_can_be_held_for_a_reviewer() {
    let reviewer = FixedReviewer::approves_as("carol");
    let w = world(reviewer.clone()).await;
    let answers = w
        .send(json!([{ "method": "POST", "url": w.url("/held"), "body": "x" }]))
        .await;
    // Approved, sent: the server has no `/held`, so it says 404.
    assert_eq!(answers[0]["status"], 404, "{answers:?}");
    let seen = reviewer.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].tool, "http_request");
    let decision = &w.env.records_of("decision")[0];
    assert_eq!(decision["approval"]["outcome"], "approved");
    assert_eq!(decision["approval"]["reviewer"], "carol");

    let refusing = world(FixedReviewer {
        verdict: Verdict::Deny,
        reason: Some("not today".into()),
        ..FixedReviewer::approves_as("carol")
    })
    .await;
    let answers = refusing
        .send(json!([{ "method": "POST", "url": refusing.url("/held"), "body": "x" }]))
        .await;
    assert_eq!(answers[0]["status"], 403);
    assert_eq!(answers[0]["headers"][REFUSAL_HEADER], "approval-denied");
    assert_eq!(refusing.seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_exchanges_fail_within_the_limits() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let started = Instant::now();
    let answers = w
        .send(json!([
            { "url": w.url("/big") },
            { "url": w.url("/slow") },
            { "method": "POST", "url": w.url("/echo"), "body_bytes": 200_000 },
        ]))
        .await;
    assert_eq!(answers[0]["status"], 502, "{answers:?}");
    assert!(
        body_json(&answers[0])["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit of 65536 bytes")
    );
    assert_eq!(answers[1]["status"], 504, "{answers:?}");
    assert!(
        body_json(&answers[1])["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no response within 400 ms")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answers[2]["status"], 413, "{answers:?}");
    assert_eq!(answers[2]["headers"][REFUSAL_HEADER], "session-limit");
    let decisions = w.env.records_of("decision");
    assert_eq!(decisions[2]["decision"]["decided_by"], "session_limit");
    let outcomes = w.env.records_of("outcome");
    assert_eq!(outcomes[0]["outcome"]["http"]["status"], 200);
    assert_eq!(outcomes[0]["outcome"]["status"], "failed");
    assert_eq!(outcomes[1]["outcome"]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_from_one_session_are_each_recorded_and_the_next_refused() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let report = w
        .env
        .run(
            common::session(),
            &json!({ "http": [{ "url": w.url("/hello") }], "http_repeat": 1001, "tally": true }),
        )
        .await;
    let report = report_json(&report.outcome);
    assert_eq!(report["http_tally"], json!({ "200": 1000, "429": 1 }));
    assert_eq!(w.seen.requests.load(Ordering::SeqCst), 1000);
    assert_eq!(w.env.records_of("decision").len(), 1001);
    assert_eq!(w.env.records_of("outcome").len(), 1000);
    w.env.assert_verifies(w.env.records().len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_per_session() {
    let w = world(FixedReviewer::approves_as("carol")).await;
    let session = w
        .env
        .guard
        .start_session(common::session(), None)
        .await
        .unwrap();
    let session = Arc::new(session);
    let slow = || HttpRequestHead {
        method: http::Method::GET,
        uri: w.url("/slow").parse().unwrap(),
        headers: http::HeaderMap::new(),
    };
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let session = Arc::clone(&session);
        let head = slow();
        tasks.push(tokio::spawn(async move {
            session
                .http_request(head, async { Ok::<_, BodyProblem>(bytes::Bytes::new()) })
                .await
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(match task.await.unwrap() {
            Ok(response) => response.status().as_u16(),
            Err(refusal) => refusal.status.as_u16(),
        });
    }
    statuses.sort_unstable();
    // Two in flight (both time out waiting), the third refused at once.
    assert_eq!(statuses, vec![429, 504, 504]);
}
