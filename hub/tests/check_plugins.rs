//! `switchyard check --plugins` on the real binary with real plugins
//! (`formbricks`, `generator`, `rest-poll`): each `config` table is validated against the
//! JSON Schema the plugin publishes, errors point at the offending key's
//! line, a plugin that cannot start is named, and no plugin process is left
//! behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;

/// Runs `switchyard check --plugins --config plugins.toml` in `dir`.
fn check(dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--plugins", "--config", "plugins.toml"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The pids of processes running the executable at `path`.
fn processes_of(path: &Path) -> Vec<String> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let exe = entry.path().join("exe");
        if std::fs::read_link(&exe).is_ok_and(|target| target == path) {
            pids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    pids
}

/// A private copy of `formbricks` (so its processes can be told apart from
/// other tests') and the generator, in a temp dir.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let formbricks = common::built("formbricks");
    let generator = common::built("generator");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("formbricks-under-check");
    std::fs::copy(&formbricks, &copy).unwrap();
    (dir, copy, generator)
}

#[test]
fn bad_types_missing_keys_and_unknown_keys_are_reported_at_their_lines() {
    let (dir, formbricks, generator) = setup();
    let config = format!(
        r#"[plugins.formbricks]
command = "{formbricks}"

[plugins.formbricks.config]
base_url = "http://127.0.0.1:9"
page_size = "ten"
survey_ids = [
  "a",
  3,
]

[plugins.gen]
command = "{generator}"

[plugins.gen.config]
records_per_poll = 5
bogus = true

[plugins.broken]
command = "/bin/false"

[plugins.api]
command = "{rest_poll}"

[plugins.api.config]
url = "http://127.0.0.1:9/items"
type = "item"

[plugins.api.config.auth]
kind = "bearr"
token_env = "T"
"#,
        formbricks = formbricks.display(),
        generator = generator.display(),
        rest_poll = common::built("rest-poll").display()
    );
    std::fs::write(dir.path().join("plugins.toml"), config).unwrap();
    let output = check(dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("plugins.toml: OK (4 plugins)"), "{stdout}");
    for expected in [
        r#"error: plugins.toml:4: [plugins.formbricks.config] is missing the required key "api_key_env""#,
        r#"error: plugins.toml:6: [plugins.formbricks.config] page_size: "ten" is not of type "integer""#,
        r#"error: plugins.toml:9: [plugins.formbricks.config] survey_ids[1]: 3 is not of type "string""#,
        "error: plugins.toml:17: [plugins.gen.config] bogus: is not an allowed key",
        "error: plugins.toml:19: [plugins.broken] plugin `broken` could not be launched",
        // A tagged union (the SDK's `auth` tables): its tag says which
        // alternative is meant.
        r#"error: plugins.toml:30: [plugins.api.config] auth.kind: "bearr" is not one of ["api_key","bearer","basic","#,
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        processes_of(&formbricks).is_empty(),
        "a formbricks process was left running"
    );
}

#[test]
fn a_valid_file_passes() {
    let (dir, formbricks, generator) = setup();
    let config = format!(
        r#"[plugins.formbricks]
command = "{formbricks}"

[plugins.formbricks.config]
base_url = "http://127.0.0.1:9"
api_key_env = "FORMBRICKS_API_KEY"
page_size = 10
survey_ids = ["a", "b"]

[plugins.gen]
command = "{generator}"

[plugins.gen.config]
records_per_poll = 5
"#,
        formbricks = formbricks.display(),
        generator = generator.display()
    );
    std::fs::write(dir.path().join("plugins.toml"), config).unwrap();
    let output = check(dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("plugin `formbricks`: config OK against its schema"),
        "{stdout}"
    );
    assert!(
        stdout.contains("plugin `gen`: config OK against its schema"),
        "{stdout}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(
        processes_of(&formbricks).is_empty(),
        "a formbricks process was left running"
    );
}
