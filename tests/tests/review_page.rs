#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The review page (`mandate approvals serve`), end to end: a scripted agent
//! whose `send_email` is held (policies/approval.cedar) waits on a
//! `QueueReviewer`; the review server runs in-process over the same queue
//! file; a real headless Chromium, driven through chromedriver, signs in
//! with a reviewer token and approves or denies the call from the page.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs
//! them). Without them these tests fail and say so: they are not skipped.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, email_call, policy_ids};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use mandate::pipeline::queue::{ApprovalQueue, QueueReviewer, QueueStatus};
use mandate::review_server::{ReviewServer, ReviewerTokens};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// carol is in `Group::"reviewers"` (policies/entities.json); bob is not.
const CAROL_TOKEN: &str = "carol-7f3a9c2e51d84b06";
const BOB_TOKEN: &str = "bob-2c9e4a71f0d35b88";

const SECRET: &str = "the launch slips to October; tell nobody";

/// How long the browser gets for anything to show up.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The world: a queue file, the review server, and an agent waiting on it.

struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn queue_path(&self) -> PathBuf {
        self.dir.path().join("approvals.sqlite")
    }

    fn queue(&self) -> ApprovalQueue {
        ApprovalQueue::open(&self.queue_path()).unwrap()
    }

    /// The tokens, written to a TOML file and read back as the CLI does.
    fn tokens(&self) -> ReviewerTokens {
        let path = self.dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            format!("\"{CAROL_TOKEN}\" = \"carol\"\n\"{BOB_TOKEN}\" = \"bob\"\n"),
        )
        .unwrap();
        ReviewerTokens::from_file(&path).unwrap()
    }

    async fn server_on(&self, addr: SocketAddr) -> ReviewServer {
        ReviewServer::start(addr, self.queue(), self.tokens())
            .await
            .unwrap()
    }

    async fn server(&self) -> ReviewServer {
        self.server_on(loopback(0)).await
    }

    /// An environment whose reviewer is the queue.
    fn env(&self) -> Env {
        Env::builder()
            .reviewer(QueueReviewer::new(self.queue()))
            .build()
    }

    /// Waits until the queue holds `n` pending approvals and returns them.
    async fn pending(&self, n: usize) -> Vec<mandate::pipeline::queue::QueuedApproval> {
        let queue = self.queue();
        let start = Instant::now();
        loop {
            let pending = queue.pending().unwrap();
            if pending.len() >= n {
                return pending;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no pending approval appeared in the queue"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs the scripted agent over `calls` in the background; the task gives
/// back the environment (to read the log and outbox) and the results.
fn agent(env: Env, calls: Value) -> tokio::task::JoinHandle<(Env, Vec<Value>)> {
    tokio::spawn(async move {
        let results = env.script(calls).await;
        (env, results)
    })
}

async fn finished(agent: tokio::task::JoinHandle<(Env, Vec<Value>)>) -> (Env, Vec<Value>) {
    tokio::time::timeout(PATIENCE, agent)
        .await
        .expect("the agent is still waiting")
        .unwrap()
}

// ---------------------------------------------------------------------------
// The browser: chromedriver in its own process group, headless Chromium.

struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the review page tests drive a real browser; install Debian's `chromium` and `chromium-driver` (scripts/test does)"
            );
        }
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that dropping it ends the browsers it
        // started too, even when a test fails halfway.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            client: None,
            driver,
            profile,
        };
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--window-size=1280,1200",
                    format!("--user-data-dir={}", browser.profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                // chromedriver takes a moment to listen.
                Err(_) if start.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start headless chromium through chromedriver: {e}"),
            }
        };
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn open(&self, url: &str) {
        self.client().goto(url).await.unwrap();
    }

    async fn wait_for(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` never appeared on the page: {e}"))
    }

    /// Waits until the element `css` is shown and its text contains `what`.
    async fn wait_for_text(&self, css: &str, what: &str) -> String {
        let start = Instant::now();
        loop {
            if let Ok(el) = self.client().find(Locator::Css(css)).await
                && el.is_displayed().await.unwrap_or(false)
                && let Ok(text) = el.text().await
                && text.contains(what)
            {
                return text;
            }
            if start.elapsed() > PATIENCE {
                let shown = match self.client().find(Locator::Css(css)).await {
                    Ok(el) => el.text().await.unwrap_or_default(),
                    Err(_) => "(no such element)".into(),
                };
                panic!("`{css}` never showed `{what}`; it shows `{shown}`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, token: &str) {
        let field = self.wait_for("#token").await;
        field.clear().await.unwrap();
        field.send_keys(token).await.unwrap();
        self.client()
            .find(Locator::Css("#sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The card of the approval `id` on the page.
    async fn card(&self, id: &str) -> Element {
        self.wait_for(&format!("article.approval[data-approval-id=\"{id}\"]"))
            .await
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver and every browser it started: the process group we made.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(loopback(0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn text_of(card: &Element, css: &str) -> String {
    card.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("the card has no `{css}`: {e}"))
        .text()
        .await
        .unwrap()
}

async fn click(card: &Element, css: &str) {
    card.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Plain HTTP, for what a browser would not show.

struct Answer {
    status: u16,
    headers: String,
    body: Value,
}

/// One HTTP/1.1 request over a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    Answer {
        status,
        headers: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_approves_from_the_page_and_the_waiting_agent_sends_the_email() {
    let world = World::new();
    let server = world.server().await;
    // A subject that would run script if the page inserted it as HTML.
    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    let call = json!({
        "tool": "send_email",
        "arguments": {"to": "bob@example.com", "subject": hostile, "body": SECRET},
    });
    let agent = agent(world.env(), json!([call]));
    let pending = world.pending(1).await;
    let id = pending[0].pending.approval_id.clone();

    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser.sign_in(CAROL_TOKEN).await;
    browser.wait_for_text("#whoami", "carol").await;
    let card = browser.card(&id).await;

    // What a reviewer needs to decide.
    assert_eq!(text_of(&card, ".tool").await, "send_email");
    assert_eq!(text_of(&card, ".resource").await, "Tool::\"send_email\"");
    assert_eq!(text_of(&card, ".user").await, "alice <alice@example.com>");
    assert!(
        text_of(&card, ".agent")
            .await
            .contains("(document-summarizer)")
    );
    assert_eq!(
        text_of(&card, ".chain").await,
        "user:alice \u{2192} agent:document-summarizer"
    );
    assert_eq!(
        text_of(&card, ".policies").await,
        "email-requires-approval: every outgoing email is reviewed by a human before it is sent"
    );
    let countdown = text_of(&card, ".countdown").await;
    assert!(countdown.ends_with(" left"), "{countdown}");
    let arguments = text_of(&card, ".arguments").await;
    assert!(arguments.contains("bob@example.com"), "{arguments}");
    // The body is redacted in the queue as in the log: the page never has it.
    assert!(arguments.contains("redacted"), "{arguments}");
    assert!(!arguments.contains("launch slips"), "{arguments}");
    let source = browser.client().source().await.unwrap();
    assert!(!source.contains("launch slips"));
    // The hostile subject is shown as the JSON text it is, not as markup.
    let as_json = serde_json::to_string(hostile).unwrap();
    assert!(arguments.contains(&as_json), "{arguments}");
    assert!(card.find(Locator::Css("img")).await.is_err());
    assert_ne!(browser.client().title().await.unwrap(), "pwned");

    let reason = card.find(Locator::Css(".reason")).await.unwrap();
    reason.send_keys("internal recipient").await.unwrap();
    click(&card, ".approve").await;
    let line = browser.wait_for_text("#decided-list", "approved").await;
    assert!(line.contains("send_email"), "{line}");
    assert!(line.contains("by carol"), "{line}");

    let (env, results) = finished(agent).await;
    assert_eq!(
        results[0],
        json!({"tool": "send_email", "ok": {"queued": true, "message_id": "msg:sess_example_01:1"}})
    );
    let outbox = env.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["body"], SECRET);

    let decision = &env.records_of("decision")[0];
    assert_eq!(decision["decision"]["effect"], "allow");
    let a = &decision["approval"];
    assert_eq!(a["outcome"], "approved");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(a["reason"], "internal recipient");
    assert_eq!(
        a["reviewer_callback"],
        format!("queue:{}", world.queue_path().display())
    );
    assert!(policy_ids(&a["demanded_by"]).contains(&"email-requires-approval".to_string()));

    let queued = world.queue().get(&id).unwrap().unwrap();
    assert_eq!(queued.status, QueueStatus::Approved);
    assert_eq!(queued.reviewer.as_deref(), Some("carol"));

    // The card is gone and the page says nothing is waiting.
    browser.wait_for_text("#empty", "Nothing is waiting").await;
    browser.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_denies_from_the_page_with_a_reason_and_the_agent_is_told_it() {
    let world = World::new();
    let server = world.server().await;
    let agent = agent(world.env(), json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();

    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    // A wrong token is refused, visibly, and shows nothing.
    browser.sign_in("not-a-token-anyone-has").await;
    let error = browser.wait_for_text("#error", "not accepted").await;
    assert!(error.contains("not valid"), "{error}");
    assert!(
        !browser
            .client()
            .find(Locator::Css("#main"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    browser.sign_in(CAROL_TOKEN).await;
    let card = browser.card(&id).await;
    let reason = card.find(Locator::Css(".reason")).await.unwrap();
    reason.send_keys("no launch dates by email").await.unwrap();
    click(&card, ".deny").await;
    let line = browser.wait_for_text("#decided-list", "denied").await;
    assert!(line.contains("no launch dates by email"), "{line}");

    let (env, results) = finished(agent).await;
    assert_eq!(
        results[0]["error"],
        json!({"kind": "approval-denied", "message": "no launch dates by email"})
    );
    assert!(env.outbox().is_empty());
    assert!(env.records_of("outcome").is_empty());
    let a = &env.records_of("decision")[0]["approval"];
    assert_eq!(a["outcome"], "denied");
    assert_eq!(a["reviewer"], "carol");
    assert_eq!(a["reason"], "no launch dates by email");
    env.assert_verifies(5); // log_start, session_start, approval_requested, decision, session_end

    let queued = world.queue().get(&id).unwrap().unwrap();
    assert_eq!(queued.status, QueueStatus::Denied);
    browser.close().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_valid_token_nothing_is_shown_and_nothing_is_decided() {
    let world = World::new();
    let server = world.server().await;
    let addr = server.local_addr();
    let agent = agent(world.env(), json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();
    let approve = format!("/api/approvals/{id}/approve");
    let deny = format!("/api/approvals/{id}/deny");

    // The page itself is public: it holds no data.
    let page = http(addr, "GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers
            .contains("content-security-policy: default-src 'none'; script-src 'self'")
    );

    for (method, path, body) in [
        ("GET", "/api/pending", None),
        ("GET", "/api/whoami", None),
        ("GET", &format!("/api/approvals/{id}") as &str, None),
        (
            "POST",
            &approve as &str,
            Some(json!({"reason": "trust me"})),
        ),
        ("POST", &approve as &str, Some(json!({"reviewer": "carol"}))),
        ("POST", &deny as &str, Some(json!({}))),
    ] {
        for token in [None, Some("carol"), Some("carol-7f3a9c2e51d84b0")] {
            let answer = http(addr, method, path, token, body.clone()).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            assert!(answer.body["error"].is_string(), "{:?}", answer.body);
            assert!(answer.headers.contains("www-authenticate: bearer"));
        }
    }
    let answer = http(addr, "POST", &approve, Some("Basic Y2Fyb2w6eA=="), None).await;
    assert_eq!(answer.status, 401);
    // Nothing was decided.
    let queued = world.queue().get(&id).unwrap().unwrap();
    assert_eq!(queued.status, QueueStatus::Pending);
    assert_eq!(queued.reviewer, None);

    // A valid token cannot name another reviewer: the body has no such field.
    let answer = http(
        addr,
        "POST",
        &approve,
        Some(CAROL_TOKEN),
        Some(json!({"reviewer": "mallory"})),
    )
    .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(
        world.queue().get(&id).unwrap().unwrap().status,
        QueueStatus::Pending
    );

    // With the token: the list, then a decision recorded under its reviewer.
    let list = http(addr, "GET", "/api/pending", Some(CAROL_TOKEN), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body[0]["pending"]["approval_id"], id.as_str());
    assert_eq!(list.body[0]["status"], "pending");
    let left = list.body[0]["seconds_left"].as_i64().unwrap();
    assert!((250..=300).contains(&left), "{left}");
    assert_eq!(
        list.body[0]["pending"]["arguments"]["to"],
        "bob@example.com"
    );
    assert!(list.body[0]["pending"]["arguments"]["body"]["redacted"].is_string());

    let decided = http(
        addr,
        "POST",
        &approve,
        Some(CAROL_TOKEN),
        Some(json!({"reason": "fine", "scope": "once"})),
    )
    .await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    assert_eq!(decided.body["status"], "approved");
    assert_eq!(decided.body["reviewer"], "carol");
    let (env, results) = finished(agent).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert_eq!(
        env.records_of("decision")[0]["approval"]["reviewer"],
        "carol"
    );

    // A second decision is a conflict the reviewer is told about.
    let again = http(addr, "POST", &deny, Some(BOB_TOKEN), None).await;
    assert_eq!(again.status, 409);
    let message = again.body["error"].as_str().unwrap();
    assert!(message.contains("already approved by `carol`"), "{message}");
    let unknown = http(
        addr,
        "POST",
        "/api/approvals/apr:nope/deny",
        Some(CAROL_TOKEN),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_after_the_deadline_is_refused_with_the_reason() {
    let world = World::new();
    let server = world.server().await;
    let addr = server.local_addr();
    let env = Env::builder()
        .reviewer(QueueReviewer::new(world.queue()))
        .approval_timeout(Duration::from_secs(1))
        .build();
    let agent = agent(env, json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();
    let (_env, results) = finished(agent).await;
    assert_eq!(
        results[0]["error"]["kind"], "approval-timed-out",
        "{results:?}"
    );

    let late = http(
        addr,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        Some(CAROL_TOKEN),
        None,
    )
    .await;
    assert_eq!(late.status, 409, "{:?}", late.body);
    let message = late.body["error"].as_str().unwrap();
    assert!(message.contains("deadline"), "{message}");
    assert!(message.contains("not recorded"), "{message}");
    let list = http(addr, "GET", "/api/pending", Some(CAROL_TOKEN), None).await;
    assert_eq!(list.body, json!([]));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_server_restarts_while_a_call_waits_and_the_approval_is_still_there() {
    let world = World::new();
    let first = world.server().await;
    let addr = first.local_addr();
    let agent = agent(world.env(), json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();

    let browser = Browser::start().await;
    browser.open(&first.url()).await;
    browser.sign_in(CAROL_TOKEN).await;
    browser.card(&id).await;

    // The server goes away; the page says it cannot reach it and stops
    // asking; the call waits.
    first.shutdown().await.unwrap();
    browser
        .wait_for_text("#error", "cannot reach the review server")
        .await;
    assert!(is_shown(&browser, "#reconnect").await);
    assert!(!agent.is_finished());

    // A new server over the same queue file, on the same address; the page
    // reconnects when the reviewer says so, and proves itself anew.
    let second = world.server_on(addr).await;
    let list = http(addr, "GET", "/api/pending", Some(CAROL_TOKEN), None).await;
    assert_eq!(list.body[0]["pending"]["approval_id"], id.as_str());
    browser.wait_for("#reconnect").await.click().await.unwrap();
    let start = Instant::now();
    while is_shown(&browser, "#error").await {
        assert!(start.elapsed() < PATIENCE, "the page did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!is_shown(&browser, "#reconnect").await);
    let card = browser.card(&id).await;
    click(&card, ".approve").await;
    browser.wait_for_text("#decided-list", "approved").await;

    let (env, results) = finished(agent).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert_eq!(env.outbox().len(), 1);
    let a = &env.records_of("decision")[0]["approval"];
    assert_eq!(a["outcome"], "approved");
    assert_eq!(a["reviewer"], "carol");
    browser.close().await;
    second.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// A stranger on the port.

/// What another local user can run once the review server's port is free: a
/// listener that records every request and answers as a server that knows
/// no token would (a made-up handshake, a reviewer, an empty list).
struct Impostor {
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Impostor {
    async fn bind(addr: SocketAddr) -> Impostor {
        let start = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() > PATIENCE => panic!("cannot bind {addr}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let body = if request.starts_with("POST /api/handshake") {
                        json!({
                            "session": "0".repeat(32),
                            "server_nonce": "1".repeat(32),
                            "proof": "2".repeat(64),
                        })
                    } else if request.contains("/api/whoami") {
                        json!({"reviewer": "carol"})
                    } else {
                        json!([])
                    }
                    .to_string();
                    seen.lock().unwrap().push(request);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Impostor { requests, task }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One whole HTTP/1.1 request (head and `Content-Length` body), as text.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return (!raw.is_empty()).then(|| String::from_utf8_lossy(&raw).into_owned());
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Some(text);
            }
        }
    }
}

/// Sends `request` (as captured) again over a fresh connection; the status
/// and body of the answer.
async fn replay(addr: SocketAddr, request: &str) -> (u16, String) {
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let request = format!("{}\r\n\r\n{body}", lines.join("\r\n"));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// HMAC-SHA256, to compute the key the page derives from a token.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

async fn is_shown(browser: &Browser, css: &str) -> bool {
    match browser.client().find(Locator::Css(css)).await {
        Ok(el) => el.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_who_takes_the_port_while_the_server_restarts_gets_nothing_it_can_use() {
    let world = World::new();
    let first = world.server().await;
    let addr = first.local_addr();
    let agent = agent(world.env(), json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();

    let browser = Browser::start().await;
    browser.open(&first.url()).await;
    browser.sign_in(CAROL_TOKEN).await;
    browser.card(&id).await;

    // The server goes away; another local user binds its port at once.
    first.shutdown().await.unwrap();
    let impostor = Impostor::bind(addr).await;
    // Long enough for a page that polls every second to try five times.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let page_key = hex::encode(hmac_sha256(CAROL_TOKEN.as_bytes(), b"mandate-review/key"));
    let check = |requests: &[String]| {
        for request in requests {
            assert!(
                !request.contains(CAROL_TOKEN),
                "the stranger on the port received the reviewer's token:\n{request}"
            );
            assert!(
                !request.contains(&page_key),
                "the stranger received the page's key:\n{request}"
            );
        }
    };
    let after_loss = impostor.requests();
    check(&after_loss);
    // At most the request already on its way when the server went; then
    // the page stops and waits for the reviewer.
    assert!(
        after_loss.len() <= 1,
        "the page kept polling a server it could not authenticate: {} requests",
        after_loss.len()
    );
    browser
        .wait_for_text("#error", "nothing more is sent until you reconnect")
        .await;
    assert!(is_shown(&browser, "#reconnect").await);
    assert!(!agent.is_finished());

    // The reviewer reconnects while the stranger still holds the port: it
    // cannot prove it knows the token, and the page sends nothing more.
    browser.wait_for("#reconnect").await.click().await.unwrap();
    let refused = browser
        .wait_for_text("#error", "did not prove that it knows your token")
        .await;
    assert!(refused.contains("nothing else was sent"), "{refused}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let captured = impostor.requests();
    check(&captured);
    let handshakes = captured
        .iter()
        .filter(|r| r.starts_with("POST /api/handshake"))
        .count();
    assert_eq!(
        captured.len() - after_loss.len(),
        1,
        "only the handshake reaches an unproven server: {captured:#?}"
    );
    assert_eq!(handshakes, 1, "{captured:#?}");
    impostor.stop().await;

    // The real server is back. Nothing the stranger captured opens it: a
    // signed request names a session that died with the old server, and a
    // replayed handshake shows no approval.
    let second = world.server_on(addr).await;
    for request in &captured {
        let (status, answer) = replay(addr, request).await;
        assert!(
            !answer.contains(&id),
            "a replay showed the approval: {answer}"
        );
        if !request.starts_with("POST /api/handshake") {
            assert_eq!(status, 401, "{request}\n{answer}");
        }
    }

    // The reviewer reconnects to the real server and decides.
    browser.wait_for("#reconnect").await.click().await.unwrap();
    let card = browser.card(&id).await;
    let start = Instant::now();
    while is_shown(&browser, "#error").await {
        assert!(start.elapsed() < PATIENCE, "the page did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&card, ".approve").await;
    browser.wait_for_text("#decided-list", "approved").await;
    let (env, results) = finished(agent).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert_eq!(env.outbox().len(), 1);
    browser.close().await;
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_the_operator_allows_reads_the_held_body_on_the_page_and_others_do_not() {
    use mandate::pipeline::reveal::{RevealConfig, socket_dir_for_queue};
    let world = World::new();
    let server = world.server().await;
    let env = Env::builder()
        .reviewer(QueueReviewer::new(world.queue()))
        .reveal(RevealConfig::to(["carol"]).serve_in(socket_dir_for_queue(&world.queue_path())))
        .build();
    let agent = agent(env, json!([email_call(SECRET)]));
    let id = world.pending(1).await[0].pending.approval_id.clone();

    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    // bob may review but not read: the card has the commitment only.
    browser.sign_in(BOB_TOKEN).await;
    browser.wait_for_text("#whoami", "bob").await;
    let card = browser.card(&id).await;
    assert!(card.find(Locator::Css("tr.revealed")).await.is_err());
    let arguments = text_of(&card, ".arguments").await;
    assert!(!arguments.contains(SECRET), "{arguments}");
    assert!(
        !browser
            .client()
            .source()
            .await
            .unwrap()
            .contains("launch slips")
    );

    browser
        .client()
        .find(Locator::Css("#sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.sign_in(CAROL_TOKEN).await;
    browser.wait_for_text("#whoami", "carol").await;
    let card = browser.card(&id).await;
    let revealed = text_of(&card, "tr.revealed").await;
    assert!(revealed.contains("arguments.body"), "{revealed}");
    assert!(revealed.contains(SECRET), "{revealed}");

    click(&card, ".approve").await;
    browser.wait_for_text("#decided-list", "approved").await;
    let (env, results) = finished(agent).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert!(!common::log_text(&env.audit_path).contains(SECRET));
    let queue_bytes = std::fs::read(world.queue_path()).unwrap();
    assert!(
        !queue_bytes
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );
    browser.close().await;
    server.shutdown().await.unwrap();
}

/// The same page over the fleet's queue on PostgreSQL: the host holds the
/// call in the database, the page's server logs in as a role that carol's
/// role was granted to, carol approves from the browser, and the host,
/// woken by the database's notification, sends the email. The decision is
/// in the database under carol, made through the page's login.
#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_approves_from_the_page_over_the_fleet_database() {
    use common::postgres::{DATABASE, Postgres};
    use mandate_fleet::queue::{PgApprovalQueue, PgQueueReviewer};

    let postgres = Postgres::start_migrated().await;
    postgres.psql(
        "CREATE ROLE host_1 LOGIN IN ROLE mandate_host; \
         CREATE ROLE carol IN ROLE mandate_reviewer; \
         CREATE ROLE review_page LOGIN IN ROLE mandate_reviewer; \
         GRANT carol TO review_page",
        DATABASE,
    );
    let world = World::new();
    let page_queue = PgApprovalQueue::connect(&postgres.url_for("review_page", DATABASE))
        .await
        .unwrap();
    let server = ReviewServer::start(loopback(0), page_queue.clone(), world.tokens())
        .await
        .unwrap();
    let host_url = postgres.url_for("host_1", DATABASE);
    let env = Env::builder()
        .reviewer(PgQueueReviewer::new(
            PgApprovalQueue::open(&host_url).unwrap(),
        ))
        .build();
    let agent = agent(env, json!([email_call(SECRET)]));
    let start = Instant::now();
    let id = loop {
        if let Some(waiting) = page_queue.pending().await.unwrap().pop() {
            break waiting.pending.approval_id;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no pending approval in the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser.sign_in(CAROL_TOKEN).await;
    browser.wait_for_text("#whoami", "carol").await;
    let card = browser.card(&id).await;
    assert_eq!(text_of(&card, ".tool").await, "send_email");
    click(&card, ".approve").await;
    let line = browser.wait_for_text("#decided-list", "approved").await;
    assert!(line.contains("by carol"), "{line}");

    let (env, results) = finished(agent).await;
    assert_eq!(results[0]["ok"]["queued"], true, "{results:?}");
    assert_eq!(env.outbox().len(), 1);
    let approval = &env.records_of("decision")[0]["approval"];
    assert_eq!(approval["outcome"], "approved");
    assert_eq!(approval["reviewer"], "carol");
    let decided = postgres.psql(
        &format!("SELECT status || ' ' || reviewer || ' ' || decided_by FROM approvals WHERE approval_id = '{id}'"),
        DATABASE,
    );
    assert_eq!(decided, "approved carol review_page");
    browser.close().await;
    server.shutdown().await.unwrap();
}
