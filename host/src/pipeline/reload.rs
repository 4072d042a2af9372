//! Hot reload: a running guard swaps its whole policy set at once.
//!
//! A candidate is loaded and validated in full before anything changes; a
//! bad one is rejected with its errors and the set in force stays. A good one
//! is recorded (`policy_reload`, durable) and only then swapped in. Each call
//! takes one snapshot of the set when it starts and decides with it to the
//! end, so no decision ever mixes two sets, and its record names the digest of
//! the set that decided it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use super::record::PolicyReloadRecord;
use super::{Guard, GuardError, check_tools};
use crate::audit::AuditError;
use crate::policy::{Policies, PolicyLoadError};

/// A reload that took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Digest of the set that was in force.
    pub previous_digest: String,
    /// Digest of the set now in force.
    pub digest: String,
    /// Number of policies now in force.
    pub policies: usize,
    /// Sequence number of the `policy_reload` record.
    pub seq: u64,
}

/// Why a candidate policy set was not swapped in. The previous set stays in
/// force in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The candidate does not load: parse, validation or entity errors.
    #[error("policies from `{origin}` rejected, the previous set stays in force:\n{error}")]
    Invalid {
        /// Where the candidate came from.
        origin: String,
        /// Every problem found.
        error: PolicyLoadError,
    },
    /// The candidate's schema lacks a registered tool's action.
    #[error("policies from `{origin}` rejected, the previous set stays in force: {error}")]
    Tools {
        /// Where the candidate came from.
        origin: String,
        /// The missing action.
        error: GuardError,
    },
    /// The reload could not be recorded, so it did not happen.
    #[error("policies from `{origin}` not swapped in: the audit log is unavailable: {error}")]
    Audit {
        /// Where the candidate came from.
        origin: String,
        /// The log's error.
        error: AuditError,
    },
}

impl Guard {
    /// Loads `dir` as a candidate policy set and swaps it in (see
    /// [`Guard::reload`]).
    pub async fn reload_dir(&self, dir: &Path) -> Result<Reloaded, ReloadError> {
        let source = dir.display().to_string();
        match Policies::load_dir(dir) {
            Ok(policies) => self.reload(policies, &source).await,
            Err(error) => {
                let errors = error.problems().iter().map(ToString::to_string).collect();
                self.record_rejection(&source, None, errors).await;
                Err(ReloadError::Invalid {
                    origin: source,
                    error,
                })
            }
        }
    }

    /// Swaps in `policies` (from `source`, for the record) atomically: calls
    /// already deciding finish with the set they started with; calls that
    /// start after this returns use the new one. The `policy_reload` record is
    /// durable before the swap.
    pub async fn reload(&self, policies: Policies, source: &str) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        if let Err(error) = check_tools(&self.inner.tools, &policies) {
            self.record_rejection(
                source,
                Some(policies.digest().to_string()),
                vec![error.to_string()],
            )
            .await;
            return Err(ReloadError::Tools {
                origin: source.to_string(),
                error,
            });
        }
        let previous_digest = self.inner.policies.load().digest().to_string();
        let record = PolicyReloadRecord {
            kind: "policy_reload",
            status: "applied",
            source: source.to_string(),
            previous_digest: previous_digest.clone(),
            digest: Some(policies.digest().to_string()),
            policies: Some(policies.len()),
            errors: Vec::new(),
        };
        let appended = self
            .inner
            .audit
            .append_async(&record)
            .await
            .map_err(|error| ReloadError::Audit {
                origin: source.to_string(),
                error,
            })?;
        let reloaded = Reloaded {
            previous_digest,
            digest: policies.digest().to_string(),
            policies: policies.len(),
            seq: appended.seq,
        };
        self.inner.policies.store(Arc::new(policies));
        Ok(reloaded)
    }

    /// Reloads `dir` on every SIGHUP, as a task on the current tokio runtime,
    /// passing each result to `report`. The handler is installed before this
    /// returns, so from then on a SIGHUP never terminates the process. Abort
    /// the returned task to stop listening.
    pub fn reload_on_sighup(
        &self,
        dir: PathBuf,
        report: impl Fn(&Path, Result<Reloaded, ReloadError>) + Send + Sync + 'static,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let mut hangups = signal(SignalKind::hangup())?;
        let guard = self.clone();
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                report(&dir, guard.reload_dir(&dir).await);
            }
        }))
    }

    /// Records a rejected candidate. Best effort: the reload is refused
    /// whether or not this record can be written, and a log that cannot be
    /// written refuses the next call anyway.
    async fn record_rejection(&self, source: &str, digest: Option<String>, errors: Vec<String>) {
        let record = PolicyReloadRecord {
            kind: "policy_reload",
            status: "rejected",
            source: source.to_string(),
            previous_digest: self.inner.policies.load().digest().to_string(),
            digest,
            policies: None,
            errors,
        };
        let _ = self.inner.audit.append_async(&record).await;
    }
}
