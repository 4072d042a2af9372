//! The modes of what a log writes: private to its owner (directories 0700, files 0600), or
//! readable by the owner's group when the operator asks for it (0750, 0640). The modes are set
//! explicitly after creation, so the process umask neither widens nor narrows them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The modes of a log's directories and files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    pub(crate) dir: u32,
    pub(crate) file: u32,
}

impl Modes {
    /// 0700/0600, or 0750/0640 when `group_readable`.
    pub(crate) const fn new(group_readable: bool) -> Self {
        if group_readable {
            Modes {
                dir: 0o750,
                file: 0o640,
            }
        } else {
            Modes {
                dir: 0o700,
                file: 0o600,
            }
        }
    }

    /// Creates the directory `path` (not its parents) with the directory mode.
    #[cfg_attr(not(feature = "writer"), allow(dead_code))]
    pub(crate) fn create_dir(self, path: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new().mode(self.dir).create(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.dir))
    }

    /// Options that create a file with the file mode and never follow a symlink at its name.
    pub(crate) fn options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .mode(self.file)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        options
    }

    /// Sets the file mode on a file just created (the umask may have narrowed it).
    pub(crate) fn set_file(self, file: &File) -> io::Result<()> {
        file.set_permissions(std::fs::Permissions::from_mode(self.file))
    }
}
