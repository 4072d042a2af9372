//! Compile once: wasmtime's cache of compiled components, in a directory
//! only this user can write.
//!
//! Compiling an agent is the slowest thing the host does (20 to 30 seconds
//! for an 18 MB CPython component on two cores), and its result depends only
//! on the component's bytes and the engine's settings. wasmtime's own cache
//! keys the compiled artifacts by both, so a later run of the same component
//! under the same settings maps them instead of compiling. Loading a cached
//! artifact runs machine code from that directory, which is why it must be
//! one nobody else can write: the directory is created 0700, and one that
//! exists is used only if it belongs to this user and no other user can
//! write to it or replace it (every directory above it belongs to this user
//! or root and is not writable by others, or has the sticky bit, as `/tmp`).
//! No `unsafe` here: the deserializing is wasmtime's, behind these checks.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use wasmtime::{Cache, CacheConfig};

/// Why the compile cache cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory could not be created or read.
    #[error("cannot use compile cache `{dir}`: {error}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// Another user could write into the directory, so what it holds cannot
    /// be trusted to be what this user compiled.
    #[error(
        "compile cache `{dir}` cannot be trusted: {problem}; make it private (`chmod 700`, owned by you) or choose another directory"
    )]
    Untrusted {
        /// The directory checked (the cache or one above it).
        dir: PathBuf,
        /// What is wrong, e.g. `it is writable by other users (mode 0777)`.
        problem: String,
    },
    /// wasmtime refused the cache configuration.
    #[error("cannot set up the compile cache in `{dir}`: {reason}")]
    Config {
        /// The directory.
        dir: PathBuf,
        /// wasmtime's reason.
        reason: String,
    },
}

/// The default directory: `$XDG_CACHE_HOME/mandate/compiled`, else
/// `$HOME/.cache/mandate/compiled`; `None` when neither is set.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("mandate").join("compiled"))
}

/// Creates `dir` (0700, with any missing parents 0700) if it is missing,
/// checks that nobody else can write to it, and returns wasmtime's cache
/// over it.
pub(super) fn open(dir: &Path) -> Result<Cache, CacheError> {
    let io = |error| CacheError::Io {
        dir: dir.to_path_buf(),
        error,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let dir = dir.canonicalize().map_err(io)?;
    check_trusted(&dir, rustix::process::geteuid().as_raw())?;
    let mut config = CacheConfig::new();
    config.with_directory(&dir);
    Cache::new(config).map_err(|e| CacheError::Config {
        dir: dir.clone(),
        reason: format!("{e:#}"),
    })
}

/// Checks `dir` (canonical) and every directory above it for `uid`.
fn check_trusted(dir: &Path, uid: u32) -> Result<(), CacheError> {
    let untrusted = |at: &Path, problem: String| CacheError::Untrusted {
        dir: at.to_path_buf(),
        problem,
    };
    let meta = std::fs::symlink_metadata(dir).map_err(|error| CacheError::Io {
        dir: dir.to_path_buf(),
        error,
    })?;
    if meta.uid() != uid {
        return Err(untrusted(
            dir,
            format!("it belongs to user {}, not to you ({uid})", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            dir,
            format!(
                "it is writable by other users (mode {:04o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    // Whoever can write a directory above can move this one away and put
    // their own in its place.
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(parent) else {
            continue;
        };
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != uid && meta.uid() != 0 {
            return Err(untrusted(
                parent,
                format!(
                    "a directory above it belongs to user {}, who could replace it",
                    meta.uid()
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(untrusted(
                parent,
                format!(
                    "a directory above it is writable by other users (mode {:04o}), who could replace it",
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/compiled");
        open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_directory_others_can_write_is_refused_naming_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("compiled");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open(&dir).unwrap_err().to_string();
        assert!(
            err.contains("it is writable by other users (mode 0777)"),
            "{err}"
        );
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn a_writable_parent_without_the_sticky_bit_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("shared");
        std::fs::create_dir(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open(&parent.join("compiled")).unwrap_err().to_string();
        assert!(
            err.contains("a directory above it is writable by other users (mode 0777)"),
            "{err}"
        );
        // With the sticky bit (as /tmp) nobody else can move it away.
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
        open(&parent.join("compiled")).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let err = check_trusted(&dir, me().wrapping_add(1)).unwrap_err();
        assert!(err.to_string().contains("not to you"), "{err}");
    }
}
