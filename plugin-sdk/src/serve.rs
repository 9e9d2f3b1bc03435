//! [`serve`]: everything a plugin process does between `main` and exit.
//!
//! 1. Check the magic cookie and negotiate the app protocol version (pure
//!    decisions in [`check_launch`]); on failure print why on stderr, exit 1.
//! 2. Install the hclog stderr logger, ignore SIGINT (as Go plugins do: the
//!    terminal's Ctrl-C reaches the whole process group and the hub decides),
//!    turn SIGTERM into a graceful stop, and watch for the parent's death.
//! 3. Bind a Unix socket in `PLUGIN_UNIX_SOCKET_DIR` (or the temp dir), and
//!    only then print the one handshake line on stdout and flush. With
//!    AutoMTLS (`PLUGIN_CLIENT_CERT` set), make a certificate, print it in the
//!    line, and serve over TLS pinned to the host's certificate (see
//!    `tls.rs`); an unreadable `PLUGIN_CLIENT_CERT` stops the plugin (exit 1).
//! 4. Point fd 1 at stderr, serve until Controller.Shutdown, SIGTERM or the
//!    parent's death, give in-flight calls a short grace, remove the socket
//!    file and exit 0.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_wire::handshake::{
    self, APP_PROTOCOL_VERSIONS, ENV_CLIENT_CERT, ENV_MULTIPLEX_GRPC, ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR, ENV_UNIX_SOCKET_GROUP, HandshakeLine, MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE, NOT_LAUNCHED_BY_HUB_MESSAGE, NegotiationError, Network,
};
use tokio::net::UnixListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use crate::authority::AuthorityFix;
use crate::plugin::Plugin;
use crate::services::build_routes;
use crate::tls::AutoMtls;

/// How long in-flight calls may take to finish once a stop has begun
/// (go-plugin hosts SIGKILL 2 s after Shutdown).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How often the parent process is checked.
const PARENT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a plugin refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The magic cookie is absent or wrong: a person ran the binary by hand.
    #[error("{NOT_LAUNCHED_BY_HUB_MESSAGE}")]
    NotLaunchedByHub,
    /// No app protocol version in common with the host.
    #[error("cannot start: {0}")]
    Negotiation(#[from] NegotiationError),
}

/// Decides whether to start and at which app protocol version, from the values
/// of the cookie variable and `PLUGIN_PROTOCOL_VERSIONS` (pure; no IO).
///
/// # Errors
/// [`LaunchError::NotLaunchedByHub`] without the right cookie, and
/// [`LaunchError::Negotiation`] when no version is common.
pub fn check_launch(
    cookie: Option<&str>,
    offered_versions: Option<&str>,
) -> Result<u32, LaunchError> {
    if cookie != Some(MAGIC_COOKIE_VALUE) {
        return Err(LaunchError::NotLaunchedByHub);
    }
    Ok(handshake::negotiate_version(
        offered_versions,
        APP_PROTOCOL_VERSIONS,
    )?)
}

/// The handshake line for a plugin listening on `socket` (pure). The 7th
/// field is printed only when the host set `PLUGIN_MULTIPLEX_GRPC`, and is
/// `false`: this SDK does not speak yamux.
pub fn handshake_line(version: u32, socket: &Path, multiplex_env: Option<&str>) -> HandshakeLine {
    HandshakeLine {
        app_version: version,
        network: Network::Unix,
        address: socket.display().to_string(),
        server_cert_der: None,
        mux_supported: multiplex_env
            .filter(|value| !value.is_empty())
            .map(|_| false),
    }
}

/// Runs the plugin as a child of the hub (or any go-plugin host) and never
/// returns: the process exits 0 after a graceful stop and 1 when it cannot
/// start. See the module documentation for the steps.
pub fn serve<T: Send + Sync + 'static>(plugin: Plugin<T>) -> ! {
    let cookie = std::env::var(MAGIC_COOKIE_KEY).ok();
    let offered = std::env::var(ENV_PROTOCOL_VERSIONS).ok();
    let version = match check_launch(cookie.as_deref(), offered.as_deref()) {
        Ok(version) => version,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "{error}");
            std::process::exit(1);
        }
    };
    if plugin.info.install_logging {
        crate::log::install();
    }
    let host_cert = std::env::var(ENV_CLIENT_CERT).ok();
    let tls = match AutoMtls::from_env(host_cert.as_deref()) {
        Ok(tls) => tls,
        Err(error) => {
            // Plain text, like the cookie error: it must reach the host even
            // when the plugin installed its own (or no) log subscriber.
            tracing::error!(error = %error, "Cannot start.");
            let _ = writeln!(std::io::stderr(), "cannot start: {error}");
            std::process::exit(1);
        }
    };
    // One thread by default (see `PluginBuilder::worker_threads`): no
    // cross-thread wake-ups between the connection and the stream handlers.
    let mut builder = if plugin.info.worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(plugin.info.worker_threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "Cannot start the async runtime.");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(plugin, version, tls));
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code)
}

