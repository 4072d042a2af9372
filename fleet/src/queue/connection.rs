//! The one connection a queue handle keeps: opened when first needed,
//! prepared once, listening on the decisions channel, and opened again when
//! it is lost. Notifications are handed to the calls waiting on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mandate::pipeline::queue::QueueError;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::{RunError, rows};
use crate::Database;

/// Longest wait for the database to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one statement; a connection that does not answer in
/// time is dropped and opened again by the next statement.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// After a failed attempt to connect, statements within this long fail at
/// once with the same error rather than each waiting on a dead server.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The statements prepared on every connection.
#[derive(Clone, Copy)]
pub(super) enum Statement {
    Submit,
    Get,
    Pending,
    Recent,
    Decide,
    Expire,
    Reopen,
    Taken,
}

const STATEMENTS: [Statement; 8] = [
    Statement::Submit,
    Statement::Get,
    Statement::Pending,
    Statement::Recent,
    Statement::Decide,
    Statement::Expire,
    Statement::Reopen,
    Statement::Taken,
];

impl Statement {
    fn sql(self) -> String {
        match self {
            Statement::Submit => rows::submit(),
            Statement::Get => rows::get(),
            Statement::Pending => rows::pending(),
            Statement::Recent => rows::recent(),
            Statement::Decide => rows::decide(),
            Statement::Expire => rows::expire(),
            Statement::Reopen => rows::reopen(),
            Statement::Taken => rows::taken(),
        }
    }
}

/// A connection in use, with its prepared statements.
pub(super) struct Live {
    pub(super) database: Database,
    prepared: [tokio_postgres::Statement; STATEMENTS.len()],
}

impl Live {
    pub(super) fn statement(&self, statement: Statement) -> &tokio_postgres::Statement {
        // Prepared in the order of STATEMENTS, which lists every variant in
        // declaration order.
        &self.prepared[statement as usize]
    }
}

