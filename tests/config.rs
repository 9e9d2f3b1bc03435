//! `plugins.toml` validation, end to end: `switchyard check` exits 0 on a valid
//! file and 1 on a broken one, with an error that names the file, the line,
//! the column and the key; `switchyard run` refuses the same files.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use switchyard_e2e::{Hub, Outcome, assert_contains, bin_path, run_to_completion, wait_until};
use tempfile::TempDir;

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A temp dir holding a `plugins.toml`.
struct ConfigDir {
    dir: TempDir,
}

impl ConfigDir {
    /// Writes `text` as `plugins.toml`, with `{bin:NAME}` replaced.
    fn new(text: &str) -> ConfigDir {
        let dir = tempfile::Builder::new()
            .prefix("sy-e2e-cfg-")
            .tempdir()
            .unwrap();
        let config = ConfigDir { dir };
        std::fs::write(config.path(), render(text)).unwrap();
        config
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("plugins.toml")
    }

    /// Runs `switchyard SUBCOMMAND --config plugins.toml` from `cwd`.
    fn run(&self, subcommand: &str, cwd: &Path) -> Outcome {
        let mut command = Command::new(bin_path("switchyard"));
        command
            .arg(subcommand)
            .arg("--config")
            .arg(self.path())
            .current_dir(cwd)
            .env("NO_COLOR", "1");
        run_to_completion(&mut command, RUN_TIMEOUT)
    }

    /// Runs `switchyard check` from a directory other than the config's.
    fn check(&self) -> Outcome {
        let elsewhere = tempfile::tempdir().unwrap();
        self.run("check", elsewhere.path())
    }
}

fn render(text: &str) -> String {
    let mut text = text.to_owned();
    while let Some(start) = text.find("{bin:") {
        let len = text[start..].find('}').unwrap();
        let name = text[start + 5..start + len].to_owned();
        let path = bin_path(&name).display().to_string();
        text.replace_range(start..=start + len, &path);
    }
    text
}

/// The 1-based number of the line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the config"))
        + 1
}

/// Checks that `outcome` is a validation failure: exit 1 and every `needle`
/// in stderr.
#[track_caller]
fn assert_rejected(outcome: &Outcome, needles: &[&str]) {
    assert_eq!(
        outcome.status.code(),
        Some(1),
        "an invalid config must exit 1: {outcome:?}"
    );
    assert!(
        outcome.stderr.contains("error"),
        "stderr should say error: {outcome:?}"
    );
    for needle in needles {
        assert_contains(&outcome.stderr, needle, "stderr of `switchyard check`");
    }
}

const VALID: &str = r#"# A full, valid config.
[hub]
listen = "127.0.0.1:0"
database = "sqlite://switchyard.db"
stop_grace = "3s"
kill_grace = "250ms"

[plugins.kit]
command = "{bin:testkit}"
args = ["--verbose"]
env = { RUST_LOG = "info" }
env_passthrough = ["PATH", "HOME"]
start_timeout = "1m 30s"
stop_grace = "2s"

[plugins.kit.config]
tag = "a"
anything_the_plugin_likes = { nested = [1, 2, 3] }

[plugins.second_one-2]
command = "{bin:sentiment}"
"#;

#[test]
fn a_valid_config_passes() {
    let config = ConfigDir::new(VALID);
    let outcome = config.check();
    assert_eq!(outcome.status.code(), Some(0), "{outcome:?}");
    assert!(!outcome.stderr.contains("error"), "{outcome:?}");
}

#[test]
fn an_unknown_plugin_key_is_named_with_its_line() {
    let text = VALID.replace("start_timeout = \"1m 30s\"", "comand = \"oops\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "comand");
    assert_rejected(
        &config.check(),
        &[
            &format!("plugins.toml:{line}:1:"),
            "comand",
            "[plugins.kit]",
            "command",
        ],
    );
}

#[test]
fn an_unknown_hub_key_is_named_with_its_line() {
    let text = VALID.replace("kill_grace = \"250ms\"", "kill_grase = \"250ms\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "kill_grase");
    assert_rejected(
        &config.check(),
        &[&format!("plugins.toml:{line}:1:"), "kill_grase"],
    );
}

#[test]
fn a_missing_command_is_named_with_the_tables_line() {
    let text = VALID.replace("command = \"{bin:sentiment}\"", "args = []");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "[plugins.second_one-2]");
    assert_rejected(
        &config.check(),
        &[
            &format!("plugins.toml:{line}:1:"),
            "[plugins.second_one-2]",
            "command",
        ],
    );
}

#[test]
fn a_bad_duration_is_named_with_its_line_and_column() {
    let text = VALID.replace("\"1m 30s\"", "\"5 parsecs\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "parsecs");
    // `start_timeout = "5 parsecs"`: the value starts in column 17.
    assert_rejected(
        &config.check(),
        &[
            &format!("plugins.toml:{line}:17:"),
            "start_timeout",
            "5 parsecs",
        ],
    );
}

#[test]
fn a_bad_hub_duration_is_named_with_its_line() {
    let text = VALID.replace("stop_grace = \"3s\"", "stop_grace = \"soon\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "\"soon\"");
    // `stop_grace = "soon"`: the value starts in column 14.
    assert_rejected(
        &config.check(),
        &[&format!("plugins.toml:{line}:14:"), "stop_grace", "soon"],
    );
}

#[test]
fn a_command_that_does_not_exist_is_named_with_its_line() {
    let text = VALID.replace("{bin:sentiment}", "./no-such-plugin");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "no-such-plugin");
    // `command = "./no-such-plugin"`: the value starts in column 11.
    assert_rejected(
        &config.check(),
        &[
            &format!("plugins.toml:{line}:11:"),
            "command",
            "no-such-plugin",
        ],
    );
}

#[test]
fn a_wrongly_typed_value_is_named_with_its_line() {
    let text = VALID.replace("args = [\"--verbose\"]", "args = \"--verbose\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "args = \"--verbose\"");
    assert_rejected(&config.check(), &[&format!("plugins.toml:{line}:"), "args"]);
}

#[test]
fn an_invalid_plugin_name_is_rejected() {
    let text = VALID.replace("[plugins.second_one-2]", "[plugins.\"has space\"]");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "has space");
    assert_rejected(
        &config.check(),
        &[&format!("plugins.toml:{line}:"), "has space"],
    );
}

