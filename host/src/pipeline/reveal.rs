//! Clear values of a held call's sensitive arguments, for the reviewers the
//! operator allows to see them, while the call is held and never after.
//!
//! Sensitive arguments reach the log and the approvals queue only as
//! commitments, so a reviewer would approve an email without reading it.
//! With [`RevealConfig`] the host keeps the clear values of each held call
//! in memory for the hold only:
//!
//! - an in-process reviewer (a callback, the terminal prompt) finds them in
//!   [`PendingApproval::revealed`](super::PendingApproval::revealed), which
//!   hands them only to an allowed reviewer ([`Revealed::for_reviewer`]) and
//!   is never serialized (not into the queue, not to a `cmd:` reviewer);
//! - the reviewer tools in other processes (`mandate approvals show
//!   --reviewer`, the review page) ask the host over a Unix socket that
//!   exists only while the call is held, in a private (0700) directory
//!   beside the queue ([`socket_dir_for_queue`]). The host answers only for
//!   an allowed reviewer, and only to a process of its own user.
//!
//! The reviewer's name in a socket request is the reviewer tool's word: the
//! socket trusts the tools of the operator's own user (the review page names
//! the reviewer its token authenticated; the CLI, the user who runs it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::redact::is_commitment;

/// Largest request a reveal socket reads: an approval id and a user id.
const MAX_REQUEST_BYTES: u64 = 4096;
/// Largest answer a reviewer tool reads.
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;
/// How long either side waits on the other.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// One sensitive value in clear, at its concrete path
/// (`arguments.body`, `arguments.attachments[1].content`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ClearValue {
    /// Where in the call, as in the commitment's path.
    pub path: String,
    /// The value the agent passed.
    pub value: Value,
}

impl std::fmt::Debug for ClearValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearValue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The clear values of one held call and who may see them. Empty unless the
/// operator allowed someone ([`RevealConfig`]). Its `Debug` shows paths only.
#[derive(Clone, Default)]
pub struct Revealed {
    values: Arc<[ClearValue]>,
    allowed: Arc<[String]>,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.values.iter().map(|v| v.path.as_str()).collect();
        f.debug_struct("Revealed")
            .field("paths", &paths)
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl Revealed {
    /// The clear value behind every commitment in `redacted`, from `clear`
    /// (the same arguments before redaction).
    pub(crate) fn collect(allowed: &Arc<[String]>, redacted: &Value, clear: &Value) -> Self {
        if allowed.is_empty() {
            return Revealed::default();
        }
        let mut values = Vec::new();
        walk(
            redacted,
            clear,
            &mut super::redact::ARGUMENTS_ROOT.to_string(),
            &mut values,
        );
        Revealed {
            values: values.into(),
            allowed: Arc::clone(allowed),
        }
    }

    /// Whether there is nothing to reveal.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the operator allows `reviewer` to see the clear values.
    pub fn allows(&self, reviewer: &str) -> bool {
        self.allowed.iter().any(|a| a == reviewer)
    }

    /// The clear values, if `reviewer` may see them.
    pub fn for_reviewer(&self, reviewer: &str) -> Option<&[ClearValue]> {
        (self.allows(reviewer) && !self.is_empty()).then_some(&self.values[..])
    }
}

fn walk(redacted: &Value, clear: &Value, path: &mut String, out: &mut Vec<ClearValue>) {
    if is_commitment(redacted) {
        out.push(ClearValue {
            path: path.clone(),
            value: clear.clone(),
        });
        return;
    }
    let len = path.len();
    match (redacted, clear) {
        (Value::Object(r), Value::Object(c)) => {
            for (name, rv) in r {
                if let Some(cv) = c.get(name) {
                    path.push('.');
                    path.push_str(name);
                    walk(rv, cv, path, out);
                    path.truncate(len);
                }
            }
        }
        (Value::Array(r), Value::Array(c)) => {
            for (i, (rv, cv)) in r.iter().zip(c).enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(rv, cv, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The operator's choice: who may see clear values of held calls, and where
/// reviewer tools in other processes ask for them.
#[derive(Debug, Clone, Default)]
pub struct RevealConfig {
    pub(crate) allowed: Arc<[String]>,
    pub(crate) socket_dir: Option<PathBuf>,
}

impl RevealConfig {
    /// Reveal to these reviewers (user ids, as decisions name them), in
    /// process: [`PendingApproval::revealed`](super::PendingApproval::revealed).
    pub fn to(reviewers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        RevealConfig {
            allowed: reviewers.into_iter().map(Into::into).collect(),
            socket_dir: None,
        }
    }

    /// Also serve them to reviewer tools in other processes, over a socket
    /// in `dir` (created 0700) while each call is held; for a queue, use
    /// [`socket_dir_for_queue`].
    pub fn serve_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }

    /// Whether anyone may see clear values.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }
}

/// The private directory beside the queue file `queue` where a host serves
/// held calls' clear values: `<queue>.reveal`.
pub fn socket_dir_for_queue(queue: &Path) -> PathBuf {
    let mut name = queue.file_name().unwrap_or_default().to_os_string();
    name.push(".reveal");
    queue.with_file_name(name)
}

fn socket_path(dir: &Path, approval_id: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(approval_id.as_bytes()));
    dir.join(format!("{}.sock", &digest[..32]))
}

/// Why clear values could not be served or fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevealError {
    /// No host serves this approval's values: it is not held (any more), or
    /// its host was not told to reveal.
    #[error(
        "the host does not offer the clear values of approval `{0}` (it is not held, or nobody may see them)"
    )]
    NotOffered(String),
    /// The host refused this reviewer.
    #[error("the host refused: {0}")]
    Refused(String),
    /// The socket directory is not private to its owner.
    #[error(
        "`{0}` is not a private directory of this user (it must be a 0700 directory, not a link); remove it"
    )]
    Unsafe(PathBuf),
    /// Reading or writing the socket failed.
    #[error("cannot use the reveal socket `{path}`: {message}")]
    Io {
        /// The socket or its directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> RevealError {
    RevealError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What a reviewer tool asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    approval_id: String,
    reviewer: String,
}

