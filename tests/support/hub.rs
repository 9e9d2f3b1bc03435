//! The [`Hub`] guard: a real `switchyard run` in a fresh temp dir, stopped and
//! cleaned up on drop, even when the test fails.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::bins::bin_path;
use crate::procs::processes_with_marker;
use crate::wait::{wait_for, wait_until};

/// How long the hub has to answer `/healthz` after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the hub has to exit after SIGTERM when a test drops it, before
/// SIGKILL (longer than the default `stop_grace` + `kill_grace`).
const DROP_GRACE: Duration = Duration::from_secs(20);
/// The longest any single HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How many ports to try when the free port picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

static HUB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How to start a [`Hub`]: the plugins' part of `plugins.toml`, extra `[hub]`
/// settings, and the hub's environment.
#[derive(Debug, Clone)]
pub struct HubBuilder {
    plugins: String,
    hub_settings: Vec<String>,
    env: Vec<(String, String)>,
    rust_log: String,
    links: Vec<(String, String)>,
}

impl HubBuilder {
    /// Before starting, symlinks the built binary `bin_name` at `relative`
    /// inside the hub's temp dir (next to `plugins.toml`), creating parent
    /// directories, so configs can use relative `command` paths.
    pub fn link_binary(mut self, relative: &str, bin_name: &str) -> Self {
        self.links.push((relative.to_owned(), bin_name.to_owned()));
        self
    }

    /// Adds one `key = value` line (TOML) to the `[hub]` table, for example
    /// `kill_grace = "1s"`. `listen` is always set by the guard.
    pub fn hub_setting(mut self, line: &str) -> Self {
        self.hub_settings.push(line.to_owned());
        self
    }

