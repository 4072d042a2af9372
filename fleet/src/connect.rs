//! One connection to the fleet's database from a `postgres://` URL.

use rustls::ClientConfig;
use rustls_platform_verifier::ConfigVerifierExt;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use crate::FleetError;

/// A connected client, with the task that drives its connection.
///
/// Dropping it closes the connection. `notifications` receives what the
/// server sends besides answers (`LISTEN`'s notifications).
pub struct Database {
    pub client: Client,
    pub notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Parses `url` (`postgresql://role@host:port/db?sslmode=...`, or a Unix
/// socket directory as the host, percent-encoded: `%2Frun%2Fpostgresql`).
pub fn parse(url: &str) -> Result<Config, FleetError> {
    url.parse::<Config>().map_err(|error| FleetError::Url {
        reason: error.to_string(),
    })
}

/// Connects to `url` on the current tokio runtime.
///
/// A Unix socket needs no TLS. Over TCP, TLS is used unless the URL says
/// `sslmode=disable`, and the server's certificate is checked against the
/// platform's roots: records and approvals cross the network otherwise.
pub async fn connect(url: &str) -> Result<Database, FleetError> {
    let config = parse(url)?;
    let local = config
        .get_hosts()
        .iter()
        .all(|host| matches!(host, Host::Unix(_)));
    let (sender, notifications) = tokio::sync::mpsc::unbounded_channel();
    let (client, driver) = if local || config.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|source| FleetError::Connect { source })?;
        (client, tokio::spawn(drive(connection, sender)))
    } else {
        let tls = ClientConfig::with_platform_verifier().map_err(|error| FleetError::Tls {
            reason: error.to_string(),
        })?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let (client, connection) = config
            .connect(tls)
            .await
            .map_err(|source| FleetError::Connect { source })?;
        (client, tokio::spawn(drive(connection, sender)))
    };
    Ok(Database {
        client,
        notifications,
        driver,
    })
}

/// Drives a connection, passing its notifications on, until it closes.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    sender: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                // A closed receiver only means nobody listens any more.
                let _ = sender.send(notification);
            }
            Some(Ok(_)) => {}
            // The client's next statement reports the failure.
            Some(Err(_)) | None => return,
        }
    }
}
