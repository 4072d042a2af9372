//! `mandate approvals serve`: the review page over an approvals queue.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mandate::pipeline::queue::ApprovalQueue;
use mandate::review_server::{ReviewQueue, ReviewServer, ReviewerTokens};
use mandate_fleet::queue::PgApprovalQueue;

use super::QueueArg;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub queue: QueueArg,
    /// Address to listen on, exactly; keep it on loopback unless a TLS proxy
    /// stands in front (tokens travel in clear text otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    pub listen: SocketAddr,
    /// JSON or TOML file mapping each reviewer's token to their user id, e.g.
    /// `"<token>" = "carol"`; the decision is recorded under that user.
    #[arg(long, value_name = "FILE")]
    pub tokens: PathBuf,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let tokens = ReviewerTokens::from_file(&args.tokens)?;
    warn_if_others_can_read(&args.tokens);
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on `{}`, beyond this machine: reviewer tokens and pending calls travel unencrypted unless a TLS proxy stands in front",
            args.listen
        );
    }
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if let Some(url) = args.queue.url() {
        return tokio.block_on(async {
            // The page's login decides in each token's reviewer's name: the
            // database accepts it only for reviewer roles granted to it.
            let queue = PgApprovalQueue::connect(url).await?;
            queue.check_reviewer().await?;
            serve(
                args.listen,
                queue,
                &tokens,
                &args.queue.shown(),
                &args.tokens,
            )
            .await
        });
    }
    // The page may well be up before the first agent runs, so a missing
    // queue is created; said aloud, in case the path is a typo.
    let queue_path = &args.queue.queue;
    if !queue_path.exists() {
        eprintln!(
            "note: no approvals queue at `{}` yet; created an empty one for `mandate run --approver queue:{}` to fill",
            queue_path.display(),
            queue_path.display()
        );
    }
    let queue = ApprovalQueue::open(queue_path)?;
    let shown = queue_path.display().to_string();
    tokio.block_on(serve(args.listen, queue, &tokens, &shown, &args.tokens))
}

/// Serves the page over `queue` until Ctrl-C.
async fn serve(
    listen: SocketAddr,
    queue: impl ReviewQueue,
    tokens: &ReviewerTokens,
    shown: &str,
    tokens_file: &Path,
) -> anyhow::Result<ExitCode> {
    let server = ReviewServer::start(listen, queue, tokens.clone()).await?;
    println!("review page: {}", server.url());
    println!(
        "queue {shown} · {} reviewer token{} from {} · Ctrl-C stops",
        tokens.len(),
        if tokens.len() == 1 { "" } else { "s" },
        tokens_file.display()
    );
    server
        .serve_until(async {
            // If the signal cannot be watched, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Tokens are passwords: say so when the file is readable by other users.
#[cfg(unix)]
fn warn_if_others_can_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: the token file `{}` is readable by other users; `chmod 600` it",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_path: &Path) {}