    /// Sets an environment variable for the hub process itself. The hub
    /// otherwise gets only `PATH`, `HOME`, `SWITCHYARD_LOG`, `NO_COLOR` and
    /// `RUST_BACKTRACE`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the hub's log filter, `SWITCHYARD_LOG` (default `info`), which
    /// the hub also hands to plugins that do not set their own.
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Writes the config, starts the hub and waits until `/healthz` answers.
    ///
    /// # Panics
    ///
    /// When a binary is missing, or the hub exits or does not answer
    /// `/healthz` within 30 s (its stderr is printed).
    #[track_caller]
    pub fn start(self) -> Hub {
        let dir = match tempfile::Builder::new().prefix("sy-e2e-").tempdir() {
            Ok(dir) => dir,
            Err(err) => panic!("cannot create a temp dir: {err}"),
        };
        let marker = new_marker();
        let plugins = render(&self.plugins, dir.path(), &marker);
        for (relative, bin_name) in &self.links {
            let link = dir.path().join(relative);
            let made = link
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| std::os::unix::fs::symlink(bin_path(bin_name), &link));
            if let Err(err) = made {
                panic!("cannot link {} to {bin_name}: {err}", link.display());
            }
        }
        let cwd = dir.path().join("cwd");
        if let Err(err) = fs::create_dir(&cwd) {
            panic!("cannot create {}: {err}", cwd.display());
        }
        let mut hub = Hub {
            child: None,
            exit: None,
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            port: 0,
            marker,
            config_path: PathBuf::new(),
            stderr_path: PathBuf::new(),
            http: http_client(),
        };
        hub.config_path = hub.path.join("plugins.toml");
        hub.stderr_path = hub.path.join("hub.stderr");
        for attempt in 1..=PORT_ATTEMPTS {
            hub.port = free_port();
            let config = self.config_text(hub.port, &plugins);
            write_file(&hub.config_path, &config);
            hub.child = Some(self.spawn(&hub, &cwd));
            match hub.wait_healthy() {
                Ok(()) => return hub,
                Err(reason) => {
                    let log = hub.log();
                    let port_taken = log.contains("in use");
                    if port_taken && attempt < PORT_ATTEMPTS {
                        hub.kill_now();
                        continue;
                    }
                    panic!(
                        "the hub did not become healthy: {reason}\n--- plugins.toml ---\n{config}\n--- hub stderr ---\n{log}"
                    );
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn config_text(&self, port: u16, plugins: &str) -> String {
        let mut text = format!("[hub]\nlisten = \"127.0.0.1:{port}\"\n");
        for line in &self.hub_settings {
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(plugins);
        text
    }

    fn spawn(&self, hub: &Hub, cwd: &Path) -> Child {
        let stderr = create_file(&hub.stderr_path);
        let stdout = create_file(&hub.path.join("hub.stdout"));
        let mut command = Command::new(bin_path("switchyard"));
        command
            .arg("run")
            .arg("--config")
            .arg(&hub.config_path)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
            .env("SWITCHYARD_LOG", &self.rust_log)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Safety net for a test process that dies without running destructors:
        // the hub gets SIGKILL when the test thread that started it ends.
        #[allow(unsafe_code)]
        // SAFETY: the closure only makes the prctl system call, which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        match command.spawn() {
            Ok(child) => child,
            Err(err) => panic!("cannot start the hub {command:?}: {err}"),
        }
    }
}

/// A running hub, started by [`HubBuilder::start`].
///
/// On drop it sends SIGTERM, then SIGKILL after 20 s, reaps the hub, and
/// SIGKILLs any process still carrying this hub's marker. When the test is
/// failing it prints the hub's stderr and keeps the temp dir.
#[derive(Debug)]
pub struct Hub {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    port: u16,
    marker: String,
    config_path: PathBuf,
    stderr_path: PathBuf,
    http: reqwest::blocking::Client,
}

/// An HTTP answer from the hub.
#[derive(Debug, Clone)]
pub struct JsonResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub body: Value,
    /// The raw body text.
    pub text: String,
}

impl Hub {
    /// Starts configuring a hub. `plugins` is the rest of `plugins.toml` after
    /// `[hub]`, with placeholders: `{bin:NAME}` (the absolute path of a built
    /// binary), `{dir}` (this hub's temp dir) and `{marker}` (this hub's unique
    /// process marker; use `{marker}.NAME` per plugin).
    pub fn builder(plugins: &str) -> HubBuilder {
        HubBuilder {
            plugins: plugins.to_owned(),
            hub_settings: Vec::new(),
            env: Vec::new(),
            rust_log: "info".to_owned(),
            links: Vec::new(),
        }
    }

    /// Starts a hub with default settings; see [`Hub::builder`].
    #[track_caller]
    pub fn start(plugins: &str) -> Hub {
        Hub::builder(plugins).start()
    }

    /// The hub's base URL, for example `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The hub's process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |child| child.id() as i32)
    }

    /// This hub's unique marker; plugins are marked `{marker}.NAME`.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// The marker of plugin `name` when the config used `{marker}.NAME`.
    pub fn plugin_marker(&self, name: &str) -> String {
        format!("{}.{name}", self.marker)
    }

    /// Live processes carrying this hub's marker (any plugin, any child).
    pub fn marked_processes(&self) -> Vec<i32> {
        processes_with_marker(&self.marker)
    }

    /// The hub's temp dir (holds `plugins.toml`, `hub.stderr`, the database).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The path of the config file the hub was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything the hub wrote to stderr so far, without ANSI colour codes.
    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.stderr_path).unwrap_or_default(),
        ))
    }

    /// `GET path`.
    #[track_caller]
    pub fn get(&self, path: &str) -> JsonResponse {
        let url = format!("{}{path}", self.base_url());
        self.send(self.http.get(&url), &url)
    }

    /// `POST path` with a JSON body.
    #[track_caller]
    pub fn post(&self, path: &str, body: &Value) -> JsonResponse {
        let url = format!("{}{path}", self.base_url());
        self.send(self.http.post(&url).json(body), &url)
    }

    /// `POST path` with a raw body and content type.
    #[track_caller]
    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> JsonResponse {
        let url = format!("{}{path}", self.base_url());
        let request = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body.to_owned());
        self.send(request, &url)
    }

    #[track_caller]
    fn send(&self, request: reqwest::blocking::RequestBuilder, url: &str) -> JsonResponse {
        match request.send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                JsonResponse { status, body, text }
            }
            Err(err) if err.is_timeout() => {
                panic!("the hub did not answer {url} within {REQUEST_TIMEOUT:?}: {err}")
            }
            Err(err) => panic!("request to {url} failed: {err}"),
        }
    }

    /// The API object of plugin `name` (`GET /api/v1/plugins/NAME`).
    #[track_caller]
    pub fn plugin(&self, name: &str) -> Value {
        let response = self.get(&format!("/api/v1/plugins/{name}"));
        assert_eq!(
            response.status, 200,
            "GET /api/v1/plugins/{name} answered {}: {}",
            response.status, response.text
        );
        response.body
    }

    /// Waits until plugin `name` is in `state` and returns its API object.
    ///
    /// # Panics
    ///
    /// When it is not in that state within `timeout`, with the last object seen.
    #[track_caller]
    pub fn wait_for_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let mut settled_elsewhere = false;
        let found = wait_for(timeout, || {
            last = self.plugin(name);
            if last["state"] == state {
                return Some(last.clone());
            }
            // A `failed` plugin will not come back on its own: stop waiting.
            settled_elsewhere = last["state"] == "failed";
            settled_elsewhere.then(|| last.clone())
        });
        let found = found.filter(|_| !settled_elsewhere);
        match found {
            Some(plugin) => plugin,
            None => panic!(
                "plugin {name} did not reach state {state:?} within {timeout:?} (or settled in another state); last seen: {last:#}"
            ),
        }
    }

    /// Posts a call to a running plugin: `POST /api/v1/plugins/NAME/call/KIND`.
    #[track_caller]
    pub fn call(&self, name: &str, kind: &str, body: &Value) -> JsonResponse {
        self.post(&format!("/api/v1/plugins/{name}/call/{kind}"), body)
    }

    /// Sends `signal` to the hub process.
    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        if let Err(err) = kill(Pid::from_raw(self.pid()), signal) {
            panic!("cannot send {signal} to the hub: {err}");
        }
    }

    /// Waits up to `timeout` for the hub to exit and reaps it; `None` if it
    /// is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let child = self.child.as_mut()?;
            self.exit = wait_for(timeout, || child.try_wait().ok().flatten());
        }
        self.exit
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let url = format!("{}/healthz", self.base_url());
        let http = self.http.clone();
        let mut exited = None;
        let child = self.child.as_mut().ok_or("the hub was not started")?;
        let healthy = wait_until(STARTUP_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            http.get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|response| response.status().as_u16() == 200)
        });
        if let Some(status) = exited {
            self.exit = Some(status);
            return Err(format!("the hub exited during startup ({status})"));
        }
        if !healthy {
            return Err(format!(
                "GET {url} did not answer 200 within {STARTUP_TIMEOUT:?}"
            ));
        }
        Ok(())
    }

    fn kill_now(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
        self.exit = None;
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if self.exit.is_none() && self.child.is_some() {
            let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
            if self.wait_exit(DROP_GRACE).is_none() {
                eprintln!(
                    "e2e: the hub (pid {}) did not exit within {DROP_GRACE:?} of SIGTERM; killing it",
                    self.pid()
                );
                self.kill_now();
            }
        }
        let leftovers = processes_with_marker(&self.marker);
        if !leftovers.is_empty() {
            eprintln!("e2e: killing processes the hub left behind: {leftovers:?}");
            for pid in leftovers {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if failing {
            eprintln!(
                "--- hub stderr ({}) ---\n{}\n--- end of hub stderr ---",
                self.stderr_path.display(),
                self.log()
            );
            if let Some(dir) = self.dir.take() {
                eprintln!("e2e: keeping the test's temp dir {}", dir.keep().display());
            }
        }
    }
}

/// Removes ANSI escape sequences (colours) from log text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn new_marker() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let count = HUB_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("sy-e2e-{}-{count}-{nanos:09}", std::process::id())
}

