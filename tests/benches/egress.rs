//! What the guard adds to one outgoing HTTP request, side by side in one
//! run against a server on loopback, log on a tmpfs:
//!
//! - **direct**: the request sent by the host itself with a reqwest client
//!   set up as the HTTP door's is (no proxy, no redirects), the response
//!   read whole;
//! - **guarded**: `SessionGuard::http_request` of the same request: the
//!   session's limits, the description policy sees, the Cedar decision, the
//!   durable decision record, the same send, the durable outcome record.
//!
//! The goal (issue 16): guarded - direct under 100 µs at p50, the durable
//! records included.
//!
//! Run: `cargo bench -p mandate-tests --bench egress`. It prints p50 and p99
//! of single requests from alternating rounds.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mandate::egress::{Destination, Egress};
use mandate::limits::HttpLimits;
use mandate::pipeline::{BodyProblem, Guard, HttpRequestHead, Session, ToolRegistry};
use mandate::policy::Policies;

/// Alternating rounds.
const ROUNDS: usize = 3000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn quantile(xs: &[Duration], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort();
    xs[((xs.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let dir = common::bench_dir("egress-bench-");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let addr = tokio.block_on(async {
        let app = axum::Router::new().route("/v1/ping", axum::routing::get(|| async { "pong" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let url = format!("http://{addr}/v1/ping");

    let policy_dir = dir.path().join("policies");
    std::fs::create_dir_all(&policy_dir).expect("policies");
    std::fs::write(
        policy_dir.join("schema.cedarschema"),
        ToolRegistry::new().cedar_schema().expect("schema"),
    )
    .expect("schema");
    std::fs::write(
        policy_dir.join("entities.json"),
        r#"[{"uid": {"type": "User", "id": "alice"}, "attrs": {"email": "alice@example.com"}, "parents": []},
            {"uid": {"type": "Agent", "id": "document-summarizer"}, "attrs": {"name": "Document Summarizer", "version": "0.1.0"}, "parents": []}]"#,
    )
    .expect("entities");
    std::fs::write(
        policy_dir.join("http.cedar"),
        "permit(principal, action == Action::\"http_request\", resource == Host::\"127.0.0.1\")\n\
         when { context.arguments.method == \"GET\" && context.arguments.scheme == \"http\" };\n",
    )
    .expect("policy");
    let policies = Policies::load_dir(&policy_dir).expect("policies");
    let egress = Egress::new(
        vec![Destination {
            host: "127.0.0.1".into(),
            credential: None,
            allow_private: true,
        }],
        HttpLimits::default(),
    )
    .expect("egress");
    let guard = Guard::builder(policies, common::bench_log(dir.path()))
        .egress(egress)
        .build()
        .expect("guard");
    let new_session = |n: usize| {
        let mut session =
            Session::from_file(&repo().join("policies/session.json")).expect("example session");
        session.session_id = format!("sess_egress_bench_{n}");
        tokio
            .block_on(guard.start_session(session, None))
            .expect("session")
    };
    let mut session = new_session(0);
    let direct_client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let head = HttpRequestHead {
        method: http::Method::GET,
        uri: url.parse().expect("uri"),
        headers: http::HeaderMap::new(),
    };

    let (mut direct, mut guarded) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 100 {
        // Under the session's request limit.
        if round % 5000 == 4999 {
            session = new_session(round);
        }
        let started = Instant::now();
        tokio.block_on(async {
            let response = direct_client.get(&url).send().await.expect("direct");
            let body = response.bytes().await.expect("direct body");
            assert_eq!(&body[..], b"pong");
        });
        let d = started.elapsed();
        let started = Instant::now();
        let response = tokio
            .block_on(session.http_request(head.clone(), async {
                Ok::<_, BodyProblem>(bytes::Bytes::new())
            }))
            .expect("guarded");
        assert_eq!(&response.body()[..], b"pong");
        let g = started.elapsed();
        // The first rounds warm the connections, the log and the caches.
        if round >= 100 {
            direct.push(d);
            guarded.push(g);
        }
    }
    let (d50, g50) = (quantile(&direct, 0.5), quantile(&guarded, 0.5));
    println!(
        "\negress: {} alternating rounds, single GET requests to a loopback server\n  \
         direct (the host's own reqwest client)       p50 {d50:>8.1} µs p99 {:>8.1} µs\n  \
         guarded (SessionGuard::http_request)          p50 {g50:>8.1} µs p99 {:>8.1} µs\n  \
         added by the guard, durable records included: {:.1} µs at p50 (goal: under 100)",
        direct.len(),
        quantile(&direct, 0.99),
        quantile(&guarded, 0.99),
        g50 - d50,
    );
}
