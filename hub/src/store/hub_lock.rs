//! One hub per SQLite database: a hub running on a SQLite file holds an
//! exclusive advisory lock (`flock`) on `FILE.hub-lock` beside it for as
//! long as it runs, so a second hub on the same file is refused with a
//! clear error instead of two hubs polling, delivering and working the same
//! inbox at once. The kernel drops the lock when the hub's process ends,
//! however it ends (SIGKILL included), so a crashed hub never blocks the
//! next one.
//!
//! The lock is the hub's, not the store's: tests and tools may open the
//! same database with [`super::Store::open`] while a hub runs.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Why the hub cannot have the SQLite database to itself.
#[derive(Debug, thiserror::Error)]
pub enum HubLockError {
    /// Another hub holds it.
    #[error(
        "the SQLite database {database} is already used by another hub{holder}: SQLite serves one hub only: stop the other hub first"
    )]
    Taken {
        /// The database file.
        database: String,
        /// `" (pid N)"` when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The lock on a SQLite database, held until dropped (or the process ends).
#[derive(Debug)]
pub struct HubLock {
    _lock: Flock<File>,
}

/// The lock file of the SQLite database at `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".hub-lock");
    PathBuf::from(name)
}

impl HubLock {
    /// Takes the lock of the SQLite database at `database`, or says which
    /// hub holds it. Writes this process's pid into the lock file.
    pub fn acquire(database: &Path) -> Result<HubLock, HubLockError> {
        let path = lock_path(database);
        let io = |source: std::io::Error| HubLockError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let holder = match file.read_to_string(&mut text) {
                    Ok(_) => match text.trim().parse::<u32>() {
                        Ok(pid) => format!(" (pid {pid})"),
                        Err(_) => String::new(),
                    },
                    Err(_) => String::new(),
                };
                return Err(HubLockError::Taken {
                    database: database.display().to_string(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(HubLock { _lock: lock })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("hub.db");
        let first = HubLock::acquire(&database).unwrap();
        let err = HubLock::acquire(&database).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        assert!(message.contains("SQLite serves one hub only"), "{message}");
        drop(first);
        HubLock::acquire(&database).unwrap();
    }
}
