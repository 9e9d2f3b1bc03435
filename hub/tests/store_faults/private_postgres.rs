//! A private PostgreSQL server that a test can stop and start again, made
//! the way `scripts/start-test-postgres` makes the shared one: Debian's
//! server binaries (`/usr/lib/postgresql/*/bin`), `initdb` into a temporary
//! directory, `pg_ctl` on a free loopback port, run as the `postgres` user
//! when the test runs as root (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running (or stopped) private server; stopped at once when dropped.
pub struct PrivatePostgres {
    bin: PathBuf,
    base: tempfile::TempDir,
    run_as: Option<String>,
    port: u16,
    /// `postgres://OWNER@127.0.0.1:PORT/switchyard`.
    pub url: String,
}

/// The directory holding `pg_ctl`, `initdb` and `psql`: where `pg_ctl` on
/// `PATH` really is (symlinks resolved, as Debian links only some of them),
/// else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["pg_ctl", "initdb", "psql"]
            .iter()
            .all(|name| dir.join(name).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let Ok(pg_ctl) = std::fs::canonicalize(dir.join("pg_ctl")) else {
                continue;
            };
            if let Some(real) = pg_ctl.parent()
                && complete(real)
            {
                return Some(real.to_path_buf());
            }
        }
    }
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run {what}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl PrivatePostgres {
    /// Creates and starts a server, or `None` (with the reason printed) when
    /// no PostgreSQL server binaries are installed and
    /// `SWITCHYARD_REQUIRE_ALL` is unset (`scripts/test` installs Debian's
    /// `postgresql` package first).
    pub fn start() -> Option<PrivatePostgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("SWITCHYARD_REQUIRE_ALL").is_none(),
                "no PostgreSQL server binaries (pg_ctl, initdb) on PATH or in /usr/lib/postgresql/*/bin: install Debian's postgresql package (SWITCHYARD_REQUIRE_ALL is set)"
            );
            eprintln!(
                "SKIPPED: no PostgreSQL server binaries (install Debian's postgresql package)"
            );
            return None;
        };
        let root = nix::unistd::Uid::effective().is_root();
        let run_as = root.then(|| "postgres".to_owned());
        let owner = run_as.clone().unwrap_or_else(|| {
            std::env::var("USER").unwrap_or_else(|_| {
                nix::unistd::User::from_uid(nix::unistd::Uid::effective())
                    .ok()
                    .flatten()
                    .map_or_else(|| "postgres".to_owned(), |user| user.name)
            })
        });
        let base = tempfile::Builder::new()
            .prefix("sy-pg-private-")
            .tempdir()
            .unwrap();
        if let Some(user) = &run_as {
            if nix::unistd::User::from_name(user).ok().flatten().is_none() {
                run(
                    "useradd",
                    Command::new("useradd").args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        user,
                    ]),
                )
                .unwrap();
            }
            let account = nix::unistd::User::from_name(user).unwrap().unwrap();
            std::fs::set_permissions(
                base.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            std::os::unix::fs::chown(base.path(), Some(account.uid.as_raw()), None).unwrap();
        }
        let port = super::common::free_port();
        let server = PrivatePostgres {
            bin,
            base,
            run_as,
            port,
            url: format!("postgres://{owner}@127.0.0.1:{port}/switchyard"),
        };
        server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", &owner, "--auth=trust", "-E", "UTF8", "--no-locale"])
            .output()
            .map_err(|err| err.to_string())
            .and_then(|output| {
                output.status.success().then_some(()).ok_or_else(|| {
                    format!(
                        "initdb failed: {}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    )
                })
            })
            .unwrap();
        server.start_server();
        run(
            "createdb",
            server
                .command("psql")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", &owner])
                .args(["-d", "postgres", "-qc", "CREATE DATABASE switchyard"]),
        )
        .unwrap();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.base.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.base.path().join("server.log")
    }

    /// A command running `bin/NAME` as the server's owner.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// Starts the server (again) on the same port and data, waiting until
    /// it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.base.path().display()
        );
        run(
            "pg_ctl start",
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        )
        .unwrap_or_else(|err| panic!("{err}\nserver log:\n{}", self.server_log()));
    }

    /// Stops the server (fast shutdown: sessions are terminated, as in a
    /// restart by an operator), waiting until it is down.
    pub fn stop_server(&self) {
        self.stop_with("fast")
            .unwrap_or_else(|err| panic!("{err}\nserver log:\n{}", self.server_log()));
    }

    fn stop_with(&self, mode: &str) -> Result<(), String> {
        run(
            "pg_ctl stop",
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", mode, "-w", "-t", "60", "stop"]),
        )
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Already stopped is fine.
        let _ = self.stop_with("immediate");
    }
}