/// What the host answers.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Values(Vec<ClearValue>),
    Refused(String),
}

#[cfg(unix)]
fn check_private(dir: &Path, owner: u32) -> Result<(), RevealError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_error(dir, e))?;
    let private =
        meta.file_type().is_dir() && meta.permissions().mode() & 0o077 == 0 && meta.uid() == owner;
    if private {
        Ok(())
    } else {
        Err(RevealError::Unsafe(dir.to_path_buf()))
    }
}

/// While alive, one held call's clear values are served on its socket; on
/// drop (the hold ended) the socket is closed and removed.
pub(crate) struct RevealServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RevealServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl RevealServer {
    /// Serves `revealed` for `approval_id` in `dir` until dropped.
    #[cfg(unix)]
    pub(crate) fn start(
        dir: &Path,
        approval_id: &str,
        revealed: Revealed,
    ) -> Result<RevealServer, RevealError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| io_error(dir, e))?,
            Err(e) => return Err(io_error(dir, e)),
            Ok(_) => {}
        }
        let path = socket_path(dir, approval_id);
        // A socket left by a host that was killed.
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| io_error(&path, e))?;
        let server = |task| RevealServer {
            path: path.clone(),
            task,
        };
        // The directory is 0700 and ours (the socket we just made says who
        // we are): nobody else can reach the socket.
        let me = std::fs::symlink_metadata(&path)
            .map_err(|e| io_error(&path, e))?
            .uid();
        let checked = check_private(dir, me).and_then(|()| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error(&path, e))
        });
        if let Err(e) = checked {
            drop(server(tokio::spawn(async {})));
            return Err(e);
        }
        let approval_id = approval_id.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let peer = stream.peer_cred().map(|c| c.uid()).ok();
                if peer != Some(me) {
                    continue;
                }
                let revealed = revealed.clone();
                let approval_id = approval_id.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        SOCKET_TIMEOUT,
                        answer(stream, &approval_id, &revealed),
                    )
                    .await;
                });
            }
        });
        Ok(server(task))
    }

    /// Not on this platform: there is no private socket to serve on.
    #[cfg(not(unix))]
    pub(crate) fn start(
        dir: &Path,
        _approval_id: &str,
        _revealed: Revealed,
    ) -> Result<RevealServer, RevealError> {
        Err(io_error(dir, "unix sockets are not available here"))
    }
}