/// Replaces `{bin:NAME}`, `{dir}` and `{marker}` in a config template.
fn render(template: &str, dir: &Path, marker: &str) -> String {
    let mut text = template
        .replace("{dir}", &dir.display().to_string())
        .replace("{marker}", marker);
    while let Some(start) = text.find("{bin:") {
        let Some(len) = text[start..].find('}') else {
            break;
        };
        let name = text[start + 5..start + len].to_owned();
        let path = bin_path(&name).display().to_string();
        text.replace_range(start..=start + len, &path);
    }
    text
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
        Ok(addr) => addr.port(),
        Err(err) => panic!("cannot find a free loopback port: {err}"),
    }
}

fn http_client() -> reqwest::blocking::Client {
    match reqwest::blocking::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(err) => panic!("cannot build an HTTP client: {err}"),
    }
}

fn create_file(path: &Path) -> File {
    match File::create(path) {
        Ok(file) => file,
        Err(err) => panic!("cannot create {}: {err}", path.display()),
    }
}

/// Writes `text` to `path`, panicking with the path on failure.
#[track_caller]
pub(crate) fn write_file(path: &Path, text: &str) {
    if let Err(err) = fs::write(path, text) {
        panic!("cannot write {}: {err}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m hi"),
            "2026  INFO hi"
        );
    }

    #[test]
    fn renders_dir_and_marker() {
        let text = render("a={dir} b={marker}.x c={ A = 1 }", Path::new("/t"), "m");
        assert_eq!(text, "a=/t b=m.x c={ A = 1 }");
    }
}
