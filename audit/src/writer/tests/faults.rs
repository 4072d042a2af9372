//! Fail closed: when the log cannot be written, appends fail saying why and write nothing;
//! once it can be written again they succeed, after an `audit_outage` record.

use std::process::Command;

use super::*;
use crate::{AuditError, AuditLog, Fault, FaultPlan};

/// Checks the `audit_outage` record that must come right before `seq`.
fn assert_outage_before(dir: &Path, seq: u64, refused: u64, error: &str) {
    let records = records(dir);
    let outage = records
        .iter()
        .find(|r| r["seq"] == seq - 1)
        .unwrap_or_else(|| panic!("no record before seq {seq}"));
    assert_eq!(outage["kind"], "audit_outage", "{outage}");
    assert_eq!(outage["refused_appends"], refused, "{outage}");
    assert_eq!(outage["error"], error, "{outage}");
    let since: jiff::Timestamp = outage["since"].as_str().unwrap().parse().unwrap();
    let until: jiff::Timestamp = outage["until"].as_str().unwrap().parse().unwrap();
    assert!(since <= until, "{outage}");
}

#[test]
fn injected_write_errors_refuse_appends_until_they_clear() {
    for fault in [Fault::PermissionDenied, Fault::Io, Fault::SyncFails] {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&body(1, 10)).unwrap();
        let head = log.head();
        let before = fs::read(first_segment(dir.path())).unwrap();

        log.faults().set(Some(FaultPlan::always(fault)));
        let first = log.append(&body(2, 10)).unwrap_err();
        let second = log.append(&body(3, 10)).unwrap_err();
        for error in [&first, &second] {
            assert!(matches!(error, AuditError::Write { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("(injected)"), "{message}");
            assert!(message.contains("nothing was recorded"), "{message}");
        }
        if fault == Fault::PermissionDenied {
            assert!(first.to_string().contains("permission denied"), "{first}");
        }
        assert_eq!(log.head(), head);
        assert_eq!(fs::read(first_segment(dir.path())).unwrap(), before);

        log.faults().set(None);
        let resumed = log.append(&body(4, 10)).unwrap();
        assert_eq!(resumed.seq, head.0 + 2);
        drop(log);
        assert_outage_before(dir.path(), resumed.seq, 2, &first.to_string());
        assert_eq!(
            kinds(dir.path()),
            ["log_start", "note", "audit_outage", "note"],
            "{fault:?}"
        );
        verified(dir.path());
    }
}

#[test]
fn a_removed_segment_refuses_appends_until_it_is_moved_back() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    log.append(&body(1, 10)).unwrap();
    let segment = first_segment(&log_dir);
    let away = dir.path().join("moved-away.jsonl");
    fs::rename(&segment, &away).unwrap();

    let error = log.append(&body(2, 10)).unwrap_err();
    assert!(
        matches!(error, AuditError::SegmentRemoved { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "audit log segment `{}` was removed or moved away underneath the writer; refusing to \
             append until it is restored (move the same file back)",
            segment.display()
        )
    );
    assert!(!segment.exists(), "nothing may recreate it");

    fs::rename(&away, &segment).unwrap();
    let resumed = log.append(&body(3, 10)).unwrap();
    drop(log);
    assert_outage_before(&log_dir, resumed.seq, 1, &error.to_string());
    verified(&log_dir);
}

#[test]
fn a_replaced_segment_refuses_appends_until_the_original_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    log.append(&body(1, 10)).unwrap();
    let segment = first_segment(&log_dir);
    let original = dir.path().join("original.jsonl");
    fs::rename(&segment, &original).unwrap();
    // A copy with the same bytes is still another file.
    fs::copy(&original, &segment).unwrap();
    let copy = fs::read(&segment).unwrap();

    let error = log.append(&body(2, 10)).unwrap_err();
    assert!(
        matches!(error, AuditError::SegmentReplaced { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("was replaced underneath the writer by another file"),
        "{error}"
    );
    assert_eq!(
        fs::read(&segment).unwrap(),
        copy,
        "the impostor is not written to"
    );

    fs::rename(&original, &segment).unwrap();
    let resumed = log.append(&body(3, 10)).unwrap();
    drop(log);
    assert_outage_before(&log_dir, resumed.seq, 1, &error.to_string());
    verified(&log_dir);
}

#[test]
fn a_segment_changed_underneath_refuses_appends_until_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    log.append(&body(1, 10)).unwrap();
    let segment = first_segment(dir.path());
    let intact = fs::read(&segment).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(b"{\"seq\":3,\"forged\":true}\n")
        .unwrap();

    let error = log.append(&body(2, 10)).unwrap_err();
    assert!(
        matches!(error, AuditError::SegmentChanged { expected, .. } if expected == intact.len() as u64),
        "{error:?}"
    );
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(intact.len() as u64)
        .unwrap();
    log.append(&body(3, 10)).unwrap();
    drop(log);
    verified(dir.path());
}

#[test]
fn a_log_whose_segments_were_all_deleted_is_not_started_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    log.append(&body(1, 10)).unwrap();
    fs::remove_file(first_segment(dir.path())).unwrap();
    let error = log.append(&body(2, 10)).unwrap_err();
    assert!(
        matches!(error, AuditError::SegmentRemoved { .. }),
        "{error:?}"
    );
    drop(log);
    // The torn folder (or checkpoints, or an index) shows a log was here.
    fs::create_dir(dir.path().join(crate::TORN_DIR)).unwrap();
    let error = AuditLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, AuditError::SegmentsMissing { .. }),
        "{error:?}"
    );
    assert!(segment_files(dir.path()).is_empty());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

