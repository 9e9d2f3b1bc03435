//! `jsonl-output`: an output that appends each event as one JSON line to a
//! file and acknowledges a batch only after it is on disk (`fdatasync`). See README.md.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::{ConfigError, ConfigErrors, Output, Plugin, PluginError, RecordEvent};

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
    fsync: bool,
    file: Arc<Mutex<File>>,
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
        Ok(JsonlOutput {
            path: config.path,
            fsync: config.fsync,
            file: Arc::new(Mutex::new(file)),
        })
    }
}

/// One event as its JSON line (without the newline).
fn event_line(event: &RecordEvent) -> Result<Vec<u8>, PluginError> {
    let record = &event.record;
    let payload = if record.payload.is_empty() {
        serde_json::Value::Null
    } else {
        record.payload_json()?
    };
    let line = serde_json::json!({
        "delivery_id": event.delivery_id,
        "kind": event.kind.as_str(),
        "attempt": event.attempt,
        "record": {
            "id": record.id,
            "source": record.source,
            "type": record.record_type,
            "occurred_at": record.occurred_at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            "payload": payload,
            "metadata": record.metadata,
            "idempotency_key": record.idempotency_key,
        },
    });
    serde_json::to_vec(&line)
        .map_err(|err| PluginError::permanent(format!("cannot serialize the event: {err}")))
}

/// Appends `buffer` and syncs; on a failed write, truncates back to the old
/// length so a partial line never stays in the file.
fn append(file: &Mutex<File>, buffer: &[u8], fsync: bool) -> std::io::Result<()> {
    let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
    let length = file.metadata()?.len();
    let written = file
        .write_all(buffer)
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
    if written.is_err() {
        let _ = file.set_len(length);
    }
    written
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
            match event_line(event) {
                Ok(line) => {
                    buffer.extend_from_slice(&line);
                    buffer.push(b'\n');
                    outcomes.push(Ok(()));
                }
                Err(error) => outcomes.push(Err(error)),
            }
        }
        if buffer.is_empty() {
            return outcomes;
        }
        let file = Arc::clone(&self.file);
        let fsync = self.fsync;
        let written = tokio::task::spawn_blocking(move || append(&file, &buffer, fsync))
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err.to_string())));
        if let Err(err) = written {
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
