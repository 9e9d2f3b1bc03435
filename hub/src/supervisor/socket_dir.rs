//! The directory where plugins create their Unix sockets
//! (`PLUGIN_UNIX_SOCKET_DIR`): private (mode 0700) and short, because socket
//! paths are limited to 107 bytes.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The socket directory: a temporary one the hub created (and removes when
/// dropped), or the one `[hub] socket_dir` names (kept).
#[derive(Debug)]
pub enum SocketDir {
    /// Created by the hub under `/tmp`; removed on drop.
    Temporary(tempfile::TempDir),
    /// Configured by the operator; created if missing, never removed.
    Configured(PathBuf),
}

impl SocketDir {
    /// Creates a private directory `/tmp/sy-XXXXXX`, or makes sure the
    /// configured one exists (creating it with mode 0700).
    pub fn create(configured: Option<&Path>) -> std::io::Result<Self> {
        match configured {
            None => {
                let dir = tempfile::Builder::new().prefix("sy-").tempdir_in("/tmp")?;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
                Ok(SocketDir::Temporary(dir))
            }
            Some(path) => {
                if !path.is_dir() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(path)?;
                }
                Ok(SocketDir::Configured(path.to_path_buf()))
            }
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        match self {
            SocketDir::Temporary(dir) => dir.path(),
            SocketDir::Configured(path) => path,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_dir_is_private_short_and_removed() {
        let dir = SocketDir::create(None).unwrap();
        let path = dir.path().to_path_buf();
        assert!(
            path.to_string_lossy().starts_with("/tmp/sy-"),
            "{}",
            path.display()
        );
        assert!(path.as_os_str().len() < 20);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_configured_dir_is_created_and_kept() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("socks");
        let dir = SocketDir::create(Some(&path)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(path.is_dir());
    }
}