/// What every clone of a queue handle shares.
pub(super) struct Shared {
    /// The url as given, password included: only ever passed to `connect`.
    dsn: String,
    pub(super) shown: String,
    slot: tokio::sync::Mutex<Slot>,
    /// The calls waiting for a decision, by the SHA-256 of their approval
    /// id (the notification's payload).
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

#[derive(Default)]
struct Slot {
    live: Option<Arc<Live>>,
    /// The last failed attempt to connect, and why it failed.
    failed: Option<(Instant, String)>,
}

impl Shared {
    pub(super) fn new(url: &str, shown: String) -> Arc<Shared> {
        Arc::new(Shared {
            dsn: url.to_string(),
            shown,
            slot: tokio::sync::Mutex::new(Slot::default()),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn unavailable(&self, message: String) -> QueueError {
        QueueError::Unavailable {
            queue: self.shown.clone(),
            message,
        }
    }

    /// The connection, opened if there is none or it was lost.
    pub(super) async fn live(self: &Arc<Self>) -> Result<Arc<Live>, QueueError> {
        let mut slot = self.slot.lock().await;
        if let Some(live) = &slot.live {
            if !live.database.client.is_closed() {
                return Ok(Arc::clone(live));
            }
            slot.live = None;
        }
        if let Some((at, why)) = &slot.failed
            && at.elapsed() < RETRY_AFTER
        {
            return Err(self.unavailable(why.clone()));
        }
        let opened = match tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(self.unavailable(format!(
                "cannot connect to the database: no answer within {} s; check that it runs and is reachable",
                CONNECT_TIMEOUT.as_secs()
            ))),
        };
        match opened {
            Ok(live) => {
                slot.live = Some(Arc::clone(&live));
                slot.failed = None;
                drop(slot);
                // Whatever was decided while there was no connection was
                // notified to nobody: every waiting call looks again.
                self.wake_all();
                Ok(live)
            }
            Err(error) => {
                let message = match &error {
                    QueueError::Unavailable { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                slot.failed = Some((Instant::now(), message));
                Err(error)
            }
        }
    }

    async fn open(self: &Arc<Self>) -> Result<Arc<Live>, QueueError> {
        let mut database = crate::connect(&self.dsn).await.map_err(|e| {
            let why = match &e {
                crate::FleetError::Connect { source } => {
                    format!("cannot connect to the database: {}", rows::describe(source))
                }
                other => other.to_string(),
            };
            self.unavailable(format!(
                "{why}; check the url, that the database runs, and that this login may connect"
            ))
        })?;
        crate::migrate::require_current(&database.client)
            .await
            .map_err(|e| {
                self.unavailable(format!(
                    "{e}; the database's owner runs `mandate fleet migrate`"
                ))
            })?;
        let fail = |doing: &str, e: tokio_postgres::Error| {
            self.unavailable(format!("{doing}: {}", rows::describe(&e)))
        };
        database
            .client
            .batch_execute(&format!("LISTEN {}", rows::CHANNEL))
            .await
            .map_err(|e| fail("cannot listen for decisions", e))?;
        let mut prepared = Vec::with_capacity(STATEMENTS.len());
        for statement in STATEMENTS {
            prepared.push(
                database
                    .client
                    .prepare(&statement.sql())
                    .await
                    .map_err(|e| fail("cannot prepare the queue's statements", e))?,
            );
        }
        let prepared: [tokio_postgres::Statement; STATEMENTS.len()] = prepared
            .try_into()
            .map_err(|_| self.unavailable("cannot prepare the queue's statements".into()))?;
        let (_, none) = tokio::sync::mpsc::unbounded_channel();
        let notifications = std::mem::replace(&mut database.notifications, none);
        tokio::spawn(dispatch(Arc::downgrade(self), notifications));
        Ok(Arc::new(Live { database, prepared }))
    }

    /// Runs `query` on `live`, bounded by [`STATEMENT_TIMEOUT`]; a lost
    /// connection is dropped so that the next statement opens another.
    pub(super) async fn run_raw<T>(
        &self,
        live: &Arc<Live>,
        doing: &str,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, RunError> {
        let lost = match tokio::time::timeout(STATEMENT_TIMEOUT, query).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if answered(&e) && !live.database.client.is_closed() => {
                return Err(RunError::Db(e));
            }
            Ok(Err(e)) => format!(
                "the connection was lost while {doing}: {}",
                rows::describe(&e)
            ),
            Err(_) => format!(
                "no answer within {} s while {doing}; the connection is dropped",
                STATEMENT_TIMEOUT.as_secs()
            ),
        };
        self.drop_live(live).await;
        Err(RunError::Lost(self.unavailable(lost)))
    }

    /// [`Shared::run_raw`], with a refusal said as an error.
    pub(super) async fn run<T>(
        &self,
        live: &Arc<Live>,
        doing: &str,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, QueueError> {
        match self.run_raw(live, doing, query).await {
            Ok(value) => Ok(value),
            Err(RunError::Lost(e)) => Err(e),
            Err(RunError::Db(e)) => Err(self.unavailable(format!(
                "the database refused {doing}: {}",
                rows::describe(&e)
            ))),
        }
    }

    async fn drop_live(&self, lost: &Arc<Live>) {
        let mut slot = self.slot.lock().await;
        if slot.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, lost)) {
            slot.live = None;
        }
    }

    pub(super) fn waiter(self: &Arc<Self>, approval_id: &str) -> Waiter {
        let key = channel_key(approval_id);
        let notify = Arc::new(Notify::new());
        self.waiters_map().insert(key.clone(), Arc::clone(&notify));
        Waiter {
            shared: Arc::downgrade(self),
            key,
            notify,
        }
    }

    fn waiters_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // The map is only inserted into and removed from: a panic while it
        // was held cannot leave it inconsistent.
        match self.waiters.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn wake(&self, key: &str) {
        if let Some(notify) = self.waiters_map().get(key) {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self.waiters_map().values() {
            notify.notify_one();
        }
    }
}

/// Whether the server answered `e` and the connection still stands: not a
/// lost connection (class 08) nor a server shutting down (57P).
fn answered(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        !code.starts_with("08") && !code.starts_with("57P")
    })
}

/// The notification payload for `approval_id`, as `mandate_decide` sends it.
fn channel_key(approval_id: &str) -> String {
    hex::encode(Sha256::digest(approval_id.as_bytes()))
}

/// Hands each notification to the call waiting on it until the connection
/// closes, then wakes every waiting call: they look again, and reconnect.
async fn dispatch(
    shared: Weak<Shared>,
    mut notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
) {
    while let Some(notification) = notifications.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if notification.channel() == rows::CHANNEL {
            shared.wake(notification.payload());
        }
    }
    if let Some(shared) = shared.upgrade() {
        shared.wake_all();
    }
}

/// A call waiting for a decision on one approval. Dropping it stops the
/// notifications for it.
pub(crate) struct Waiter {
    shared: Weak<Shared>,
    key: String,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Until a decision on the approval may have been committed (or the
    /// connection was lost, or opened again). A wake-up that came before
    /// this is called is not lost.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut map = shared.waiters_map();
            if map
                .get(&self.key)
                .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
            {
                map.remove(&self.key);
            }
        }
    }
}