use std::io::Write;

/// Whether this process runs as root (owns `/proc/self` as uid 0).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A real 256 KiB tmpfs at `mount`, or `None` (the caller injects the
/// disk-full error instead) where mounting is impossible: only for an
/// unprivileged developer, never as root or in CI, where a failed mount
/// fails the test rather than quietly testing less. Says which mode ran.
fn small_disk(mount: &Path) -> Option<Tmpfs> {
    match Tmpfs::mount(mount, "256k") {
        Ok(tmpfs) => {
            println!(
                "disk-full mode: a real 256 KiB tmpfs at `{}`",
                mount.display()
            );
            Some(tmpfs)
        }
        Err(why) => {
            assert!(
                !running_as_root() && std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs as root or in CI ({why}): the disk-full test must use a real filesystem here"
            );
            println!("disk-full mode: injected error (cannot mount a tmpfs as this user: {why})");
            fs::create_dir_all(mount).unwrap();
            None
        }
    }
}

#[test]
fn a_full_disk_refuses_appends_until_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small-disk");
    let tmpfs = small_disk(&mount);
    let log_dir = mount.join("audit");
    let log = AuditLog::open(&log_dir).unwrap();
    log.append(&body(1, 100)).unwrap();

    let filler = mount.join("filler");
    if tmpfs.is_some() {
        let mut file = fs::File::create(&filler).unwrap();
        let chunk = vec![b'f'; 4096];
        while file.write_all(&chunk).is_ok() {}
    } else {
        log.faults().set(Some(FaultPlan::always(Fault::DiskFull)));
    }

    // The segment's last page may still have room for a few records; then the disk is full.
    let segment = first_segment(&log_dir);
    let mut error = None;
    for n in 0..200 {
        let before = fs::read(&segment).unwrap();
        let head = log.head();
        match log.append(&body(n, 300)) {
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(fs::read(&segment).unwrap(), before, "a failed append wrote");
                assert_eq!(log.head(), head);
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the disk never filled up");
    let AuditError::Write { error: ref io, .. } = error else {
        panic!("expected a write error, got {error:?}");
    };
    assert_eq!(io.kind(), std::io::ErrorKind::StorageFull, "{error}");
    assert!(error.to_string().starts_with(&format!(
        "cannot write audit log segment `{}`: ",
        segment.display()
    )));
    let again = log.append(&body(500, 300)).unwrap_err();
    assert!(matches!(again, AuditError::Write { .. }), "{again:?}");

    if tmpfs.is_some() {
        fs::remove_file(&filler).unwrap();
    } else {
        log.faults().set(None);
    }
    let resumed = log.append(&body(501, 300)).unwrap();
    drop(log);
    assert_outage_before(&log_dir, resumed.seq, 2, &error.to_string());
    verified(&log_dir);
    drop(tmpfs);
}