/// Removes the socket file when dropped.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn run<T: Send + Sync + 'static>(
    plugin: Plugin<T>,
    version: u32,
    tls: Option<AutoMtls>,
) -> i32 {
    let name = plugin.info.name.clone();
    let shutdown = CancellationToken::new();
    if let Err(error) = watch_signals(&shutdown) {
        tracing::error!(plugin = %name, error = %error, "Cannot install signal handlers.");
        return 1;
    }
    watch_parent(shutdown.clone());

    let dir = std::env::var_os(ENV_UNIX_SOCKET_DIR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let (listener, socket) = match bind_socket(&dir) {
        Ok(bound) => bound,
        Err(error) => {
            tracing::error!(plugin = %name, dir = %dir.display(), error = %error, "Cannot bind the plugin socket.");
            return 1;
        }
    };
    if let Some(group) = std::env::var(ENV_UNIX_SOCKET_GROUP)
        .ok()
        .filter(|g| !g.is_empty())
        && let Err(error) = apply_socket_group(&socket.0, &group)
    {
        tracing::error!(plugin = %name, group = %group, error = %error, "Cannot give the socket to its group.");
        return 1;
    }
    let routes = build_routes(plugin, shutdown.clone()).await;

    let multiplex = std::env::var(ENV_MULTIPLEX_GRPC).ok();
    let mut line = handshake_line(version, &socket.0, multiplex.as_deref());
    line.server_cert_der = tls.as_ref().map(AutoMtls::cert_der);
    if let Err(error) = print_handshake(&line) {
        tracing::error!(plugin = %name, error = %error, "Cannot print the handshake line.");
        return 1;
    }
    redirect_stdout_to_stderr();
    tracing::debug!(plugin = %name, address = %socket.0.display(), version, tls = tls.is_some(), "Serving.");

    let builder = tonic::transport::Server::builder().add_routes(routes);
    let stopped = shutdown.clone().cancelled_owned();
    // Every connection goes through `AuthorityFix`, so grpcio and grpc-java
    // clients (which send the socket path as `:authority`) are served too.
    let mut server = match &tls {
        None => {
            let incoming =
                UnixListenerStream::new(listener).map(|accepted| accepted.map(AuthorityFix::new));
            tokio::spawn(builder.serve_with_incoming_shutdown(incoming, stopped))
        }
        Some(tls) => {
            let incoming = tls
                .incoming(listener, shutdown.clone())
                .map(|accepted| accepted.map(AuthorityFix::new));
            tokio::spawn(builder.serve_with_incoming_shutdown(incoming, stopped))
        }
    };
    let finished = tokio::select! {
        finished = &mut server => Some(finished),
        () = shutdown.cancelled() => None,
    };
    let code = match finished {
        Some(Ok(Ok(()))) => 0,
        Some(Ok(Err(error))) => {
            tracing::error!(plugin = %name, error = %error, "The gRPC server failed.");
            1
        }
        Some(Err(error)) => {
            tracing::error!(plugin = %name, error = %error, "The gRPC server task failed.");
            1
        }
        None => match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(_) => 0,
            Err(_) => {
                tracing::warn!(plugin = %name, "In-flight calls did not finish in time; exiting anyway.");
                server.abort();
                0
            }
        },
    };
    drop(socket);
    tracing::debug!(plugin = %name, code, "Stopped.");
    code
}

