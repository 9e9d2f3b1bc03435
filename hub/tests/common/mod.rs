//! Helpers shared by the hub's integration tests: scripts as fake plugins,
//! configs in temp directories, and waiting for conditions with a deadline.

#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchyard_hub::config::{self, Config};
use switchyard_hub::supervisor::{PluginHandle, PluginStatus, Spawner, Supervisor};

#[path = "../../../tests/support/cargo_env.rs"]
mod cargo_env;

/// A TCP port free on 127.0.0.1 now (for a hub child process's `listen`,
/// which must be known before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sum of every sample of `family` (a counter's `_total` series, over
/// all its labels) in a hub's `/metrics` text.
pub fn metric_sum(metrics: &str, family: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET {base}/metrics` of a hub (`base` is `http://127.0.0.1:PORT`) as
/// text.
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Writes an executable shell script.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Writes `plugins.toml` into `dir` and loads it.
pub fn load_config(dir: &Path, text: &str) -> Config {
    let path = dir.join("plugins.toml");
    std::fs::write(&path, text).unwrap();
    match config::load(&path) {
        Ok(config) => config,
        Err(errors) => panic!("{errors}"),
    }
}

/// Starts a supervisor for `config` with a fresh spawner and socket dir.
pub fn start(config: &Config, socket_dir: &Path) -> Supervisor {
    let spawner = Arc::new(Spawner::start(tokio::runtime::Handle::current()).unwrap());
    Supervisor::start(&config.plugins, spawner, socket_dir.to_path_buf())
}

/// Waits (up to `limit`) until the plugin's status satisfies `done`.
pub async fn wait_for_status(
    plugin: &PluginHandle,
    limit: Duration,
    done: impl Fn(&PluginStatus) -> bool,
) -> PluginStatus {
    let mut receiver = plugin.subscribe();
    let result = tokio::time::timeout(limit, async {
        loop {
            {
                let status = receiver.borrow_and_update();
                if done(&status) {
                    return status.clone();
                }
            }
            if receiver.changed().await.is_err() {
                return receiver.borrow().clone();
            }
        }
    })
    .await;
    match result {
        Ok(status) => status,
        Err(_) => panic!(
            "plugin `{}` did not reach the expected status within {limit:?}; it is {:?}",
            plugin.name(),
            plugin.status()
        ),
    }
}

/// Reads a pid a script wrote with `echo $$ > FILE`, waiting for the file.
pub async fn read_pid(path: &Path) -> i32 {
    poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
    .await
}

/// True while any process is in process group `pgid`.
pub fn group_exists(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// Polls `probe` every 20 ms until it returns `Some`, or panics after `limit`.
pub async fn poll_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `probe` every 25 ms until it returns a value, or panics after
/// `limit` naming `what` (the async twin of [`poll_until`]).
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_explained(limit, Duration::from_millis(25), what, probe, String::new).await
}

/// Awaits `probe` every `every` until it returns a value, or panics after
/// `limit` naming `what`, followed by what `explain` says then (the state
/// the probe last saw, a log): the one polling loop of [`wait_for`] and
/// [`HubProcess::wait`].
pub async fn wait_explained<T, F, Fut>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut probe: F,
    explain: impl FnOnce() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}{}", explain());
        }
        tokio::time::sleep(every).await;
    }
}

/// Asserts that process group `pgid` is gone within a few seconds.
pub async fn assert_group_gone(pgid: i32) {
    poll_until(Duration::from_secs(5), || {
        (!group_exists(pgid)).then_some(())
    })
    .await;
}

/// The directory cargo builds into for this test executable, for example
/// `target/debug` (test executables are `target/debug/deps/NAME-HASH`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Runs `cargo build --workspace --bins --examples` (once per test
/// executable) and returns `relative` inside [`profile_dir`], which the
/// build must have produced: `built("testkit")`, `built("examples/fake_plugin")`.
///
/// The whole workspace, not `-p NAME`: cargo resolves features over the
/// packages a build selects, so `-p testkit` alone built 67 crates again
/// with other features (41 s on the 2-core machine; 73 s for the hub's
/// example) and replaced the binary `cargo build --workspace` had made.
/// With the workspace selected the build matches what scripts/test builds
/// before `cargo test --workspace` (this same command), and finds
/// everything fresh in a fraction of a second.
pub fn built(relative: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    // Tests running in parallel wait for the one build.
    BUILT.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.args(["build", "--workspace", "--bins", "--examples"]);
        cargo_env::without_cargo_test_env(&mut cargo);
        let status = cargo.status().unwrap();
        assert!(status.success(), "cargo build --workspace failed");
    });
    let path = profile_dir().join(relative);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The fake plugin binary (`hub/examples/fake_plugin.rs`), built on first use.
