//! Plugin logs, end to end: what a plugin writes to stderr becomes a hub log
//! event at the same level, tagged with the plugin's instance name, and the
//! hub's `SWITCHYARD_LOG` filter applies to it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{Hub, wait_until};

const LOG_TIMEOUT: Duration = Duration::from_secs(60);

/// testkit logging at all five levels. A plugin gets the hub's
/// `SWITCHYARD_LOG` unless its `env` sets its own; here its own filter is
/// opened fully, so what reaches the hub log is decided by the hub alone.
const CHATTY: &str = r#"
[plugins.chatty-kit]
command = "{bin:testkit}"
args = ["--e2e-marker", "{marker}.chatty"]
env = { E2E_MARKER = "{marker}.chatty", SWITCHYARD_LOG = "trace" }

[plugins.chatty-kit.config]
log_lines = true
"#;

/// Allows debug everywhere but in the noisy network crates.
const DEBUG_FILTER: &str =
    "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info,reqwest=info,sqlx=info";

const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// The level of a hub log line: the first level word in a text line, or the
/// `level` field of a JSON line.
fn level_of(line: &str) -> Option<String> {
    if line.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(line).ok()?;
        return value["level"].as_str().map(str::to_uppercase);
    }
    line.split(|c: char| !c.is_ascii_alphabetic())
        .find(|word| LEVELS.contains(word))
        .map(str::to_owned)
}

/// The hub log lines that contain `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Checks that "testkit log at LEVEL" appears exactly once, at that level,
/// tagged with the instance name.
#[track_caller]
fn assert_plugin_line(log: &str, level: &str) {
    let needle = format!("testkit log at {level}");
    let lines = lines_with(log, &needle);
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one hub log line with {needle:?}, found {lines:#?}"
    );
    let line = &lines[0];
    assert!(
        line.contains("chatty-kit"),
        "the line is not tagged with the plugin's instance name: {line}"
    );
    assert_eq!(
        level_of(line).as_deref(),
        Some(level.to_uppercase().as_str()),
        "the line is not logged at {level}: {line}"
    );
}

#[test]
fn plugin_log_lines_become_hub_events_at_their_level_tagged_with_the_instance() {
    let hub = Hub::builder(CHATTY).rust_log(DEBUG_FILTER).start();
    hub.wait_for_state("chatty-kit", "running", LOG_TIMEOUT);
    assert!(
        wait_until(LOG_TIMEOUT, || hub.log().contains("testkit log at error")),
        "the plugin's error line never reached the hub log"
    );
    let log = hub.log();
    for level in ["debug", "info", "warn", "error"] {
        assert_plugin_line(&log, level);
    }
    assert_eq!(
        lines_with(&log, "testkit log at trace"),
        Vec::<String>::new(),
        "a trace line must be filtered out by a debug filter"
    );
}

#[test]
fn a_trace_filter_shows_the_plugins_trace_line_at_trace() {
    let hub = Hub::builder(CHATTY)
        .rust_log(&DEBUG_FILTER.replacen("debug", "trace", 1))
        .start();
    hub.wait_for_state("chatty-kit", "running", LOG_TIMEOUT);
    assert!(
        wait_until(LOG_TIMEOUT, || hub.log().contains("testkit log at error")),
        "the plugin's error line never reached the hub log"
    );
    let log = hub.log();
    for level in ["trace", "debug", "info", "warn", "error"] {
        assert_plugin_line(&log, level);
    }
}

#[test]
fn the_hub_filter_drops_plugin_lines_below_its_level() {
    let hub = Hub::builder(CHATTY).rust_log("info").start();
    hub.wait_for_state("chatty-kit", "running", LOG_TIMEOUT);
    assert!(
        wait_until(LOG_TIMEOUT, || hub.log().contains("testkit log at error")),
        "the plugin's error line never reached the hub log"
    );
    let log = hub.log();
    for level in ["info", "warn", "error"] {
        assert_plugin_line(&log, level);
    }
    for level in ["trace", "debug"] {
        assert_eq!(
            lines_with(&log, &format!("testkit log at {level}")),
            Vec::<String>::new(),
            "an info filter must drop the plugin's {level} line"
        );
    }
}

#[test]
fn raw_stderr_lines_are_logged_with_the_instance_name() {
    let hub = Hub::builder(
        r#"
[plugins.mumbler]
command = "{bin:misbehave}"
args = ["never-print", "--e2e-marker", "{marker}.mumbler"]
env = { E2E_MARKER = "{marker}.mumbler" }
start_timeout = "120s"
"#,
    )
    .rust_log(DEBUG_FILTER)
    .start();
    assert!(
        wait_until(LOG_TIMEOUT, || hub
            .log()
            .contains("misbehave: mode never-print")),
        "the plugin's stderr line never reached the hub log"
    );
    let lines = lines_with(&hub.log(), "misbehave: mode never-print");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("mumbler"),
        "the line is not tagged with the plugin's instance name: {}",
        lines[0]
    );
}
