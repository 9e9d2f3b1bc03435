//! `jsonl-output`: an output that appends each event as one JSON line to a
//! file and acknowledges a batch only after it is on disk (`fdatasync`). See README.md.

mod append;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::PathBuf;

use append::Appender;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_plugin_sdk::{
    ConfigError, ConfigErrors, Output, Plugin, PluginError, Record, RecordEvent,
};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonlOutputConfig {
    /// The file to append to; created if missing (its directory must exist).
    pub path: PathBuf,
    /// Flush each batch to disk (`fdatasync`) before acknowledging it. Turning
    /// this off is faster but loses acknowledged events if the machine crashes.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
}

fn default_fsync() -> bool {
    true
}

/// The configured output.
#[derive(Debug)]
pub struct JsonlOutput {
    path: PathBuf,
    appender: Appender,
}

impl JsonlOutput {
    /// Opens (or creates) the file for appending.
    ///
    /// # Errors
    /// `path` when the file cannot be opened.
    pub fn new(config: JsonlOutputConfig) -> Result<Self, ConfigErrors> {
        if config.path.as_os_str().is_empty() {
            return Err(ConfigError::new("path", "must not be empty").into());
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|err| {
                ConfigError::new(
                    "path",
                    format!("cannot open {} for appending: {err}", config.path.display()),
                )
            })?;
        match append::drop_torn_tail(&config.path, &file) {
            Ok(0) => {}
            Ok(dropped) => tracing::warn!(
                path = %config.path.display(),
                bytes = dropped,
                "The file ended in a partial line (a write cut short by a crash); it was cut off. Its events were never acknowledged, so the hub delivers them again."
            ),
            Err(err) => {
                return Err(ConfigError::new(
                    "path",
                    format!(
                        "cannot check the end of {} for a partial line: {err}",
                        config.path.display()
                    ),
                )
                .into());
            }
        }
        let appender = Appender::start(file, config.fsync).map_err(|err| {
            ConfigError::new(
                "path",
                format!("cannot start the thread that appends: {err}"),
            )
        })?;
        Ok(JsonlOutput {
            path: config.path,
            appender,
        })
    }
}

/// One event's line, borrowing from the event: serialized straight into
/// the batch's buffer, with the fields in the order README.md shows.
#[derive(Serialize)]
struct EventLine<'a> {
    delivery_id: u64,
    kind: &'static str,
    attempt: u32,
    record: RecordLine<'a>,
}

/// The `record` object of an [`EventLine`].
#[derive(Serialize)]
struct RecordLine<'a> {
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    record_type: &'a str,
    occurred_at: Option<String>,
    payload: Payload<'a>,
    metadata: &'a BTreeMap<String, String>,
    idempotency_key: Option<&'a str>,
}

/// A record's payload in its line.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    /// Valid JSON on one line: written as it came, byte for byte, without
    /// building and walking a tree of it.
    Verbatim(&'a RawValue),
    /// JSON that spans lines (newlines between its tokens, which would break
    /// the file's one event per line): parsed and written compact.
    Compacted(serde_json::Value),
    /// No payload: `null`.
    Null,
}

impl<'a> Payload<'a> {
    /// `payload` checked as JSON; an error names the record.
    fn of(record: &'a Record) -> Result<Self, PluginError> {
        let payload = &record.payload;
        if payload.is_empty() {
            return Ok(Payload::Null);
        }
        // Inside JSON strings line breaks are escaped, so a raw one is
        // whitespace between tokens.
        if payload.iter().any(|&byte| byte == b'\n' || byte == b'\r') {
            return record.payload_json().map(Payload::Compacted);
        }
        // Not JSON: `payload_json` gives the error that names the record.
        serde_json::from_slice(payload)
            .map(Payload::Verbatim)
            .or_else(|_| record.payload_json().map(Payload::Compacted))
    }
}

/// Appends one event as its JSON line (with the newline) to `buffer`; on an
/// error `buffer` is left as it was.
fn push_event_line(buffer: &mut Vec<u8>, event: &RecordEvent) -> Result<(), PluginError> {
    let record = &event.record;
    let line = EventLine {
        delivery_id: event.delivery_id,
        kind: event.kind.as_str(),
        attempt: event.attempt,
        record: RecordLine {
            id: &record.id,
            source: &record.source,
            record_type: &record.record_type,
            occurred_at: record
                .occurred_at
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            payload: Payload::of(record)?,
            metadata: &record.metadata,
            idempotency_key: record.idempotency_key.as_deref(),
        },
    };
    let start = buffer.len();
    match serde_json::to_writer(&mut *buffer, &line) {
        Ok(()) => {
            buffer.push(b'\n');
            Ok(())
        }
        Err(err) => {
            buffer.truncate(start);
            Err(PluginError::permanent(format!(
                "cannot serialize the event: {err}"
            )))
        }
    }
}

