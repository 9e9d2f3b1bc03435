//! A real `nats-server` with JetStream for connector tests: started on a
//! free loopback port with its store in a temp dir, restartable on the same
//! port and store, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::wait_until;

/// How long the server may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Where Debian's `nats-server` package puts the binary (`/usr/sbin`, not on
/// every user's `PATH`), else the first `nats-server` on `PATH`.
pub fn nats_server_path() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    })
}

/// A running `nats-server -js`.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one, or returns `None` when there is no `nats-server` binary
    /// (scripts/test installs Debian's package; with
    /// `SWITCHYARD_REQUIRE_ALL` set a missing binary panics instead).
    pub fn start() -> Option<NatsServer> {
        let Some(binary) = nats_server_path() else {
            assert!(
                std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
                "no nats-server binary: install Debian's nats-server package"
            );
            eprintln!("skipping: no nats-server binary (apt-get install nats-server)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|err| panic!("cannot find a free loopback port: {err}"));
        let store = tempfile::tempdir().unwrap_or_else(|err| panic!("temp dir: {err}"));
        let log = store.path().join("nats-server.log");
        let mut server = NatsServer {
            binary,
            port,
            store,
            log,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's log so far (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Stops the server (SIGTERM, then waits for it) and starts it again on
    /// the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the stopped server again, on the same port with the same store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats-server is running");
        self.spawn();
    }

    /// Stops the server: SIGTERM, and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|err| panic!("cannot open {}: {err}", self.log.display()));
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.binary.display()));
        self.child = Some(child);
        let ready = wait_until(START_LIMIT, || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.log().matches("Server is ready").count() >= self.starts()
        });
        assert!(ready, "nats-server did not start:\n{}", self.log());
    }

    /// How many times the server was started (its log says so once each).
    fn starts(&self) -> usize {
        self.log().matches("Starting nats-server").count()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
