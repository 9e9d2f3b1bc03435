//! Helpers for Switchyard's end-to-end tests.
//!
//! Every test starts a real hub (the `switchyard` binary) with a real
//! `plugins.toml` and real plugin processes, then talks to it over HTTP and
//! inspects `/proc`. The pieces:
//!
//! - [`bin_path`] finds the workspace's built binaries (`switchyard`, the
//!   plugins, `misbehave`).
//! - [`Hub`] (built with [`Hub::builder`]) writes the config into a fresh temp
//!   dir, starts `switchyard run` on a free loopback port, waits for
//!   `/healthz`, and kills the hub and anything it left behind on drop.
//! - [`processes_with_marker`], [`is_zombie`] and friends look at processes
//!   through `/proc`, so tests can prove that no plugin outlives the hub.
//! - [`wait_until`] and [`wait_for`] poll a condition with a deadline instead
//!   of sleeping.
//!
//! ```no_run
//! use std::time::Duration;
//! use switchyard_e2e::{Hub, processes_with_marker};
//!
//! let hub = Hub::start(
//!     r#"
//! [plugins.kit]
//! command = "{bin:testkit}"
//! args = ["--e2e-marker", "{marker}.kit"]
//! env = { E2E_MARKER = "{marker}.kit" }
//! "#,
//! );
//! let kit = hub.wait_for_state("kit", "running", Duration::from_secs(30));
//! assert_eq!(kit["plugin_name"], "testkit");
//! assert_eq!(processes_with_marker(&hub.plugin_marker("kit")).len(), 1);
//! ```

mod bins;
mod cargo_env;
mod command;
mod hub;
mod nats;
mod procs;
mod upstream;
mod wait;

pub use bins::{bin_path, profile_dir};
pub use cargo_env::without_cargo_test_env;
pub use command::{Outcome, run_to_completion};
pub use hub::{Hub, HubBuilder, JsonResponse, strip_ansi};
pub use nats::{NatsServer, nats_server_path};
pub use procs::{
    MARKER_ENV, is_alive, is_zombie, parent_pid, process_group, process_state,
    processes_with_marker, zombie_children, zombies_left,
};
pub use upstream::{Upstream, serve as serve_upstream};
pub use wait::{wait_for, wait_until};

/// Asserts that `haystack` contains `needle`, printing both when it does not.
///
/// `what` says what the haystack is ("last_error of plugin bad", "hub log"), so
/// a failure reads as a sentence.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what} should contain {needle:?}, but it is:\n{haystack}"
    );
}

/// Asserts that `haystack` contains at least one of `needles`.
#[track_caller]
pub fn assert_contains_any(haystack: &str, needles: &[&str], what: &str) {
    assert!(
        needles.iter().any(|needle| haystack.contains(needle)),
        "{what} should contain one of {needles:?}, but it is:\n{haystack}"
    );
}

/// A record in the admin API's JSON form, with the given id and payload.
pub fn record(id: &str, payload: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "source": "e2e",
        "type": "test.record",
        "occurred_at": "2026-11-23T18:00:00Z",
        "payload": payload,
        "metadata": {},
        "idempotency_key": null,
    })
}