pub fn fake_plugin() -> PathBuf {
    built("examples/fake_plugin")
}

/// A real hub (the library's `app::run_with_listener`) on an ephemeral port,
/// driven over HTTP.
pub struct Hub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Hub {
    pub async fn start(plugins_toml: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n{}",
            plugins_toml
                .replace("@FAKE@", &fake_plugin().display().to_string())
                .replace("@DIR@", &dir.path().display().to_string())
        );
        let config = load_config(dir.path(), &text);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(switchyard_hub::app::run_with_listener(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Hub {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Waits until `/api/v1/plugins/NAME` satisfies `done`.
    pub async fn wait_plugin(&self, name: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.get(&format!("/api/v1/plugins/{name}")).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "plugin never got there: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The hub's temporary directory (its config file is there; `@DIR@` in
    /// the config text names it).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    /// Stops the hub and waits for it (every plugin stopped).
    pub async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the hub did not stop in time")
            .unwrap()
            .unwrap();
    }
}

/// plugins/go/bin/echo-go, or `None` (with the reason printed) when it is
/// not built and `SWITCHYARD_REQUIRE_ALL` is unset.
pub fn echo_go() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/go/bin/echo-go");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
        "{} is missing: run plugins/go/build.sh (SWITCHYARD_REQUIRE_ALL is set)",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} is not built (run plugins/go/build.sh)",
        path.display()
    );
    None
}

/// plugins/python/keyword-tagger/keyword-tagger when its virtualenv
/// (plugins/python/.venv, made by plugins/python/build.sh) exists, or `None`
/// (with the reason printed) when it does not and `SWITCHYARD_REQUIRE_ALL`
/// is unset.
pub fn keyword_tagger() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/python");
    let venv = python.join(".venv/bin/python");
    if venv.is_file() {
        return Some(python.join("keyword-tagger/keyword-tagger"));
    }
    assert!(
        std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
        "{} is missing: run plugins/python/build.sh (SWITCHYARD_REQUIRE_ALL is set)",
        venv.display()
    );
    eprintln!(
        "SKIPPED: {} is not built (run plugins/python/build.sh)",
        venv.display()
    );
    None
}

/// A running `switchyard run` child process (the real binary) on
/// `DIR/plugins.toml`, its stderr in `DIR/hub.stderr`; asked to stop with
/// SIGTERM, then killed, when dropped.
pub struct HubProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for the hub's HTTP API (no proxy, 30 s timeout).
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
    wait_limit: Duration,
}

impl HubProcess {
    /// Writes `config` (whose `[hub] listen` is `127.0.0.1:{port}`) as
    /// `plugins.toml` in `dir`, runs the hub on it with `env` as its whole
    /// environment besides `PATH`, `SWITCHYARD_LOG=info` and `NO_COLOR`, and
    /// waits until `ready_path` answers 200. [`HubProcess::wait`] then waits
    /// up to `wait_limit` for each condition.
    pub async fn spawn(
        dir: tempfile::TempDir,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
        ready_path: &str,
        wait_limit: Duration,
    ) -> HubProcess {
        let path = dir.path().join("plugins.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("hub.stderr")).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHYARD_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let hub = HubProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            dir,
            wait_limit,
        };
        hub.wait("the hub to be ready", || async {
            let response = hub
                .http
                .get(format!("{}{ready_path}", hub.base))
                .send()
                .await;
            response.is_ok_and(|r| r.status() == 200).then_some(())
        })
        .await;
        hub
    }

    /// Sends `METHOD path` (with `body` as JSON, if any) and returns the
    /// status and the JSON answer; fails if the answer is not JSON.
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{path} answered {status} with non-JSON {text:?}: {err}"));
        (status, body)
    }

    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.http, &self.base).await
    }

    /// The hub's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.stderr")).unwrap_or_default()
    }

    /// The directory holding its `plugins.toml` and `hub.stderr`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Polls `probe` until it returns `Some`, for up to the `wait_limit`
    /// given to [`HubProcess::spawn`]; fails with the hub's log.
    pub async fn wait<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        wait_explained(
            self.wait_limit,
            Duration::from_millis(50),
            what,
            probe,
            || format!("; hub log:\n{}", self.log()),
        )
        .await
    }
}

impl HubProcess {
    /// The hub's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the hub to exit; its exit
    /// status, or `None` if it is still running.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The (source, id) of every event line a jsonl-output plugin appended to
/// `path` (none while the file does not exist).
pub fn delivered_events(path: &Path) -> std::collections::BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|event| {
            (
                event["record"]["source"].as_str().unwrap().to_owned(),
                event["record"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
