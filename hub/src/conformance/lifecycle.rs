//! The checks every plugin must pass, whatever its roles: it refuses to run
//! without the magic cookie, prints a valid handshake line, reports SERVING,
//! describes itself with a valid config schema, rejects a bad config naming
//! the key, accepts the operator's config, and exits on `Shutdown` within the
//! grace period.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard_wire::handshake::{
    APP_PROTOCOL_VERSIONS, HEALTH_SERVICE_NAME, MAX_HANDSHAKE_LINE_BYTES, Network,
    format_version_list, parse_handshake_line,
};
use tokio::io::{AsyncReadExt as _, BufReader};

use super::launch::{Cookieless, Session, SessionError};
use super::report::CheckResult;
use super::schema;
use crate::config::PluginConfig;
use crate::domain::PluginMetadata;
use crate::rpc::plugin::HealthStatus;
use crate::supervisor::Spawner;
use crate::supervisor::stdio::read_line_limited;
use crate::supervisor::stop::{self, StopOutcome, describe_exit};

/// The key `configure-bad` adds to the config; no plugin should accept it.
pub const UNKNOWN_KEY: &str = "__conformance_unknown_key__";

/// How long a started plugin may take to report SERVING once configured.
const HEALTH_SETTLE: Duration = Duration::from_secs(3);
/// How often health is asked again while waiting.
const HEALTH_INTERVAL: Duration = Duration::from_millis(50);
/// How much of a cookieless run's output is kept.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long to wait for the rest of a finished process's output.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// What the cookieless run's stdout showed.
enum Stdout {
    /// It printed this handshake line: it serves without the cookie.
    Served(String),
    /// It closed stdout after printing these lines.
    Closed(Vec<String>),
}

/// `cookie`: started without the magic cookie, the plugin exits non-zero
/// with a message and prints no handshake line.
pub async fn cookie(
    plugin: &PluginConfig,
    spawner: &Spawner,
    socket_dir: &Path,
    timeout: Duration,
) -> CheckResult {
    const CHECK: &str = "cookie";
    let mut run = match Cookieless::start(plugin, spawner, socket_dir).await {
        Ok(run) => run,
        Err(err) => return CheckResult::fail(CHECK, format!("could not be started: {err}")),
    };
    let pgid = run.pgid();
    let stderr = run.child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(stderr) = stderr {
            let _ = stderr.take(OUTPUT_LIMIT).read_to_string(&mut text).await;
        }
        text
    });
    let mut stdout = run.child.stdout.take().map(BufReader::new);
    let read_stdout = async {
        let mut lines = Vec::new();
        let Some(stdout) = stdout.as_mut() else {
            return Stdout::Closed(lines);
        };
        while let Ok(Some(line)) = read_line_limited(stdout, MAX_HANDSHAKE_LINE_BYTES).await {
            let text = String::from_utf8_lossy(&line.bytes).trim().to_owned();
            if parse_handshake_line(&text, APP_PROTOCOL_VERSIONS).is_ok() {
                return Stdout::Served(text);
            }
            lines.push(text);
        }
        Stdout::Closed(lines)
    };
    tokio::pin!(read_stdout);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut stdout_lines: Option<Vec<String>> = None;
    enum Ended {
        Served(String),
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
    }
    let ended = loop {
        tokio::select! {
            seen = &mut read_stdout, if stdout_lines.is_none() => match seen {
                Stdout::Served(line) => break Ended::Served(line),
                Stdout::Closed(lines) => stdout_lines = Some(lines),
            },
            status = run.child.wait() => break Ended::Exited(status),
            () = &mut deadline => break Ended::TimedOut,
        }
    };
    let status = match ended {
        Ended::Served(line) => {
            stop::kill_now(&mut run.child, pgid).await;
            return CheckResult::fail(
                CHECK,
                format!(
                    "without the magic cookie it printed a handshake line ({line}) instead of refusing"
                ),
            );
        }
        Ended::TimedOut => {
            stop::kill_now(&mut run.child, pgid).await;
            return CheckResult::fail(
                CHECK,
                format!(
                    "without the magic cookie it was still running after {} (it must exit non-zero at once)",
                    humantime::format_duration(timeout)
                ),
            );
        }
        Ended::Exited(Err(err)) => {
            stop::kill_now(&mut run.child, pgid).await;
            return CheckResult::fail(CHECK, format!("could not be waited for: {err}"));
        }
        Ended::Exited(Ok(status)) => status,
    };
    // Whatever it left in its group goes too.
    stop::signal_group(pgid, Signal::SIGKILL);
    let stdout_lines = match stdout_lines {
        Some(lines) => lines,
        None => match tokio::time::timeout(OUTPUT_GRACE, &mut read_stdout).await {
            Ok(Stdout::Served(line)) => {
                return CheckResult::fail(
                    CHECK,
                    format!("without the magic cookie it printed a handshake line ({line})"),
                );
            }
            Ok(Stdout::Closed(lines)) => lines,
            Err(_) => Vec::new(),
        },
    };
    let stderr_text = tokio::time::timeout(OUTPUT_GRACE, stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if status.success() {
        return CheckResult::fail(
            CHECK,
            "without the magic cookie it exited with status 0 (it must exit non-zero)",
        );
    }
    let message = stderr_text
        .lines()
        .chain(stdout_lines.iter().map(String::as_str))
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned);
    match message {
        None => CheckResult::fail(
            CHECK,
            format!(
                "without the magic cookie it {} but printed no message saying why",
                describe_exit(status)
            ),
        ),
        Some(message) => CheckResult::pass(
            CHECK,
            format!(
                "refused: {}, saying {:?}",
                describe_exit(status),
                shorten(&message)
            ),
        ),
    }
}

