//! The plugin's environment, end to end: a plugin sees exactly its `env`
//! table, the `env_passthrough` names, the hub's log filter
//! (`SWITCHYARD_LOG`, unless its `env` sets its own) and the handshake
//! variables, never the rest of the hub's environment, and configured
//! secrets never reach the hub's log.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use switchyard_e2e::{Hub, wait_for};
use switchyard_wire::handshake::MAGIC_COOKIE_VALUE;

/// Generous bound for a plugin to start on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

const HUB_SECRET: &str = "hub-secret-value-3f9d";

/// Reads the `KEY=VALUE\0` file `misbehave print-env` writes.
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let bytes = wait_for(START_TIMEOUT, || std::fs::read(path).ok())
        .unwrap_or_else(|| panic!("the plugin never wrote {}", path.display()));
    bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// The hub's log filter in these tests: distinctive, and harmless.
const HUB_LOG_FILTER: &str = "info,e2e_env=trace";

#[test]
fn a_plugin_sees_only_its_env_the_passthrough_names_and_the_handshake_variables() {
    let hub = Hub::builder(
        r#"
[plugins.envy]
command = "{bin:misbehave}"
args = ["print-env", "{dir}/envy.env", "--e2e-marker", "{marker}.envy"]
env = { E2E_MARKER = "{marker}.envy", GREETING = "hello world", EMPTY = "" }
env_passthrough = ["E2E_PASSED", "HOME", "E2E_NOT_SET_ANYWHERE"]

[plugins.own-filter]
command = "{bin:misbehave}"
args = ["print-env", "{dir}/own.env", "--e2e-marker", "{marker}.own"]
env = { E2E_MARKER = "{marker}.own", SWITCHYARD_LOG = "trace" }
"#,
    )
    .rust_log(HUB_LOG_FILTER)
    .env("E2E_HUB_SECRET", HUB_SECRET)
    .env("E2E_PASSED", "passed-through")
    .start();
    let env = read_env_file(&hub.dir().join("envy.env"));

    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "E2E_MARKER",
            "E2E_PASSED",
            "EMPTY",
            "GREETING",
            "HOME",
            "PLUGIN_MAX_PORT",
            "PLUGIN_MIN_PORT",
            "PLUGIN_PROTOCOL_VERSIONS",
            "PLUGIN_UNIX_SOCKET_DIR",
            "SWITCHYARD_LOG",
            "SWITCHYARD_PLUGIN_MAGIC_COOKIE",
        ],
        "the plugin's whole environment: {env:#?}"
    );
    // One log filter for the hub and its plugins, unless a plugin sets its own.
    assert_eq!(env["SWITCHYARD_LOG"], HUB_LOG_FILTER);
    let own = read_env_file(&hub.dir().join("own.env"));
    assert_eq!(own["SWITCHYARD_LOG"], "trace", "{own:#?}");
    assert_eq!(env["E2E_MARKER"], hub.plugin_marker("envy"));
    assert_eq!(env["GREETING"], "hello world");
    assert_eq!(env["EMPTY"], "");
    assert_eq!(env["E2E_PASSED"], "passed-through");
    assert_eq!(
        env["HOME"],
        std::env::var("HOME").unwrap_or_else(|_| "/".into())
    );
    assert_eq!(env["SWITCHYARD_PLUGIN_MAGIC_COOKIE"], MAGIC_COOKIE_VALUE);
    assert_eq!(
        env["SWITCHYARD_PLUGIN_MAGIC_COOKIE"],
        "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15"
    );
    assert_eq!(env["PLUGIN_PROTOCOL_VERSIONS"], "1");
    let min: u16 = env["PLUGIN_MIN_PORT"].parse().unwrap();
    let max: u16 = env["PLUGIN_MAX_PORT"].parse().unwrap();
    assert!(min <= max, "PLUGIN_MIN_PORT {min} > PLUGIN_MAX_PORT {max}");
    assert!(
        !env.values().any(|value| value.contains(HUB_SECRET)),
        "the hub's own secret leaked into the plugin's environment"
    );

    let socket_dir = Path::new(&env["PLUGIN_UNIX_SOCKET_DIR"]);
    let meta = std::fs::metadata(socket_dir)
        .unwrap_or_else(|err| panic!("socket dir {}: {err}", socket_dir.display()));
    assert!(meta.is_dir(), "{} is not a directory", socket_dir.display());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "the socket dir {} must be private",
        socket_dir.display()
    );
    assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
}

#[test]
fn configured_secrets_never_reach_the_hub_log_or_the_api() {
    const TOKEN: &str = "tok-e2e-do-not-log-7c41";
    let hub = Hub::builder(
        r#"
[plugins.kit]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.kit"]
env = { E2E_MARKER = "{marker}.kit", API_TOKEN = "tok-e2e-do-not-log-7c41" }
"#,
    )
    .rust_log("trace")
    .env("E2E_HUB_SECRET", HUB_SECRET)
    .start();
    hub.wait_for_state("kit", "running", START_TIMEOUT);
    let listed = hub.get("/api/v1/plugins");
    assert!(!listed.text.contains(TOKEN), "the API shows a plugin's env");
    let log = hub.log();
    assert!(!log.contains(TOKEN), "the hub logged a plugin's env value");
    assert!(
        !log.contains(HUB_SECRET),
        "the hub logged its own environment"
    );
}

#[test]
fn a_configured_relative_socket_dir_is_used_and_kept() {
    let mut hub = Hub::builder(
        r#"
[plugins.envy]
command = "{bin:misbehave}"
args = ["print-env", "{dir}/envy.env", "--e2e-marker", "{marker}.envy"]
env = { E2E_MARKER = "{marker}.envy" }
"#,
    )
    .hub_setting(r#"socket_dir = "socks""#)
    .start();
    let env = read_env_file(&hub.dir().join("envy.env"));
    let expected = hub.dir().join("socks");
    assert_eq!(
        Path::new(&env["PLUGIN_UNIX_SOCKET_DIR"])
            .canonicalize()
            .unwrap(),
        expected.canonicalize().unwrap(),
        "a relative socket_dir is resolved against the config file's directory"
    );
    let mode = std::fs::metadata(&expected).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the hub creates socket_dir private");
    hub.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(hub.wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        expected.is_dir(),
        "a configured socket_dir is kept when the hub exits"
    );
}
