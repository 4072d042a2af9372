//! The review page: a small HTTP server over an approvals queue, where
//! reviewers see held calls and approve or deny them from a browser
//! (`mandate approvals serve`).
//!
//! Routes:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page (with `/app.js` and `/style.css`, embedded in the binary) |
//! | `POST /api/handshake` | the server proves it knows the page's key and opens a page session (see the `auth` module) |
//! | `GET /api/whoami` | the reviewer the token belongs to |
//! | `GET /api/pending` | the pending approvals, each with `seconds_left` |
//! | `GET /api/approvals/{id}` | one approval |
//! | `POST /api/approvals/{id}/approve` | approve, body `{"reason"?, "scope"?: "once"\|"session"}` |
//! | `POST /api/approvals/{id}/deny` | deny, same body |
//!
//! Every other `/api` route needs a reviewer: the page signs each request
//! in a session whose server proved it knows the page's key (the page never
//! sends its token; see the `auth` module), a script may send
//! `Authorization: Bearer <token>`, a token from the server's
//! [`ReviewerTokens`]. The decision's reviewer is the token's user. No valid token: 401 and nothing decided. A decision after the
//! deadline or on an approval already decided: 409 with the reason.
//!
//! ```no_run
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! use mandate::pipeline::queue::ApprovalQueue;
//! use mandate::review_server::{ReviewServer, ReviewerTokens};
//!
//! let queue = ApprovalQueue::open("approvals.db".as_ref())?;
//! let tokens = ReviewerTokens::from_file("tokens.toml".as_ref())?;
//! let server = ReviewServer::start("127.0.0.1:8470".parse()?, queue, tokens).await?;
//! println!("review page: {}", server.url());
//! server
//!     .serve_until(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod auth;
mod page;
mod source;
mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::MAX_REASON_CHARS;
pub use source::ReviewQueue;
pub use tokens::{MIN_TOKEN_CHARS, ReviewerTokens, TokenError};

/// Largest request body read; a decision is a reason and a scope.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// Why the review server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("the review server failed: {0}")]
    Serve(std::io::Error),
    /// The server task ended abnormally.
    #[error("the review server stopped abnormally: {0}")]
    Task(String),
}

/// The page and its API over `queue` (the approvals queue file, or any
/// other [`ReviewQueue`]), for embedding in a host's own server.
/// [`ReviewServer::start`] serves it on an address.
pub fn router(queue: impl ReviewQueue, tokens: ReviewerTokens) -> Router {
    let state = api::AppState {
        queue: Arc::new(queue),
        tokens: Arc::new(tokens),
        sessions: Arc::default(),
    };
    // Everything that shows or decides an approval needs a reviewer.
    let signed = Router::new()
        .route("/api/whoami", get(api::whoami))
        .route("/api/pending", get(api::pending))
        .route("/api/approvals/{id}", get(api::approval))
        .route("/api/approvals/{id}/approve", post(api::approve))
        .route("/api/approvals/{id}/deny", post(api::deny))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/handshake", post(auth::handshake))
        .merge(signed)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(page::security_headers))
        .with_state(state)
}

/// A running review server. Dropping it stops it (it finishes the requests
/// in flight); [`ReviewServer::shutdown`] also waits until it has.
#[derive(Debug)]
pub struct ReviewServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl ReviewServer {
    /// Listens on `listen` (exactly that address; port 0 picks a free
    /// port) and serves [`router`] on the current tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        queue: impl ReviewQueue,
        tokens: ReviewerTokens,
    ) -> Result<ReviewServer, ServeError> {
        let bind_error = |source| ServeError::Bind {
            addr: listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(queue, tokens);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A dropped sender is a stop too.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(ReviewServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, e.g. `http://127.0.0.1:8470/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops listening, lets the requests in flight finish, and returns
    /// once the server is gone.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.serve_until(std::future::ready(())).await
    }

    /// Serves until `signal` completes (e.g. `tokio::signal::ctrl_c`), then
    /// shuts down as [`ReviewServer::shutdown`] does. Returns early if the
    /// server fails.
    pub async fn serve_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        tokio::select! {
            done = &mut task => return finished(done),
            () = signal => {}
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        finished(task.await)
    }
}

fn finished(done: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServeError> {
    match done {
        Ok(result) => result.map_err(ServeError::Serve),
        Err(e) => Err(ServeError::Task(e.to_string())),
    }
}

impl Drop for ReviewServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
