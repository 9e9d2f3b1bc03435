//! [`Child`]: the hub's handle on one plugin process started by the spawner
//! thread. It offers what the supervisor needs from a child (its pid, an
//! async cancel-safe `wait`, `start_kill`, the stdout and stderr pipes) and
//! nothing else.
//!
//! The exit is learned from a pidfd (`pidfd_open`, readable once the process
//! has exited) registered with the tokio runtime, then collected with
//! `waitpid(pid, WNOHANG)`, so the process is always reaped by its own
//! handle. On kernels without pidfds (before 5.3) `SIGCHLD` wakes the wait
//! instead. Dropping a `Child` that was never reaped kills it with SIGKILL
//! and reaps it in the background, like tokio's `kill_on_drop`: a safety net
//! only, since the supervisor always stops and reaps explicitly.
//!
//! The system calls themselves are wrapped in the parent module, which holds
//! all of the hub's raw process code.

use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdout};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// What wakes a wait for the exit.
#[derive(Debug)]
enum ExitNotifier {
    /// The process's pidfd, readable once it has exited.
    Pidfd(AsyncFd<OwnedFd>),
    /// Every `SIGCHLD` the hub receives (kernels without pidfds).
    Sigchld(Signal),
}

impl ExitNotifier {
    /// Must be called in the runtime's context, before the first
    /// [`Child::try_wait`], so no exit can be missed.
    fn new(pid: libc::pid_t) -> io::Result<Self> {
        match super::pidfd_open(pid) {
            Ok(fd) => Ok(ExitNotifier::Pidfd(super::register_readable(fd)?)),
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) => {
                Ok(ExitNotifier::Sigchld(signal(SignalKind::child())?))
            }
            Err(error) => Err(error),
        }
    }

    /// Waits until the process may have changed state.
    async fn changed(&mut self) -> io::Result<()> {
        match self {
            ExitNotifier::Pidfd(fd) => {
                let mut ready = fd.readable().await?;
                ready.clear_ready();
                Ok(())
            }
            ExitNotifier::Sigchld(signal) => match signal.recv().await {
                Some(()) => Ok(()),
                None => Err(io::Error::other("the SIGCHLD stream ended")),
            },
        }
    }
}

/// A plugin process started by the spawner thread.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    exit: Option<ExitStatus>,
    notifier: Option<ExitNotifier>,
    /// Its stdout (the handshake line, then drained), until taken.
    pub stdout: Option<ChildStdout>,
    /// Its stderr (drained into the log), until taken.
    pub stderr: Option<ChildStderr>,
    /// The orphan guard watching its process group, if the hub has one.
    guard: Option<Arc<super::GuardLink>>,
}

impl Child {
    /// Wraps a freshly started, not yet reaped child of this process. Must be
    /// called in the tokio runtime's context. On error the caller still owns
    /// the (unreaped) process.
    pub(super) fn new(
        pid: libc::pid_t,
        stdout: std::process::ChildStdout,
        stderr: std::process::ChildStderr,
    ) -> io::Result<Self> {
        let notifier = ExitNotifier::new(pid)?;
        Ok(Child {
            pid,
            exit: None,
            notifier: Some(notifier),
            stdout: Some(ChildStdout::from_std(stdout)?),
            stderr: Some(ChildStderr::from_std(stderr)?),
            guard: None,
        })
    }

    /// Puts its process group (it leads one) under the orphan guard's watch
    /// until this handle is dropped after the reap.
    pub(super) fn guard_with(&mut self, guard: Arc<super::GuardLink>) {
        guard.watch_plugin(self.pid);
        self.guard = Some(guard);
    }

    /// Its pid, until it has been reaped (then `None`, as with tokio's
    /// `Child::id`).
    pub fn id(&self) -> Option<u32> {
        match self.exit {
            None => u32::try_from(self.pid).ok(),
            Some(_) => None,
        }
    }

    /// Reaps it if it has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let status = super::try_reap(self.pid)?;
        if status.is_some() {
            self.exit = status;
            // The pidfd is of no more use.
            self.notifier = None;
        }
        Ok(status)
    }

    /// Waits for it to exit and reaps it. Cancel-safe: dropping the future
    /// loses nothing, and later calls return the same status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            match self.notifier.as_mut() {
                Some(notifier) => notifier.changed().await?,
                None => return Err(io::Error::other("the child's exit cannot be watched")),
            }
        }
    }

    /// Sends it SIGKILL (its process group is the caller's business).
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        // The pid is our unreaped child, so it cannot have been reused.
        super::kill(self.pid, libc::SIGKILL)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The supervisor has killed what was left of the group by the time
        // it drops a reaped child: the guard can forget the group.
        let pid = self.pid;
        let guard = self.guard.take();
        let release = move || {
            if let Some(guard) = guard {
                guard.release_plugin(pid);
            }
        };
        if self.exit.is_some() || matches!(self.try_wait(), Ok(Some(_))) {
            release();
            return;
        }
        let _ = self.start_kill();
        let notifier = self.notifier.take();
        // Reap it in the background so it does not stay a zombie; the guard
        // watches its group until then.
        match (tokio::runtime::Handle::try_current(), notifier) {
            (Ok(runtime), Some(mut notifier)) => {
                runtime.spawn(async move {
                    loop {
                        match super::try_reap(pid) {
                            Ok(None) => {}
                            Ok(Some(_)) | Err(_) => return release(),
                        }
                        if notifier.changed().await.is_err() {
                            return;
                        }
                    }
                });
            }
            _ => {
                let _ = std::thread::Builder::new()
                    .name("switchyard-reaper".to_owned())
                    .spawn(move || {
                        super::reap_blocking(pid);
                        release();
                    });
            }
        }
    }
}
