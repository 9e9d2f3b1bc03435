//! Handshake mismatches with a real go-plugin plugin (echo-go, built on
//! go-plugin's own `plugin.Serve`) under a real hub: a plugin expecting
//! another magic cookie and a plugin speaking another app protocol version
//! each fail to start with an error that names the plugin and the reason.
//! (The Rust side of the same cases is in `tests/handshake.rs`; a go-plugin
//! host against the Rust SDK is in `plugins/go/e2e`.)
//!
//! echo-go is built by `plugins/go/build.sh`. When it is missing these tests
//! are skipped with a printed reason, unless `SWITCHYARD_REQUIRE_ALL` is set
//! (as CI does), where they fail.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Hub, echo_go};

/// Starts echo-go with `env` (its test hooks) and no restarts; returns the
/// error its failed start left.
async fn failed_start(echo_go: &Path, env: &str) -> String {
    let hub = Hub::start(&format!(
        "[plugins.echo]\ncommand = \"{}\"\nenv = {{ {env} }}\n[plugins.echo.restart]\npolicy = \"never\"\n",
        echo_go.display()
    ))
    .await;
    let plugin = hub
        .wait_plugin("echo", |p| {
            p["state"] == "stopped" && !p["last_error"].is_null()
        })
        .await;
    hub.shut_down().await;
    plugin["last_error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_plugin_expecting_another_cookie_exits_with_go_plugins_message() {
    let Some(echo_go) = echo_go() else { return };
    let error = failed_start(&echo_go, "ECHO_GO_MAGIC_COOKIE_VALUE = \"another-app\"").await;
    assert!(
        error.starts_with("plugin `echo` exited with status 1 before completing the handshake"),
        "{error}"
    );
    // go-plugin's own text, from plugin.Serve's cookie check.
    assert!(
        error.contains("This binary is a plugin. These are not meant to be executed directly."),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_plugin_speaking_another_version_is_rejected_by_the_hub() {
    let Some(echo_go) = echo_go() else { return };
    let error = failed_start(&echo_go, "ECHO_GO_APP_PROTOCOL_VERSION = \"2\"").await;
    assert!(
        error.starts_with(
            "plugin `echo` printed an invalid handshake line: incompatible app protocol version 2: the hub offered [1]"
        ),
        "{error}"
    );
}