#[cfg(unix)]
async fn answer(
    stream: tokio::net::UnixStream,
    approval_id: &str,
    revealed: &Revealed,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<Ask>(&line) {
        Err(e) => Answer::Refused(format!("the request is not an ask: {e}")),
        Ok(ask) if ask.approval_id != approval_id => {
            Answer::Refused("this socket is for another approval".into())
        }
        Ok(ask) => match revealed.for_reviewer(&ask.reviewer) {
            Some(values) => Answer::Values(values.to_vec()),
            None => Answer::Refused(format!(
                "the operator does not allow reviewer `{}` to see the clear values (`mandate run --reveal-to`)",
                crate::terminal::escape(&ask.reviewer)
            )),
        },
    };
    let mut text = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write.write_all(&text).await?;
    write.shutdown().await
}

/// Asks the host holding `approval_id` (its socket in `dir`) for the clear
/// values, as `reviewer`. [`RevealError::NotOffered`] when no host holds
/// that call with values to reveal.
#[cfg(unix)]
pub async fn fetch(
    dir: &Path,
    approval_id: &str,
    reviewer: &str,
) -> Result<Vec<ClearValue>, RevealError> {
    use std::os::unix::fs::MetadataExt;
    let path = socket_path(dir, approval_id);
    let socket = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(_) => return Err(RevealError::NotOffered(approval_id.to_string())),
    };
    // Only a socket of the directory's owner, in a private directory, and
    // only a server running as that owner, is believed.
    check_private(dir, socket.uid())?;
    let exchange = async {
        let stream = match tokio::net::UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(RevealError::NotOffered(approval_id.to_string()));
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        if peer != Some(socket.uid()) {
            return Err(RevealError::Unsafe(dir.to_path_buf()));
        }
        let (read, mut write) = stream.into_split();
        let mut ask = serde_json::to_vec(&Ask {
            approval_id: approval_id.to_string(),
            reviewer: reviewer.to_string(),
        })
        .map_err(|e| io_error(&path, e))?;
        ask.push(b'\n');
        write
            .write_all(&ask)
            .await
            .map_err(|e| io_error(&path, e))?;
        let mut text = Vec::new();
        read.take(MAX_ANSWER_BYTES)
            .read_to_end(&mut text)
            .await
            .map_err(|e| io_error(&path, e))?;
        match serde_json::from_slice::<Answer>(&text) {
            Ok(Answer::Values(values)) => Ok(values),
            Ok(Answer::Refused(why)) => Err(RevealError::Refused(why)),
            Err(_) if text.is_empty() => Err(RevealError::NotOffered(approval_id.to_string())),
            Err(e) => Err(io_error(&path, e)),
        }
    };
    tokio::time::timeout(SOCKET_TIMEOUT, exchange)
        .await
        .map_err(|_| io_error(&path, "the host did not answer in time"))?
}

/// Not on this platform.
#[cfg(not(unix))]
pub async fn fetch(
    _dir: &Path,
    approval_id: &str,
    _reviewer: &str,
) -> Result<Vec<ClearValue>, RevealError> {
    Err(RevealError::NotOffered(approval_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_clear_value_behind_each_commitment_is_found_and_debug_hides_it() {
        let allowed: Arc<[String]> = vec!["carol".to_string()].into();
        let commitment = json!({"redacted": "sha256:00", "key_id": "k"});
        let redacted = json!({"to": "bob@example.com", "body": commitment,
                              "att": [{"content": commitment}, {"content": "x"}]});
        let clear = json!({"to": "bob@example.com", "body": "the launch slips",
                           "att": [{"content": "secret one"}, {"content": "x"}]});
        let r = Revealed::collect(&allowed, &redacted, &clear);
        let values = r.for_reviewer("carol").unwrap();
        let mut found: Vec<(&str, &Value)> =
            values.iter().map(|v| (v.path.as_str(), &v.value)).collect();
        found.sort_by_key(|(p, _)| *p);
        assert_eq!(
            found,
            [
                ("arguments.att[0].content", &json!("secret one")),
                ("arguments.body", &json!("the launch slips")),
            ]
        );
        assert!(r.for_reviewer("bob").is_none());
        assert!(!format!("{r:?}").contains("launch"));
        assert!(Revealed::collect(&Arc::from(Vec::new()), &redacted, &clear).is_empty());
    }
}
