//! systemd's service notification protocol (`sd_notify(3)`): `READY=1` once
//! the hub is ready, `STOPPING=1` when it starts shutting down, and
//! `WATCHDOG=1` every half `WATCHDOG_USEC` while the hub's runtime runs.
//!
//! Ready means: the store is open, both HTTP listeners are bound and
//! served, and every plugin's start is under way (not necessarily finished:
//! `/readyz` answers for the plugins' handshakes).
//!
//! The protocol is one datagram of `KEY=VALUE` lines sent to the Unix
//! socket named by `NOTIFY_SOCKET` (a path, or an abstract name written
//! with a leading `@`). It is written here with std's `UnixDatagram` rather
//! than with the `sd-notify` crate because that crate is not in our
//! Cargo.lock (no new dependency, and nothing to audit in `deny.toml`) and
//! the whole protocol we need is the thirty lines below. See
//! <https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html>.

use std::ffi::OsString;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where the notifications go and how often the watchdog wants a ping.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for in this process's environment
    /// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`), or `None` when
    /// the hub does not run under a `Type=notify` unit. A socket that
    /// cannot be used is logged and ignored.
    pub fn from_env() -> Option<Notifier> {
        Self::from_vars(&|name| std::env::var_os(name), std::process::id())
    }

    /// [`Notifier::from_env`] with the environment and pid supplied.
    fn from_vars(env: &dyn Fn(&str) -> Option<OsString>, pid: u32) -> Option<Notifier> {
        let path = env("NOTIFY_SOCKET")?;
        let target = match socket_addr(&path) {
            Ok(target) => target,
            Err(err) => {
                tracing::warn!(error = %err, "NOTIFY_SOCKET is set but unusable; not notifying systemd.");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|socket| {
            // A full receive queue must not block the runtime's thread.
            socket.set_nonblocking(true)?;
            Ok(socket)
        }) {
            Ok(socket) => socket,
            Err(err) => {
                tracing::warn!(error = %err, "Cannot create the socket to notify systemd.");
                return None;
            }
        };
        Some(Notifier {
            socket,
            target,
            watchdog: watchdog_interval(env, pid),
        })
    }

    /// Sends one notification (`READY=1`, ...); a failure is logged.
    pub fn notify(&self, state: &str) {
        if let Err(err) = self.socket.send_to_addr(state.as_bytes(), &self.target) {
            tracing::warn!(error = %err, state, "Cannot notify systemd.");
        } else {
            tracing::debug!(state, "Notified systemd.");
        }
    }

    /// `READY=1`.
    pub fn ready(&self) {
        self.notify("READY=1\nSTATUS=Serving");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=Stopping every plugin");
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), or `None`
    /// when the watchdog is off or meant for another process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `WATCHDOG=1` every [`Notifier::watchdog_interval`] until
    /// `cancel` fires; does nothing without a watchdog. The pings come from
    /// a task on the hub's runtime, so a runtime that stops making progress
    /// stops them and systemd restarts the hub.
    pub async fn watchdog(&self, cancel: CancellationToken) {
        let Some(interval) = self.watchdog else {
            return;
        };
        tracing::debug!(
            interval_ms = interval.as_millis(),
            "Pinging systemd's watchdog."
        );
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => self.notify("WATCHDOG=1"),
            }
        }
    }
}

/// `NOTIFY_SOCKET` as an address: a path, or `@name` for an abstract socket.
fn socket_addr(value: &OsString) -> std::io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(&bytes[1..])
        }
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(value)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name starting with `@`",
        )),
    }
}

/// Half of `WATCHDOG_USEC`, when it is set and positive and `WATCHDOG_PID`
/// is unset or `pid`.
fn watchdog_interval(env: &dyn Fn(&str) -> Option<OsString>, pid: u32) -> Option<Duration> {
    let usec: u64 = env("WATCHDOG_USEC")?.to_str()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(owner) = env("WATCHDOG_PID") {
        let owner: u32 = owner.to_str()?.trim().parse().ok()?;
        if owner != pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "200000")]), 7),
            half
        );
        assert_eq!(
            watchdog_interval(
                &env(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "7")]),
                7
            ),
            half
        );
        assert_eq!(
            watchdog_interval(
                &env(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "8")]),
                7
            ),
            None
        );
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "0")]), 7), None);
        assert_eq!(
            watchdog_interval(&env(&[("WATCHDOG_USEC", "soon")]), 7),
            None
        );
        assert_eq!(watchdog_interval(&env(&[]), 7), None);
    }

    #[test]
    fn notifications_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier =
            Notifier::from_vars(&env(&[("NOTIFY_SOCKET", path.to_str().unwrap())]), 1).unwrap();
        notifier.ready();
        let mut buffer = [0_u8; 256];
        let length = receiver.recv(&mut buffer).unwrap();
        assert!(buffer[..length].starts_with(b"READY=1\n"));

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("switchyard-test-{}", std::process::id());
        let abstract_receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier =
            Notifier::from_vars(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]), 1).unwrap();
        notifier.stopping();
        let length = abstract_receiver.recv(&mut buffer).unwrap();
        assert!(buffer[..length].starts_with(b"STOPPING=1\n"));

        assert!(Notifier::from_vars(&env(&[("NOTIFY_SOCKET", "relative")]), 1).is_none());
        assert!(Notifier::from_vars(&env(&[]), 1).is_none());
    }
}