#[test]
fn a_toml_syntax_error_is_located() {
    let text = VALID.replace("tag = \"a\"", "tag = \"a");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "tag = \"a");
    assert_rejected(&config.check(), &[&format!("plugins.toml:{line}:")]);
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.toml");
    let mut command = Command::new(bin_path("switchyard"));
    command.arg("check").arg("--config").arg(&path);
    let outcome = run_to_completion(&mut command, RUN_TIMEOUT);
    assert_rejected(&outcome, &["nowhere.toml"]);
}

#[test]
fn a_relative_command_is_resolved_against_the_config_files_directory() {
    let text = VALID.replace("{bin:sentiment}", "bin/mood");
    let config = ConfigDir::new(&text);
    std::fs::create_dir(config.dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(bin_path("sentiment"), config.dir.path().join("bin/mood")).unwrap();
    let outcome = config.check();
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "bin/mood exists next to plugins.toml: {outcome:?}"
    );

    // The same relative path exists in the working directory but not next to
    // the config file: it must not be found.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(bin_path("sentiment"), cwd.path().join("bin/other")).unwrap();
    let text = VALID.replace("{bin:sentiment}", "bin/other");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "bin/other");
    assert_rejected(
        &config.run("check", cwd.path()),
        &[&format!("plugins.toml:{line}:"), "bin/other"],
    );
}

#[test]
fn a_relative_command_is_run_from_the_config_files_directory() {
    // The hub runs in {dir}/cwd; bin/kit exists only next to plugins.toml.
    let hub = Hub::builder(
        r#"
[plugins.rel]
command = "bin/kit"
args = ["--e2e-marker", "{marker}.rel"]
env = { E2E_MARKER = "{marker}.rel" }
"#,
    )
    .link_binary("bin/kit", "testkit")
    .start();
    hub.wait_for_state("rel", "running", Duration::from_secs(60));
    let pid = hub.plugin("rel")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        hub.dir().canonicalize().unwrap(),
        "the plugin runs in the config file's directory"
    );
    let cwd_entries: Vec<_> = std::fs::read_dir(hub.dir().join("cwd"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(
        cwd_entries.is_empty(),
        "the hub wrote into its working directory: {cwd_entries:?}"
    );
}

#[test]
fn check_does_not_launch_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("launched.env");
    let text = format!(
        r#"
[plugins.probe]
command = "{{bin:misbehave}}"
args = ["print-env", "{}"]
"#,
        witness.display()
    );
    let config = ConfigDir::new(&text);
    let outcome = config.check();
    assert_eq!(outcome.status.code(), Some(0), "{outcome:?}");
    // Absence cannot be waited for: give a launched plugin a moment to write.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!witness.exists(), "`switchyard check` launched a plugin");
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_error() {
    let text = VALID.replace("start_timeout = \"1m 30s\"", "comand = \"oops\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "comand");
    let elsewhere = tempfile::tempdir().unwrap();
    let outcome = config.run("run", elsewhere.path());
    assert_rejected(&outcome, &[&format!("plugins.toml:{line}:1:"), "comand"]);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = VALID
        .replace("kill_grace = \"250ms\"", "kill_grase = \"250ms\"")
        .replace("\"1m 30s\"", "\"5 parsecs\"");
    let config = ConfigDir::new(&text);
    let outcome = config.check();
    let first = format!("plugins.toml:{}:1:", line_of(&text, "kill_grase"));
    let second = format!("plugins.toml:{}:17:", line_of(&text, "parsecs"));
    assert_rejected(&outcome, &[&first, &second]);
    assert!(
        outcome.stderr.find(&first) < outcome.stderr.find(&second),
        "problems are reported in file order: {}",
        outcome.stderr
    );
}

#[test]
fn a_zero_duration_is_rejected() {
    let text = VALID.replace("\"1m 30s\"", "\"0s\"");
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "\"0s\"");
    assert_rejected(
        &config.check(),
        &[&format!("plugins.toml:{line}:17:"), "start_timeout"],
    );
}

#[test]
fn a_socket_dir_too_long_for_socket_paths_is_rejected() {
    let long = format!("/tmp/{}", "s".repeat(90));
    let text = VALID.replace(
        "kill_grace = \"250ms\"",
        &format!("kill_grace = \"250ms\"\nsocket_dir = \"{long}\""),
    );
    let config = ConfigDir::new(&text);
    let line = line_of(&text, "socket_dir");
    assert_rejected(
        &config.check(),
        &[&format!("plugins.toml:{line}:"), "socket_dir"],
    );
}

#[test]
fn the_default_database_is_created_next_to_the_config_file() {
    let hub = Hub::start(
        r#"
[plugins.kit]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.kit"]
env = { E2E_MARKER = "{marker}.kit" }
"#,
    );
    hub.wait_for_state("kit", "running", Duration::from_secs(60));
    let database = hub.dir().join("switchyard.db");
    assert!(
        wait_until(Duration::from_secs(10), || database.exists()),
        "the default database sqlite://switchyard.db should be created next to plugins.toml ({})",
        database.display()
    );
    let cwd = hub.dir().join("cwd");
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "the hub wrote into its working directory {}",
        cwd.display()
    );
}
