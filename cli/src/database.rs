//! The fleet database as the CLI reaches it: a URL from `--database` or
//! `MANDATE_DATABASE_URL` (which keeps a password out of `ps`), shown with
//! its password removed, and a runtime to drive the connection.

use anyhow::Context;

/// The environment variable `--database` falls back to.
pub const DATABASE_ENV: &str = "MANDATE_DATABASE_URL";

/// `url` without its password, escaped for a terminal, for messages.
pub fn shown(url: &str) -> String {
    mandate::terminal::escape(&mandate_fleet::queue::without_password(url)).into_owned()
}

/// A runtime for one command's database work.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects to the fleet database and checks that it is migrated to what
/// this build needs (only `mandate fleet migrate` changes the schema).
pub async fn open(url: &str) -> anyhow::Result<mandate_fleet::Database> {
    let database = mandate_fleet::connect(url)
        .await
        .with_context(|| format!("fleet database `{}`", shown(url)))?;
    mandate_fleet::migrate::require_current(&database.client)
        .await
        .with_context(|| {
            format!(
                "fleet database `{}`; run `mandate fleet migrate` as the database's owner",
                shown(url)
            )
        })?;
    Ok(database)
}
