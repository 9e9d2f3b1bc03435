//! AutoMTLS (`tls = "auto"`) end to end: a real hub drives real plugins over
//! TLS with both certificates pinned. The Rust SDK's testkit and the Go
//! plugin echo-go (go-plugin's own `plugin.Serve`, which does AutoMTLS by
//! itself) serve calls; a plugin without a certificate, a certificate field
//! that is not a certificate, a plugin whose certificate is not the one it
//! printed, a plugin pinned to another hub certificate and an unreadable
//! `PLUGIN_CLIENT_CERT` each fail with an error naming the plugin and the
//! reason; without `tls = "auto"`, a plugin
//! that offers a certificate anyway is refused.
//!
//! echo-go is built by `plugins/go/build.sh`. When it is missing the Go case
//! is skipped with a printed reason, unless `SWITCHYARD_REQUIRE_ALL` is set
//! (as CI does), where it fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{Hub, assert_group_gone, echo_go, read_pid, write_script};
use serde_json::{Value, json};
use switchyard_wire::mtls::{self, Identity};

/// target/debug/testkit, built on first use.
fn testkit() -> PathBuf {
    common::built("testkit")
}

/// One plugin block with `tls`, its config table and no restarts.
fn plugin_block(name: &str, command: &Path, tls: &str, config: &str) -> String {
    format!(
        "[plugins.{name}]\ncommand = \"{}\"\ntls = \"{tls}\"\nstart_timeout = \"20s\"\n[plugins.{name}.config]\n{config}\n[plugins.{name}.restart]\npolicy = \"never\"\n",
        command.display()
    )
}

