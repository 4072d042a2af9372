//! Fail closed, end to end: while the audit log cannot be written, a guarded call gets
//! `audit-unavailable` and the tool does not run; once the log is writable again the next call
//! goes through and the log, with its `audit_outage` record, verifies.
//!
//! The calls go through a session's call path directly (the path a guest's import call takes),
//! so that the test can heal the log between two calls: a held call's `approval_requested`
//! record is written before the reviewer is asked, so no reviewer hook sits between a refused
//! call and the next one's first append.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{Env, email_call};
use mandate::audit::{Fault, FaultPlan, list_segments};
use mandate::pipeline::{
    BoxFuture, PendingApproval, ReviewDecision, ReviewError, Reviewer, ToolCallError, Verdict,
};
use serde_json::{Value, json};

/// Something done to the log while a call waits for its review, before its decision record.
type Action = Box<dyn FnOnce() + Send>;

/// A reviewer that, for each call it reviews, first runs the next queued action, then approves
/// as carol. It lets a test break and heal the log between two calls of one guest run.
#[derive(Clone, Default)]
struct Saboteur(Arc<Mutex<VecDeque<Action>>>);

impl Saboteur {
    fn then(&self, action: impl FnOnce() + Send + 'static) {
        self.0.lock().unwrap().push_back(Box::new(action));
    }
}

impl Reviewer for Saboteur {
    fn name(&self) -> &str {
        "saboteur"
    }

    fn review<'a>(
        &'a self,
        _pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        let action = self.0.lock().unwrap().pop_front();
        if let Some(action) = action {
            action();
        }
        Box::pin(async {
            Ok(ReviewDecision {
                decision: Verdict::Approve,
                reviewer: "carol".into(),
                reason: Some("fine".into()),
                scope: Default::default(),
            })
        })
    }
}

/// The active segment of the log in `dir`.
fn active_segment(dir: &Path) -> PathBuf {
    list_segments(dir).unwrap().pop().unwrap().path
}

