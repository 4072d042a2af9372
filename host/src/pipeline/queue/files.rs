//! The queue's files on disk: a private directory, files only the user can
//! read, and the key that authenticates decisions. Nothing in the queue is
//! trusted because of where it was found: a file another user could have
//! created, replaced or written is refused before SQLite opens it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::QueueError;

/// Length of the queue key in bytes.
pub(super) const KEY_LEN: usize = 32;

/// The key that authenticates decisions, next to the queue file.
pub(super) fn key_path(queue: &Path) -> PathBuf {
    let mut name = queue.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// A queue file or directory that is refused, and why.
struct Refused {
    path: PathBuf,
    message: String,
}

impl Refused {
    fn of(self, queue: &Path) -> QueueError {
        QueueError::Unsafe {
            queue: queue.to_path_buf(),
            path: self.path,
            message: self.message,
        }
    }
}

fn unsafe_file(path: &Path, message: impl Into<String>) -> Refused {
    Refused {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Makes sure the queue at `path` lives in a private directory and that
/// every file of it that exists belongs to the user and is readable by
/// nobody else, and creates the database file 0600 when it is missing (so
/// that SQLite, which then makes its `-wal` and `-shm` files with the same
/// mode, never creates one readable by others). A missing directory is left
/// for SQLite's open to report.
pub(super) fn prepare(path: &Path) -> Result<(), QueueError> {
    prepare_files(path).map_err(|r| r.of(path))
}

fn prepare_files(path: &Path) -> Result<(), Refused> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !check_dir(&dir)? {
        return Ok(());
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [
        path.to_path_buf(),
        PathBuf::from(wal),
        PathBuf::from(shm),
        key_path(path),
    ] {
        check_existing_file(&file)?;
    }
    if std::fs::symlink_metadata(path).is_err() {
        create_private(path)?;
    }
    Ok(())
}

/// The queue key, created (32 random bytes, 0600) if missing.
pub(super) fn key(path: &Path) -> Result<[u8; KEY_LEN], QueueError> {
    read_or_create_key(&key_path(path)).map_err(|r| r.of(path))
}

/// The directory must be a real directory (not a symlink), owned by the
/// user and writable by nobody else: then no other user can put, replace or
/// swap a file in it between a check and SQLite's open. `false` when it
/// does not exist.
fn check_dir(dir: &Path) -> Result<bool, Refused> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(unsafe_file(dir, format!("cannot read the directory: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_file(
            dir,
            "the queue directory is a symbolic link; give the real directory",
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_file(dir, "not a directory"));
    }
    if meta.uid() != euid() {
        return Err(unsafe_file(
            dir,
            format!(
                "the queue directory belongs to uid {}, not to this user (uid {}); use a directory of your own",
                meta.uid(),
                euid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_file(
            dir,
            format!(
                "the queue directory is writable by other users (mode {:o}); hint: `chmod 700` it",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(true)
}

/// An existing queue file must be a regular file (not a symlink), owned by
/// the user, with no permission for group or others.
fn check_existing_file(file: &Path) -> Result<(), Refused> {
    let meta = match std::fs::symlink_metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unsafe_file(file, format!("cannot read it: {e}"))),
    };
    check_meta(file, &meta)
}

fn check_meta(file: &Path, meta: &std::fs::Metadata) -> Result<(), Refused> {
    if meta.file_type().is_symlink() {
        return Err(unsafe_file(
            file,
            "the queue file is a symbolic link; mandate does not follow links here",
        ));
    }
    if !meta.is_file() {
        return Err(unsafe_file(file, "not a regular file"));
    }
    if meta.uid() != euid() {
        return Err(unsafe_file(
            file,
            format!(
                "the file belongs to uid {}, not to this user (uid {}); another user may have made it: remove it",
                meta.uid(),
                euid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_file(
            file,
            format!(
                "other users may read or write it (mode {:o}); hint: `chmod 600` it",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits();
    // The flags are small constants; they always fit.
    o.mode(0o600)
        .custom_flags(i32::try_from(flags).unwrap_or_default());
    o
}

fn create_private(file: &Path) -> Result<File, Refused> {
    open_options()
        .write(true)
        .read(true)
        .create_new(true)
        .open(file)
        .map_err(|e| unsafe_file(file, format!("cannot create it: {e}")))
}

fn read_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], Refused> {
    match read_key(path) {
        Err(KeyRead::Missing) => {}
        Err(KeyRead::Refused(r)) => return Err(r),
        Ok(key) => return Ok(key),
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key)
        .map_err(|e| unsafe_file(path, format!("no randomness for the key: {e}")))?;
    // Written whole under a name of its own, then linked into place: a
    // process opening the queue at the same time reads either no key or
    // the whole key, and of two processes creating one, the second reads
    // the first one's key.
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| unsafe_file(path, format!("no randomness for the key: {e}")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", hex::encode(suffix)));
    let tmp = PathBuf::from(tmp);
    let written = create_private(&tmp).and_then(|mut f| {
        f.write_all(&key)
            .and_then(|()| f.sync_all())
            .map_err(|e| unsafe_file(&tmp, format!("cannot write the queue key: {e}")))
    });
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(unsafe_file(
            path,
            format!("cannot create the queue key: {e}"),
        )),
    });
    // Best effort: a leftover temporary key is private and unused.
    let _ = std::fs::remove_file(&tmp);
    if linked? {
        return Ok(key);
    }
    match read_key(path) {
        Ok(key) => Ok(key),
        Err(KeyRead::Refused(r)) => Err(r),
        Err(KeyRead::Missing) => Err(unsafe_file(
            path,
            "the queue key vanished while it was made",
        )),
    }
}

enum KeyRead {
    Missing,
    Refused(Refused),
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], KeyRead> {
    let mut f = match open_options().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyRead::Missing),
        Err(e) => {
            return Err(KeyRead::Refused(unsafe_file(
                path,
                format!("cannot open the queue key (a symbolic link is refused): {e}"),
            )));
        }
    };
    let refused = |message: String| KeyRead::Refused(unsafe_file(path, message));
    let meta = f
        .metadata()
        .map_err(|e| refused(format!("cannot read it: {e}")))?;
    check_meta(path, &meta).map_err(KeyRead::Refused)?;
    let mut bytes = Vec::with_capacity(KEY_LEN);
    Read::by_ref(&mut f)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(format!("cannot read it: {e}")))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        refused(format!(
            "the queue key must be {KEY_LEN} bytes, this file has {}; remove it and a new key is made (decisions already in the queue are then refused)",
            if bytes.len() > KEY_LEN {
                "more".to_string()
            } else {
                bytes.len().to_string()
            }
        ))
    })
}