/// Sends three records through the plugin's Enrich and returns each
/// record's `metadata.chain`.
async fn enrich_chains(hub: &Hub, name: &str) -> Vec<String> {
    let records: Vec<Value> = (0..3)
        .map(|n| json!({"id": format!("r{n}"), "payload": {"n": n}}))
        .collect();
    let (status, body) = hub
        .post(
            &format!("/api/v1/plugins/{name}/call/enrich"),
            json!({"records": records}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{body}");
    results
        .iter()
        .enumerate()
        .map(|(n, result)| {
            assert_eq!(result["record"]["id"], format!("r{n}"), "{body}");
            assert_eq!(result["record"]["payload"], json!({"n": n}), "{body}");
            result["record"]["metadata"]["chain"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Waits until the plugin has stopped after a failed start; returns its
/// `last_error`.
async fn start_error(hub: &Hub, name: &str) -> String {
    let plugin = hub
        .wait_plugin(name, |p| {
            p["state"] == "stopped" && !p["last_error"].is_null()
        })
        .await;
    plugin["last_error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_testkit_serves_calls_over_auto_mtls() {
    let testkit = testkit();
    let hub = Hub::start(&plugin_block("tk", &testkit, "auto", "tag = \"tls\"")).await;
    let plugin = hub.wait_plugin("tk", |p| p["state"] == "running").await;
    assert_eq!(plugin["plugin_name"], "testkit");
    assert_eq!(enrich_chains(&hub, "tk").await, ["tls", "tls", "tls"]);
    // A restart gets a fresh pair of certificates and works the same.
    let (status, body) = hub.post("/api/v1/plugins/tk/restart", json!({})).await;
    assert!(status < 300, "{status} {body}");
    hub.wait_plugin("tk", |p| {
        p["state"] == "running" && p["pid"] != plugin["pid"]
    })
    .await;
    assert_eq!(enrich_chains(&hub, "tk").await, ["tls", "tls", "tls"]);
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_plugin_echo_go_serves_calls_over_auto_mtls() {
    let Some(echo_go) = echo_go() else { return };
    let hub = Hub::start(&plugin_block("echo", &echo_go, "auto", "tag = \"go-tls\"")).await;
    let plugin = hub.wait_plugin("echo", |p| p["state"] == "running").await;
    assert_eq!(plugin["plugin_name"], "echo-go");
    assert_eq!(
        enrich_chains(&hub, "echo").await,
        ["go-tls", "go-tls", "go-tls"]
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_offers_no_certificate_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // It records the hub's certificate, then prints a line without one.
    let script = write_script(
        dir.path(),
        "plain.sh",
        "echo $$ > pid\nprintf '%s' \"$PLUGIN_CLIENT_CERT\" > client.pem\necho \"1|1|unix|$PWD/nothing|grpc|\"\nexec sleep 30",
    );
    let hub = Hub::start(&plugin_block("plain", &script, "auto", "")).await;
    let error = start_error(&hub, "plain").await;
    assert!(
        error.starts_with(
            "plugin `plain` could not be reached: it did not offer a certificate in its handshake line although `tls = \"auto\"` is set for it: does it support AutoMTLS?"
        ),
        "{error}"
    );
    // The hub sent a real PEM certificate in PLUGIN_CLIENT_CERT.
    let pem = std::fs::read_to_string(hub.dir().join("client.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    mtls::parse_pem_certificate(&pem).unwrap();
    assert_group_gone(read_pid(&hub.dir().join("pid")).await).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_serving_another_certificate_than_it_printed_is_refused() {
    let testkit = testkit();
    let dir = tempfile::tempdir().unwrap();
    let other = Identity::generate().unwrap();
    let other_b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(other.cert_der());
    // testkit's handshake line with its certificate field swapped for another.
    let script = write_script(
        dir.path(),
        "swapped.sh",
        &format!(
            "echo $$ > pid\n\"{}\" | {{ IFS= read -r line; printf '%s|%s\\n' \"${{line%|*}}\" '{other_b64}'; exec cat; }}",
            testkit.display()
        ),
    );
    let hub = Hub::start(&plugin_block("swapped", &script, "auto", "")).await;
    let error = start_error(&hub, "swapped").await;
    assert!(
        error.starts_with("plugin `swapped` could not be reached: the TLS handshake with it on "),
        "{error}"
    );
    assert!(
        error.contains(
            "invalid peer certificate: the plugin presented a certificate other than the one in its handshake line"
        ),
        "{error}"
    );
    assert_group_gone(read_pid(&hub.dir().join("pid")).await).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pinned_to_another_hub_certificate_refuses_the_hub() {
    let testkit = testkit();
    let dir = tempfile::tempdir().unwrap();
    let other = Identity::generate().unwrap();
    std::fs::write(dir.path().join("other.pem"), other.cert_pem()).unwrap();
    // The plugin is told to trust another certificate than the hub's.
    let script = write_script(
        dir.path(),
        "mispinned.sh",
        &format!(
            "echo $$ > pid\nPLUGIN_CLIENT_CERT=\"$(cat '{}')\" exec \"{}\"",
            dir.path().join("other.pem").display(),
            testkit.display()
        ),
    );
    let hub = Hub::start(&plugin_block("mispinned", &script, "auto", "")).await;
    let error = start_error(&hub, "mispinned").await;
    assert!(
        error.starts_with("plugin `mispinned` could not be reached: the TLS handshake with it on "),
        "{error}"
    );
    // The hub hears the plugin's alert (or, if it wrote first, the closed
    // connection); the plugin's log line, attached, says why.
    assert!(
        error.contains("failed: received fatal alert: ")
            || error.contains("failed: it closed the connection right after the TLS handshake"),
        "{error}"
    );
    assert!(
        error.contains(
            "the host presented a client certificate other than the one in PLUGIN_CLIENT_CERT"
        ),
        "{error}"
    );
    assert_group_gone(read_pid(&hub.dir().join("pid")).await).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_client_certificate_stops_the_plugin_with_a_clear_message() {
    let testkit = testkit();
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "garbled.sh",
        &format!(
            "echo $$ > pid\nPLUGIN_CLIENT_CERT='not a certificate' exec \"{}\"",
            testkit.display()
        ),
    );
    let hub = Hub::start(&plugin_block("garbled", &script, "auto", "")).await;
    let error = start_error(&hub, "garbled").await;
    assert!(
        error.starts_with("plugin `garbled` exited with status 1 before completing the handshake"),
        "{error}"
    );
    assert!(
        error.contains(
            "cannot start: PLUGIN_CLIENT_CERT does not hold a usable certificate (AutoMTLS): the PEM text holds no CERTIFICATE block"
        ),
        "{error}"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_mtls_a_plugin_offering_a_certificate_is_refused() {
    let testkit = testkit();
    let dir = tempfile::tempdir().unwrap();
    let host = Identity::generate().unwrap();
    std::fs::write(dir.path().join("host.pem"), host.cert_pem()).unwrap();
    // The operator did not ask for TLS, but the plugin does it anyway.
    let script = write_script(
        dir.path(),
        "eager.sh",
        &format!(
            "echo $$ > pid\nPLUGIN_CLIENT_CERT=\"$(cat '{}')\" exec \"{}\"",
            dir.path().join("host.pem").display(),
            testkit.display()
        ),
    );
    let hub = Hub::start(&plugin_block("eager", &script, "off", "")).await;
    let error = start_error(&hub, "eager").await;
    assert!(
        error.starts_with(
            "plugin `eager` could not be reached: it sent a TLS certificate in its handshake line, but the hub did not ask for AutoMTLS"
        ),
        "{error}"
    );
    assert_group_gone(read_pid(&hub.dir().join("pid")).await).await;
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_field_that_is_not_a_certificate_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // Valid unpadded base64 ("hello world"), but not a certificate.
    let script = write_script(
        dir.path(),
        "junk.sh",
        "echo $$ > pid\necho \"1|1|unix|$PWD/nothing|grpc|aGVsbG8gd29ybGQ\"\nexec sleep 30",
    );
    let hub = Hub::start(&plugin_block("junk", &script, "auto", "")).await;
    let error = start_error(&hub, "junk").await;
    assert!(
        error.starts_with(
            "plugin `junk` could not be reached: the certificate in its handshake line cannot be used: the certificate is not a valid X.509 certificate"
        ),
        "{error}"
    );
    assert_group_gone(read_pid(&hub.dir().join("pid")).await).await;
    hub.shut_down().await;
}