/// Binds a socket named `plugin<random>` in `dir`, retrying on name clashes.
fn bind_socket(dir: &Path) -> std::io::Result<(UnixListener, SocketFile)> {
    let mut last_error = None;
    for attempt in 0..16u64 {
        let path = dir.join(format!("plugin{}", random_suffix(attempt)));
        match UnixListener::bind(&path) {
            Ok(listener) => return Ok((listener, SocketFile(path))),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(error),
            Err(error) => {
                return Err(std::io::Error::new(
                    error.kind(),
                    format!(
                        "{} ({} bytes; Unix socket paths are limited to 107): {error}",
                        path.display(),
                        path.as_os_str().len()
                    ),
                ));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free socket name")))
}

/// A random decimal number from the process's hash seed, the pid and the time.
fn random_suffix(attempt: u64) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(attempt);
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish() % 10_000_000_000
}

/// `PLUGIN_UNIX_SOCKET_GROUP` (a group name or gid): chown the socket to it, mode 0660.
fn apply_socket_group(path: &Path, group: &str) -> std::io::Result<()> {
    let gid = match group.parse::<u32>() {
        Ok(gid) => nix::unistd::Gid::from_raw(gid),
        Err(_) => {
            nix::unistd::Group::from_name(group)
                .map_err(std::io::Error::from)?
                .ok_or_else(|| std::io::Error::other(format!("no group named {group:?}")))?
                .gid
        }
    };
    nix::unistd::chown(path, None, Some(gid)).map_err(std::io::Error::from)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
}

fn print_handshake(line: &HandshakeLine) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// After the handshake, stdout belongs to the protocol: the host reads exactly
/// one line and then only drains it. Pointing fd 1 at stderr means a stray
/// `println!` in plugin code (or a dependency) becomes a line in the log
/// stream, which the host shows, instead of text nobody reads on a pipe that
/// was meant for the handshake.
fn redirect_stdout_to_stderr() {
    let _ = std::io::stdout().flush();
    if let Err(error) = nix::unistd::dup2_stdout(std::io::stderr()) {
        tracing::warn!(error = %error, "Cannot point stdout at stderr.");
    }
}

/// SIGINT is logged and ignored; SIGTERM starts the graceful stop.
fn watch_signals(shutdown: &CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        while interrupt.recv().await.is_some() {
            tracing::trace!("Ignored SIGINT: the host decides when plugins stop.");
        }
    });
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if terminate.recv().await.is_some() {
            tracing::debug!("Received SIGTERM; stopping.");
            shutdown.cancel();
        }
    });
    Ok(())
}

/// Stops the plugin when its parent dies (go-plugin hosts do not clean up orphans).
fn watch_parent(shutdown: CancellationToken) {
    let parent = nix::unistd::getppid();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PARENT_CHECK_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if nix::unistd::getppid() != parent {
                tracing::warn!(
                    parent = parent.as_raw(),
                    "The host process is gone; stopping."
                );
                shutdown.cancel();
                return;
            }
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_start_without_the_cookie() {
        assert_eq!(
            check_launch(None, Some("1")),
            Err(LaunchError::NotLaunchedByHub)
        );
        assert_eq!(
            check_launch(Some("wrong"), Some("1")),
            Err(LaunchError::NotLaunchedByHub)
        );
        assert_eq!(
            LaunchError::NotLaunchedByHub.to_string(),
            NOT_LAUNCHED_BY_HUB_MESSAGE
        );
    }

    #[test]
    fn negotiates_the_highest_common_version() {
        assert_eq!(check_launch(Some(MAGIC_COOKIE_VALUE), Some("3,1")), Ok(1));
        assert_eq!(check_launch(Some(MAGIC_COOKIE_VALUE), None), Ok(1));
    }

    #[test]
    fn fails_clearly_without_a_common_version() {
        let error = check_launch(Some(MAGIC_COOKIE_VALUE), Some("7,8")).unwrap_err();
        assert!(matches!(error, LaunchError::Negotiation(_)));
        let text = error.to_string();
        assert!(text.contains("no common app protocol version"), "{text}");
        assert!(text.contains("[7, 8]"), "{text}");
    }

    #[test]
    fn the_handshake_line_matches_go_plugin() {
        let path = Path::new("/tmp/sy/plugin42");
        assert_eq!(
            handshake_line(1, path, None).to_string(),
            "1|1|unix|/tmp/sy/plugin42|grpc|"
        );
        assert_eq!(
            handshake_line(1, path, Some("")).to_string(),
            "1|1|unix|/tmp/sy/plugin42|grpc|"
        );
        assert_eq!(
            handshake_line(1, path, Some("true")).to_string(),
            "1|1|unix|/tmp/sy/plugin42|grpc||false"
        );
    }

    #[tokio::test]
    async fn binds_a_unique_socket_and_removes_it_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, first) = bind_socket(dir.path()).unwrap();
        let (_second, second) = bind_socket(dir.path()).unwrap();
        assert_ne!(first.0, second.0);
        let file_name = first.0.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(file_name.starts_with("plugin"), "{file_name}");
        assert!(
            file_name["plugin".len()..]
                .chars()
                .all(|c| c.is_ascii_digit())
        );
        let path = first.0.clone();
        assert!(path.exists());
        drop(first);
        assert!(!path.exists());
    }
}