/// `handshake`: the result of reading and parsing the handshake line (core
/// version 1, an app version from the offer and `grpc` are what
/// `parse_handshake_line` enforces) and connecting; the hub's plugins serve
/// on a Unix socket.
pub fn handshake(session: &Result<Session, SessionError>) -> CheckResult {
    const CHECK: &str = "handshake";
    match session {
        Err(err) => CheckResult::fail(CHECK, err.to_string()),
        Ok(session) if session.line.network != Network::Unix => CheckResult::fail(
            CHECK,
            format!(
                "it serves on {} {}, not on a Unix socket in PLUGIN_UNIX_SOCKET_DIR",
                session.line.network.as_str(),
                session.line.address
            ),
        ),
        Ok(session) => CheckResult::pass(
            CHECK,
            format!(
                "core 1, app version {} (offered {}), unix, grpc{}",
                session.line.app_version,
                format_version_list(APP_PROTOCOL_VERSIONS),
                if session.line.server_cert_der.is_some() {
                    ", AutoMTLS"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// Waits (up to `limit`) until the `plugin` service reports SERVING, as the
/// hub does before it trusts metadata and Configure; not a check itself.
pub async fn wait_until_serving(session: &Session, limit: Duration) {
    let _ = serving(session, HEALTH_SERVICE_NAME, limit).await;
}

/// `health`: both `plugin` (what go-plugin hosts ask) and `""` (the server
/// as a whole) report SERVING.
pub async fn health(session: &Session, timeout: Duration) -> CheckResult {
    const CHECK: &str = "health";
    let limit = HEALTH_SETTLE.min(timeout);
    for service in [HEALTH_SERVICE_NAME, ""] {
        if let Err(problem) = serving(session, service, limit).await {
            return CheckResult::fail(CHECK, format!("service {service:?}: {problem}"));
        }
    }
    CheckResult::pass(CHECK, "services \"plugin\" and \"\" are SERVING")
}

/// Asks about `service` until it says SERVING, for up to `limit`.
async fn serving(session: &Session, service: &str, limit: Duration) -> Result<(), String> {
    let asking = async {
        loop {
            match session.client.health_of(service).await {
                Ok(HealthStatus::Serving) => return Ok(()),
                Ok(HealthStatus::NotServing(_)) => {}
                Err(status) if status.code() == tonic::Code::Unavailable => {}
                Err(status) => {
                    return Err(format!(
                        "the health check failed: {}: {}",
                        crate::rpc::code_name(status.code()),
                        status.message()
                    ));
                }
            }
            tokio::time::sleep(HEALTH_INTERVAL).await;
        }
    };
    match tokio::time::timeout(limit, asking).await {
        Ok(result) => result,
        Err(_) => Err(match session.client.health_of(service).await {
            Ok(HealthStatus::NotServing(status)) => {
                format!("still {status} after {}", humantime::format_duration(limit))
            }
            Ok(HealthStatus::Serving) => "SERVING only after the wait".to_owned(),
            Err(status) => format!(
                "no answer after {}: {}: {}",
                humantime::format_duration(limit),
                crate::rpc::code_name(status.code()),
                status.message()
            ),
        }),
    }
}

/// `metadata`: `GetMetadata` answers a name, a version, at least one role and
/// a config schema that is valid JSON Schema. Returns the metadata when it
/// could be read (for the role checks), even if the schema is bad.
pub async fn metadata(
    session: &Session,
    timeout: Duration,
) -> (CheckResult, Option<PluginMetadata>) {
    const CHECK: &str = "metadata";
    let metadata = match tokio::time::timeout(timeout, session.client.metadata()).await {
        Err(_) => {
            return (
                CheckResult::fail(CHECK, "GetMetadata did not answer in time"),
                None,
            );
        }
        Ok(Err(err)) => {
            return (
                CheckResult::fail(CHECK, format!("GetMetadata: {err}")),
                None,
            );
        }
        Ok(Ok(metadata)) => metadata,
    };
    let roles: Vec<&str> = metadata.roles.iter().map(|role| role.as_str()).collect();
    let result = match schema::validate(&metadata.config_schema) {
        Err(problem) => CheckResult::fail(CHECK, problem),
        Ok(schema) => {
            let properties = schema
                .get("properties")
                .and_then(serde_json::Value::as_object)
                .map_or(0, serde_json::Map::len);
            CheckResult::pass(
                CHECK,
                format!(
                    "{} {}, roles {}, config schema with {properties} propert{}",
                    metadata.name,
                    metadata.version,
                    roles.join(", "),
                    if properties == 1 { "y" } else { "ies" }
                ),
            )
        }
    };
    (result, Some(metadata))
}

/// `configure-bad`: `Configure` with the operator's config plus
/// [`UNKNOWN_KEY`] is rejected and a problem names that key; and, when the
/// config schema gives a top-level property a single type, the config with
/// that property set to a value of another type is rejected naming it too.
pub async fn configure_bad(
    session: &Session,
    config: &serde_json::Value,
    schema: Option<&str>,
    instance: &str,
    timeout: Duration,
) -> CheckResult {
    const CHECK: &str = "configure-bad";
    let base = config.as_object().cloned().unwrap_or_default();
    let mut probes = vec![(
        UNKNOWN_KEY.to_owned(),
        serde_json::Value::Bool(true),
        "the unknown key",
    )];
    if let Some((key, value)) = schema.and_then(wrong_type_probe) {
        probes.push((key, value, "a wrongly typed value for"));
    }
    let mut seen = Vec::new();
    for (key, value, what) in probes {
        let mut bad = base.clone();
        bad.insert(key.clone(), value.clone());
        let bad = serde_json::Value::Object(bad);
        let answer = tokio::time::timeout(timeout, session.client.configure(&bad, instance)).await;
        let outcome = match answer {
            Err(_) => Err("Configure did not answer in time".to_owned()),
            Ok(Err(status)) if status.message().contains(&key) => Ok(format!(
                "{key}: rejected with {}",
                crate::rpc::code_name(status.code())
            )),
            Ok(Err(status)) => Err(format!(
                "Configure with {what} `{key}` failed with {} without naming it: {}",
                crate::rpc::code_name(status.code()),
                shorten(status.message())
            )),
            Ok(Ok(problems)) if problems.is_empty() => {
                Err(format!("accepted a config with {what} `{key}` ({value})"))
            }
            Ok(Ok(problems)) => match problems
                .iter()
                .find(|problem| problem.field.contains(&key) || problem.message.contains(&key))
            {
                Some(problem) => Ok(format!("rejected {}", shorten(&problem.to_string()))),
                None => Err(format!(
                    "rejected {what} `{key}`, but no problem names it: {}",
                    shorten(
                        &problems
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                )),
            },
        };
        match outcome {
            Ok(detail) => seen.push(detail),
            Err(problem) => return CheckResult::fail(CHECK, problem),
        }
    }
    CheckResult::pass(CHECK, seen.join("; "))
}

/// A top-level property of the config schema with a single declared type,
/// and a value of another type for it (`None` when there is none).
fn wrong_type_probe(schema: &str) -> Option<(String, serde_json::Value)> {
    let schema: serde_json::Value = serde_json::from_str(schema).ok()?;
    let properties = schema.get("properties")?.as_object()?;
    properties.iter().find_map(|(key, property)| {
        let wrong = match property.get("type")?.as_str()? {
            "string" => serde_json::json!(12345),
            "integer" | "number" | "boolean" | "object" | "array" => {
                serde_json::json!("__conformance_wrong_type__")
            }
            _ => return None,
        };
        Some((key.clone(), wrong))
    })
}

/// `configure`: `Configure` with the operator's config succeeds.
pub async fn configure(
    session: &Session,
    config: &serde_json::Value,
    instance: &str,
    timeout: Duration,
) -> CheckResult {
    const CHECK: &str = "configure";
    match tokio::time::timeout(timeout, session.client.configure(config, instance)).await {
        Err(_) => CheckResult::fail(CHECK, "Configure did not answer in time"),
        Ok(Err(status)) => CheckResult::fail(
            CHECK,
            format!(
                "Configure failed: {}: {}",
                crate::rpc::code_name(status.code()),
                shorten(status.message())
            ),
        ),
        Ok(Ok(problems)) if problems.is_empty() => {
            let keys = config.as_object().map_or(0, serde_json::Map::len);
            CheckResult::pass(
                CHECK,
                format!(
                    "accepted the config ({keys} key{})",
                    if keys == 1 { "" } else { "s" }
                ),
            )
        }
        Ok(Ok(problems)) => CheckResult::fail(
            CHECK,
            format!(
                "rejected the config: {}",
                shorten(
                    &problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            ),
        ),
    }
}

/// `shutdown`: after `Shutdown` the process exits within the hub's grace
/// period (`stop_grace`); the hub's escalation ends it either way.
pub async fn shutdown(session: Session, plugin: &PluginConfig) -> CheckResult {
    const CHECK: &str = "shutdown";
    let grace = humantime::format_duration(plugin.stop_grace);
    match session.stop(plugin).await {
        (StopOutcome::Graceful, exit) => {
            CheckResult::pass(CHECK, format!("{exit} within {grace} of Shutdown"))
        }
        (StopOutcome::Terminated, exit) => CheckResult::fail(
            CHECK,
            format!("still running {grace} after Shutdown; SIGTERM ended it ({exit})"),
        ),
        (StopOutcome::Killed, exit) => CheckResult::fail(
            CHECK,
            format!(
                "still running {grace} after Shutdown and after SIGTERM; SIGKILL ended it ({exit})"
            ),
        ),
    }
}

/// At most 160 characters of a plugin's text, for a one-line detail.
pub fn shorten(text: &str) -> String {
    const LIMIT: usize = 160;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(LIMIT).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_type_probe_picks_a_typed_property() {
        assert_eq!(
            wrong_type_probe(
                r#"{"properties":{"a":{"description":"untyped"},"b":{"type":"string"}}}"#
            ),
            Some(("b".to_owned(), serde_json::json!(12345)))
        );
        assert_eq!(
            wrong_type_probe(r#"{"properties":{"n":{"type":"integer"}}}"#),
            Some((
                "n".to_owned(),
                serde_json::json!("__conformance_wrong_type__")
            ))
        );
        assert_eq!(
            wrong_type_probe(r#"{"properties":{"x":{"type":["string","null"]}}}"#),
            None
        );
        assert_eq!(wrong_type_probe(r#"{"type":"object"}"#), None);
        assert_eq!(wrong_type_probe("not json"), None);
    }

    #[test]
    fn shorten_keeps_short_text_and_cuts_long_text() {
        assert_eq!(shorten("short"), "short");
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), 161);
    }
}
