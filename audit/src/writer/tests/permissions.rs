//! What the writer creates is private to its owner (directories 0700, files 0600, whatever the
//! umask), and another local user can neither read the log nor hold its lock.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::{AuditConfig, AuditError, AuditLog, CHECKPOINT_FILE, CheckpointSigner, TORN_DIR};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The mode of every entry under `dir` (itself included), by path relative to it.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out = vec![(".".to_owned(), mode(dir))];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            out.push((name, mode(&path)));
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A log with two segments, a checkpoint file and a repaired torn tail.
fn full_log(dir: &Path, config: impl Fn() -> AuditConfig) {
    let log = AuditLog::open_with(dir, config()).unwrap();
    for n in 0..6 {
        log.append(&body(n, 300)).unwrap();
    }
    log.close().unwrap();
    let last = list_segments(dir).unwrap().last().unwrap().path.clone();
    let mut file = fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut file, b"{\"seq\":99,\"torn").unwrap();
    drop(file);
    let log = AuditLog::open_with(dir, config()).unwrap();
    log.close().unwrap();
    assert!(dir.join(TORN_DIR).is_dir(), "no torn tail was set aside");
    assert!(dir.join(CHECKPOINT_FILE).is_file(), "no checkpoint file");
    assert!(segment_files(dir).len() > 1, "the log did not rotate");
}

fn signed_small_segments(signer: &Arc<CheckpointSigner>) -> AuditConfig {
    AuditConfig {
        checkpoint_signer: Some(Arc::clone(signer)),
        segment_max_bytes: 1024,
        ..AuditConfig::default()
    }
}

#[test]
fn every_directory_and_file_the_writer_creates_is_private_to_its_owner() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    full_log(&dir, || signed_small_segments(&signer));
    for (name, mode) in modes(&dir) {
        let expected = if dir.join(&name).is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode, expected, "`{name}` has mode {mode:o}");
    }
}

/// Runs `command` as the unprivileged user `nobody` (tests run as root in CI).
fn as_nobody(args: &[&str]) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "nobody", "--"]).args(args);
    command
}

fn is_root() -> bool {
    // The owner of a file this process just created is its effective user.
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&probe.as_file().metadata().unwrap()) == 0
}

/// Waits until `child` has exited or `wait` passed; returns whether it is still running.
fn still_running(child: &mut Child, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn another_user_cannot_read_the_log_or_hold_its_lock() {
    if !is_root() {
        // Without root there is no second user to be: say so rather than pass silently.
        eprintln!("skipped: needs root to run a process as `nobody` (CI runs as root)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    // Where logs usually live (/var/log): a directory everyone may enter.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = temp.path().join("audit");
    let log = AuditLog::open(&dir).unwrap();
    log.append(&body(1, 10)).unwrap();
    log.close().unwrap();

    let read = as_nobody(&["cat", first_segment(&dir).to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!read.status.success(), "`nobody` read the log");

    // `nobody` tries to take every lock it could: the directory's and any file in it.
    let mut holders = Vec::new();
    let mut candidates = vec![dir.clone()];
    candidates.extend(fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()));
    for path in &candidates {
        let mut child = as_nobody(&["flock", "--nonblock", path.to_str().unwrap(), "sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if still_running(&mut child, Duration::from_millis(500)) {
            holders.push(child);
        }
    }
    let opened = AuditLog::open(&dir);
    for mut child in holders {
        let _ = child.kill();
        let _ = child.wait();
    }
    match opened {
        Ok(log) => log.close().unwrap(),
        Err(AuditError::Locked { .. }) => panic!("another user held the writer's lock"),
        Err(error) => panic!("the log did not open: {error}"),
    }
}

#[test]
fn a_group_readable_log_lets_the_group_read_but_not_write() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    full_log(&dir, || AuditConfig {
        group_readable: true,
        ..signed_small_segments(&signer)
    });
    for (name, mode) in modes(&dir) {
        let expected = if dir.join(&name).is_dir() {
            0o750
        } else {
            0o640
        };
        assert_eq!(mode, expected, "`{name}` has mode {mode:o}");
    }
}

#[test]
fn a_log_directory_every_user_may_write_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let error = AuditLog::open(&dir).unwrap_err();
    assert!(
        matches!(&error, AuditError::Open { error, .. } if error.kind() == std::io::ErrorKind::PermissionDenied),
        "{error}"
    );
    assert!(error.to_string().contains("chmod 700"), "{error}");
    assert!(segment_files(&dir).is_empty());
}

#[test]
fn a_lock_file_another_user_owns_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to give a file to another user (CI runs as root)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    AuditLog::open(&dir).unwrap().close().unwrap();
    let lock = dir.join(crate::LOCK_FILE);
    let status = Command::new("chown")
        .arg("nobody")
        .arg(&lock)
        .status()
        .unwrap();
    assert!(status.success());
    let error = AuditLog::open(&dir).unwrap_err();
    assert!(error.to_string().contains("is owned by uid"), "{error}");
}

#[test]
fn the_query_index_and_its_journal_files_are_private_too() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("audit");
    let log = AuditLog::open(&dir).unwrap();
    log.append(&body(1, 10)).unwrap();
    log.close().unwrap();
    let mut index = crate::AuditIndex::open(&dir).unwrap();
    index.catch_up().unwrap();
    let files: Vec<_> = modes(&dir)
        .into_iter()
        .filter(|(name, _)| name.starts_with(crate::INDEX_FILE))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for (name, mode) in files {
        assert_eq!(mode, 0o600, "`{name}` has mode {mode:o}");
    }
}
