//! Running the real `switchyard` binary for the measurements that need the
//! whole hub (footprint, restart, webhooks): write a plugins.toml, start the
//! hub with its log in a file, wait for `/readyz`, stop it with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running hub; killed if dropped without [`HubProcess::stop`].
pub struct HubProcess {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl HubProcess {
    /// Writes `source` to `dir/plugins.toml`, starts the hub on it (listening
    /// on `port`, which `source` must name) and waits until `/readyz`
    /// answers 200 (at most 120 s), or fails with the hub's last log lines.
    pub async fn start(hub: &Path, dir: &Path, source: &str, port: u16) -> anyhow::Result<Self> {
        Self::start_until(hub, dir, source, port, "/readyz").await
    }

    /// [`HubProcess::start`], waiting only until `/healthz` answers 200 (the
    /// hub serves, whether or not its plugins run): for runs where a plugin
    /// is meant to be down.
    pub async fn start_alive(
        hub: &Path,
        dir: &Path,
        source: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        Self::start_until(hub, dir, source, port, "/healthz").await
    }

    async fn start_until(
        hub: &Path,
        dir: &Path,
        source: &str,
        port: u16,
        probe: &str,
    ) -> anyhow::Result<Self> {
        let config = dir.join("plugins.toml");
        std::fs::write(&config, source).context("cannot write plugins.toml")?;
        let log = dir.join("hub.log");
        let log_file = std::fs::File::create(&log).context("cannot create hub.log")?;
        let child = tokio::process::Command::new(hub)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", hub.display()))?;
        let process = HubProcess { child, port, log };
        let http = reqwest::Client::new();
        if let Err(err) = process
            .wait_ok(&http, probe, Duration::from_secs(120))
            .await
        {
            bail!("{err}; the hub's last log lines:\n{}", process.log_tail(20));
        }
        Ok(process)
    }

    /// The hub's pid.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last `lines` lines of the hub's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    async fn wait_ok(
        &self,
        http: &reqwest::Client,
        probe: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let url = format!("{}{probe}", self.base_url());
        loop {
            if let Some(pid) = self.pid()
                && (kill(pid, None).is_err() || is_zombie(pid))
            {
                bail!("the hub exited before {probe} answered 200");
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{probe} did not answer 200 within {} s", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then up to 30 s for a clean exit, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status.context("cannot wait for the hub")?;
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the hub did not exit within 30 s of SIGTERM")
            }
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A TOML string holding the URL of a SQLite database in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    crate::rig::toml_string(Path::new(&format!(
        "sqlite://{}",
        dir.join("bench.db").display()
    )))
}

/// Whether `pid` has exited but not been reaped yet.
fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_owned();
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(true)
}