/// Runs two approved emails, the log broken by the reviewer of the first and healed before the
/// second, and checks what the caller got, what was sent and what the log says. Returns the
/// outage record.
async fn run_broken_then_healed(
    env: &Env,
    saboteur: &Saboteur,
    break_log: impl FnOnce() + Send + 'static,
    heal_log: impl FnOnce() + Send + 'static,
    expected_error: &str,
) -> Value {
    saboteur.then(break_log);
    let email = |body: &str| email_call(body)["arguments"].to_string();
    let session = env
        .guard
        .start_session(common::session(), None)
        .await
        .unwrap();

    // The first email is held: its `approval_requested` record is durable, then the reviewer
    // breaks the log, so its decision cannot be recorded and the call is refused.
    let refused = session.call("send_email", &email("while broken")).await;
    let Err(ToolCallError::AuditUnavailable(message)) = &refused else {
        panic!("expected audit-unavailable: {refused:?}");
    };
    assert!(message.contains(expected_error), "{message}");
    assert!(env.outbox().is_empty(), "the refused call ran");

    heal_log();
    session
        .call("send_email", &email("after healing"))
        .await
        .unwrap();
    session.end(&Ok(String::new())).await.unwrap();

    let outbox = env.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["body"], "after healing");

    assert_eq!(
        common::kinds(&env.records()),
        [
            "log_start",
            "session_start",
            "approval_requested",
            "audit_outage",
            "approval_requested",
            "decision",
            "outcome",
            "session_end"
        ]
    );
    env.assert_verifies(8);
    let outage = env.records_of("audit_outage").remove(0);
    assert_eq!(outage["refused_appends"], 1, "{outage}");
    assert!(
        outage["error"].as_str().unwrap().contains(expected_error),
        "{outage}"
    );
    let decision = &env.records_of("decision")[0];
    assert_eq!(
        decision["call_id"], "sess_example_01:2",
        "the refused call has no decision record"
    );
    outage
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_denied_refuses_the_call_until_the_log_is_writable_again() {
    let saboteur = Saboteur::default();
    let env = Env::builder().reviewer(saboteur.clone()).build();
    let faults = env.guard.audit().faults();
    let heal = faults.clone();
    run_broken_then_healed(
        &env,
        &saboteur,
        move || faults.set(Some(FaultPlan::always(Fault::PermissionDenied))),
        move || heal.set(None),
        "permission denied",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_moved_away_refuses_the_call_until_it_is_moved_back() {
    let saboteur = Saboteur::default();
    let env = Env::builder().reviewer(saboteur.clone()).build();
    let segment = active_segment(&env.audit_path);
    let away = env.dir.path().join("moved-away.jsonl");
    let (from, to) = (segment.clone(), away.clone());
    let outage = run_broken_then_healed(
        &env,
        &saboteur,
        move || std::fs::rename(&from, &to).unwrap(),
        move || std::fs::rename(&away, &segment).unwrap(),
        "was removed or moved away underneath the writer",
    )
    .await;
    assert!(
        outage["error"]
            .as_str()
            .unwrap()
            .contains(&active_segment(&env.audit_path).display().to_string()),
        "the error names the segment: {outage}"
    );
}

/// A real tmpfs of `size` at `at`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts it. The test runs as root in CI, where mounting works: a failed mount fails the
    /// test (it must not quietly fall back to an injected error); an unprivileged developer gets
    /// a skip that says so.
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(at).unwrap();
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .unwrap();
        if output.status.success() {
            println!("disk-full mode: a real {size} tmpfs at `{}`", at.display());
            return Some(SmallDisk(at.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&output.stderr);
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        assert!(
            !root && std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs as root or in CI: {why}"
        );
        println!("skipped: cannot mount a tmpfs as this user ({why})");
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_the_call_until_space_is_freed() {
    let place = tempfile::tempdir().unwrap();
    let mount = place.path().join("small-disk");
    let Some(disk) = SmallDisk::mount(&mount, "512k") else {
        return;
    };
    let saboteur = Saboteur::default();
    let env = Env::builder()
        .reviewer(saboteur.clone())
        .audit_path(mount.join("audit"))
        .build();
    let filler = mount.join("filler");
    let fill = filler.clone();
    // The first call's decision record is larger than a page, so the slack at the end of the
    // segment's last page cannot hold it: it needs a page the full disk does not have.
    let big_subject = "s".repeat(9000);
    saboteur.then(move || {
        use std::io::Write;
        let mut file = std::fs::File::create(&fill).unwrap();
        let chunk = vec![b'f'; 4096];
        while file.write_all(&chunk).is_ok() {}
        file.sync_all().ok();
    });
    let session = env
        .guard
        .start_session(common::session(), None)
        .await
        .unwrap();
    let big = json!({"to": "bob@example.com", "subject": big_subject, "body": "while full"});
    let refused = session.call("send_email", &big.to_string()).await;
    let Err(ToolCallError::AuditUnavailable(message)) = &refused else {
        panic!("expected audit-unavailable: {refused:?}");
    };
    assert!(message.contains("No space left on device"), "{message}");

    std::fs::remove_file(&filler).unwrap();
    let after = email_call("after freeing")["arguments"].to_string();
    session.call("send_email", &after).await.unwrap();
    session.end(&Ok(String::new())).await.unwrap();

    // The tool ran only for the call whose decision was recorded.
    let outbox = env.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["body"], "after freeing");
    assert_eq!(
        common::kinds(&env.records()),
        [
            "log_start",
            "session_start",
            "approval_requested",
            "audit_outage",
            "approval_requested",
            "decision",
            "outcome",
            "session_end"
        ]
    );
    env.assert_verifies(8);
    let outage = env.records_of("audit_outage").remove(0);
    assert_eq!(outage["refused_appends"], 1, "{outage}");
    assert!(
        outage["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{outage}"
    );
    assert_eq!(
        env.records_of("decision")[0]["call_id"],
        "sess_example_01:2"
    );
    drop(env);
    drop(disk);
}
