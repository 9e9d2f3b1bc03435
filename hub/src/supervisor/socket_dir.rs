//! The directory where plugins create their Unix sockets
//! (`PLUGIN_UNIX_SOCKET_DIR`): private (mode 0700) and short, because socket
//! paths are limited to 107 bytes.
//!
//! A temporary directory is removed when the hub exits; a hub that is
//! SIGKILLed cannot do that, so each temporary directory records its hub's pid
//! in `hub.pid`, and every hub removes, when it starts, the directories of
//! hubs that are no longer alive.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Where temporary socket directories are made, and the prefix of their names.
const TEMP_PARENT: &str = "/tmp";
const TEMP_PREFIX: &str = "sy-";
/// The file in a temporary socket directory naming the hub that owns it.
const PID_FILE: &str = "hub.pid";

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
                remove_stale(Path::new(TEMP_PARENT));
                let dir = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .tempdir_in(TEMP_PARENT)?;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
                std::fs::write(dir.path().join(PID_FILE), std::process::id().to_string())?;
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

/// Removes the temporary socket directories under `parent` whose `hub.pid`
/// names a process that no longer exists (their hub was killed before it
/// could clean up). Directories without a readable pid file, of other users,
/// or of a live process are left alone; failures are logged, never fatal.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        if is_stale(&path) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    dir = %path.display(),
                    "Removed the socket directory of a hub that is no longer running."
                ),
                Err(error) => tracing::debug!(
                    dir = %path.display(),
                    error = %error,
                    "Cannot remove a stale socket directory."
                ),
            }
        }
    }
}

/// Whether `dir` is a socket directory whose hub is gone.
fn is_stale(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(PID_FILE)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks for existence only; EPERM means it exists (another user's).
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
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
        let pid = std::fs::read_to_string(path.join("hub.pid")).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn directories_of_dead_hubs_are_removed_and_others_kept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str, pid: Option<String>| {
            let dir = parent.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(pid) = pid {
                std::fs::write(dir.join("hub.pid"), pid).unwrap();
            }
            dir
        };
        // Above any pid_max the kernel allows: no such process.
        let dead_pid = i32::MAX;
        let dead = make("sy-dead01", Some(dead_pid.to_string()));
        let alive = make("sy-alive1", Some(std::process::id().to_string()));
        let no_pid = make("sy-nopid1", None);
        let garbage = make("sy-garbag", Some("not a pid".to_string()));
        let other = make("other-dir", Some(dead_pid.to_string()));

        remove_stale(parent.path());

        assert!(!dead.exists());
        for kept in [alive, no_pid, garbage, other] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
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