/// The plugin definition.
pub fn plugin() -> Plugin<JsonlOutput> {
    Plugin::new("jsonl-output", env!("CARGO_PKG_VERSION"))
        .description("Appends record events to a JSON Lines file, acknowledging after fsync")
        .output(|config: JsonlOutputConfig| async move { JsonlOutput::new(config) })
}

impl Output for JsonlOutput {
    async fn handle_event(&self, event: RecordEvent) -> Result<(), PluginError> {
        self.handle_batch(vec![event])
            .await
            .pop()
            .unwrap_or_else(|| Err(PluginError::retryable("no outcome for the event")))
    }

    /// Writes the whole batch with one write and one fsync, then acks every
    /// event in it; an event that cannot be serialized is nacked permanently
    /// and left out of the file.
    async fn handle_batch(&self, events: Vec<RecordEvent>) -> Vec<Result<(), PluginError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut buffer = Vec::with_capacity(events.len() * 256);
        for event in &events {
            outcomes.push(push_event_line(&mut buffer, event));
        }
        if buffer.is_empty() {
            return outcomes;
        }
        if let Err(err) = self.appender.append(buffer).await {
            tracing::warn!(path = %self.path.display(), error = %err, "Cannot append events.");
            let error =
                PluginError::retryable(format!("cannot append to {}: {err}", self.path.display()))
                    .with_code("write_failed");
            for outcome in &mut outcomes {
                if outcome.is_ok() {
                    *outcome = Err(error.clone());
                }
            }
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use switchyard_plugin_sdk::EventKind;

    use super::*;

    fn event(payload: &[u8]) -> RecordEvent {
        let mut record = Record::new("r1", "order").with_metadata("k", "v");
        record.source = "shop".to_owned();
        record.payload = payload.to_vec();
        record.occurred_at = chrono::DateTime::from_timestamp(1_700_000_000, 0);
        RecordEvent::new(42, EventKind::Created, record)
    }

    fn line(payload: &[u8]) -> String {
        let mut buffer = b"before\n".to_vec();
        push_event_line(&mut buffer, &event(payload)).unwrap();
        String::from_utf8(buffer).unwrap()
    }

    #[test]
    fn a_line_has_readmes_fields_in_readmes_order() {
        assert_eq!(
            line(br#"{"total":12}"#),
            "before\n{\"delivery_id\":42,\"kind\":\"created\",\"attempt\":1,\"record\":{\"id\":\"r1\",\"source\":\"shop\",\"type\":\"order\",\"occurred_at\":\"2023-11-14T22:13:20Z\",\"payload\":{\"total\":12},\"metadata\":{\"k\":\"v\"},\"idempotency_key\":null}}\n"
        );
    }

    #[test]
    fn a_one_line_payload_is_written_byte_for_byte() {
        let payload = br#"{"z": 1, "a": [1.50, "x\ny"], "m": {"b": null}}"#;
        let written = line(payload);
        let expected = format!("\"payload\":{},", std::str::from_utf8(payload).unwrap());
        assert!(written.contains(&expected), "{written}");
    }

    #[test]
    fn a_payload_spanning_lines_is_compacted_onto_one() {
        let written = line(b"{\n  \"total\": 12,\r\n  \"items\": [1, 2]\n}\n");
        assert_eq!(written.lines().count(), 2, "{written}");
        let event: serde_json::Value =
            serde_json::from_str(written.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            event["record"]["payload"],
            serde_json::json!({"total": 12, "items": [1, 2]})
        );
    }

    #[test]
    fn an_empty_payload_is_null() {
        let written = line(b"");
        assert!(written.contains("\"payload\":null,"), "{written}");
    }

    #[test]
    fn a_payload_that_is_not_json_fails_and_leaves_the_buffer_as_it_was() {
        for payload in [&b"{nope"[..], b"{\"a\": 1}\n{\"b\": 2}", b"\xff\xfe"] {
            let mut buffer = b"before\n".to_vec();
            let error = push_event_line(&mut buffer, &event(payload)).unwrap_err();
            assert!(!error.is_retryable());
            assert!(error.message().contains("\"r1\""), "{error}");
            assert_eq!(buffer, b"before\n");
        }
    }
}
