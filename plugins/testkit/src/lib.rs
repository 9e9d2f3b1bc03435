//! `testkit`: a plugin serving all four roles with behaviour steered by its
//! configuration, for the hub's end-to-end tests and benchmarks (not for
//! production data). See README.md for every config key.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::{
    ConfigErrors, Emitter, Enricher, Health, HttpReply, Output, Plugin, PluginError, PollRequest,
    PollingInput, Record, RecordEvent, WebhookInput, WebhookRequest, WebhookResponse,
};

/// The `config` table (every key optional).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestkitConfig {
    /// Appended by Enrich to `metadata["chain"]` (comma-separated).
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Record ids Enrich fails permanently.
    #[serde(default)]
    pub fail_ids: Vec<String>,
    /// Record ids HandleEvent nacks permanently.
    #[serde(default)]
    pub nack_ids: Vec<String>,
    /// Record ids HandleEvent nacks as retryable, asking to wait 100 ms.
    #[serde(default)]
    pub retry_ids: Vec<String>,
    /// How many batches each poll emits.
    #[serde(default = "default_poll_batches")]
    pub poll_batches: u32,
    /// How many records each poll batch holds.
    #[serde(default = "default_records_per_batch")]
    pub records_per_batch: u32,
    /// On Configure, log one line at each level (trace to error).
    #[serde(default)]
    pub log_lines: bool,
    /// Exit the process with this code right after answering Configure.
    #[serde(default)]
    pub exit_on_configure: Option<i32>,
    /// Milliseconds Enrich sleeps before answering each record.
    #[serde(default)]
    pub enrich_delay_ms: u64,
    /// Milliseconds HandleEvent sleeps before answering each event.
    #[serde(default)]
    pub event_delay_ms: u64,
    /// Report NOT_SERVING (through the SDK's `Health`) while this file
    /// exists, as a connector whose upstream is down would; checked every 50 ms.
    #[serde(default)]
    pub not_serving_while_exists: Option<PathBuf>,
    /// Refuse Configure as unavailable (retryable, so the hub restarts the
    /// plugin with backoff) while this file exists, as a connector whose
    /// upstream cannot be reached at start would.
    #[serde(default)]
    pub unavailable_while_exists: Option<PathBuf>,
    /// After emitting its first batch, Poll waits while this file exists
    /// (checked every 20 ms), so a test can act while a poll is under way.
    #[serde(default)]
    pub poll_pause_while_exists: Option<PathBuf>,
}

fn default_tag() -> String {
    "testkit".into()
}
fn default_poll_batches() -> u32 {
    2
}
fn default_records_per_batch() -> u32 {
    3
}

/// The configured plugin.
#[derive(Debug)]
pub struct Testkit {
    config: TestkitConfig,
    fail_ids: HashSet<String>,
    nack_ids: HashSet<String>,
    retry_ids: HashSet<String>,
    _health_watcher: Option<AbortOnDrop>,
}

/// Stops a background task when the instance that started it is replaced.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Testkit {
    /// Builds the plugin from its configuration, performing the Configure-time
    /// side effects (`log_lines`, `exit_on_configure`, the health watcher).
    ///
    /// # Errors
    /// Unavailable while `unavailable_while_exists` names an existing file.
    pub fn new(config: TestkitConfig, health: &Health) -> Result<Self, ConfigErrors> {
        if let Some(path) = &config.unavailable_while_exists
            && path.exists()
        {
            return Err(PluginError::retryable(format!(
                "the upstream is unreachable while {} exists",
                path.display()
            ))
            .into());
        }
        let health_watcher = config
            .not_serving_while_exists
            .clone()
            .map(|path| watch_health_file(path, health.clone()));
        if config.log_lines {
            tracing::trace!("testkit log at trace");
            tracing::debug!("testkit log at debug");
            tracing::info!("testkit log at info");
            tracing::warn!("testkit log at warn");
            tracing::error!("testkit log at error");
        }
        if let Some(code) = config.exit_on_configure {
            // The factory runs before Configure's answer is sent; give the
            // answer time to reach the hub, then die as a crashing plugin would.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                std::process::exit(code);
            });
        }
        Ok(Testkit {
            fail_ids: config.fail_ids.iter().cloned().collect(),
            nack_ids: config.nack_ids.iter().cloned().collect(),
            retry_ids: config.retry_ids.iter().cloned().collect(),
            config,
            _health_watcher: health_watcher,
        })
    }
}

/// Says NOT_SERVING while `path` exists, SERVING otherwise, checking every 50 ms.
fn watch_health_file(path: PathBuf, health: Health) -> AbortOnDrop {
    let task = tokio::spawn(async move {
        loop {
            if path.exists() {
                health.set_not_serving(format!("{} exists", path.display()));
            } else {
                health.set_serving();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    AbortOnDrop(task.abort_handle())
}

/// The plugin definition: all four roles, synchronous webhook replies.
pub fn plugin() -> Plugin<Testkit> {
    let health = Health::new();
    Plugin::new("testkit", env!("CARGO_PKG_VERSION"))
        .description("Test and benchmark plugin serving every role, steered by its configuration")
        .webhook_sync_reply(true)
        .health(health.clone())
        .factory(move |config: TestkitConfig| {
            let health = health.clone();
            async move { Testkit::new(config, &health) }
        })
        .polling_input()
        .webhook_input()
        .enricher()
        .output()
}

impl PollingInput for Testkit {
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let mut next: u64 = match request.checkpoint {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| {
                    PluginError::permanent(format!(
                        "the checkpoint {:?} is not a decimal count",
                        String::from_utf8_lossy(&bytes)
                    ))
                })?,
        };
        for batch in 0..self.config.poll_batches {
            if batch == 1
                && let Some(path) = &self.config.poll_pause_while_exists
            {
                while path.exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let records = (next..next + u64::from(self.config.records_per_batch))
                .map(|n| {
                    Record::new(n.to_string(), "testkit.poll")
                        .with_payload(&serde_json::json!({ "n": n }))
                })
                .collect::<Result<Vec<_>, _>>()?;
            next += u64::from(self.config.records_per_batch);
            emitter
                .emit_with_checkpoint(records, next.to_string())
                .await?;
        }
        Ok(())
    }
}

/// The id of a webhook item: its `id` field, a string or a number.
fn item_record(item: &serde_json::Value, index: Option<usize>) -> Result<Record, PluginError> {
    let place = index.map_or_else(|| "the body".to_owned(), |index| format!("item {index}"));
    let object = item
        .as_object()
        .ok_or_else(|| PluginError::permanent(format!("{place} is not a JSON object")))?;
    let id = match object.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => id.clone(),
        Some(serde_json::Value::Number(id)) => id.to_string(),
        _ => {
            return Err(PluginError::permanent(format!(
                "{place} has no `id` field (a non-empty string or a number)"
            )));
        }
    };
    let record_type = object
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("webhook");
    Record::new(id, record_type).with_payload(item)
}

impl WebhookInput for Testkit {
    async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, PluginError> {
        let body: serde_json::Value = request.body_json()?;
        let mut records = match &body {
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| item_record(item, Some(index)))
                .collect::<Result<Vec<_>, _>>()?,
            serde_json::Value::Object(_)
                if body.get("challenge").is_some() && body.get("id").is_none() =>
            {
                Vec::new()
            }
            serde_json::Value::Object(_) => vec![item_record(&body, None)?],
            _ => {
                return Err(PluginError::permanent(
                    "the body is neither a JSON object nor an array",
                ));
            }
        };
        for record in &mut records {
            if !request.delivery_id.is_empty() {
                record
                    .metadata
                    .insert("delivery_id".into(), request.delivery_id.clone());
            }
        }
        let reply = body.get("challenge").map(|challenge| {
            let text = challenge
                .as_str()
                .map_or_else(|| challenge.to_string(), str::to_owned);
            HttpReply::new(200).with_body("text/plain", text)
        });
        Ok(WebhookResponse::records(records).with_reply(reply))
    }
}

impl Enricher for Testkit {
    async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
        if self.config.enrich_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.enrich_delay_ms)).await;
        }
        if self.fail_ids.contains(&record.id) {
            return Err(PluginError::permanent(format!(
                "testkit fails record {:?} as configured by fail_ids",
                record.id
            ))
            .with_code("fail_ids"));
        }
        let chain = record.metadata.entry("chain".into()).or_default();
        if !chain.is_empty() {
            chain.push(',');
        }
        chain.push_str(&self.config.tag);
        Ok(record)
    }
}

impl Output for Testkit {
    async fn handle_event(&self, event: RecordEvent) -> Result<(), PluginError> {
        if self.config.event_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.event_delay_ms)).await;
        }
        let id = &event.record.id;
        if self.nack_ids.contains(id) {
            return Err(PluginError::permanent(format!(
                "testkit rejects record {id:?} as configured by nack_ids"
            ))
            .with_code("nack_ids"));
        }
        if self.retry_ids.contains(id) {
            return Err(PluginError::retryable(format!(
                "testkit asks to retry record {id:?} as configured by retry_ids"
            ))
            .with_retry_after(Duration::from_millis(100))
            .with_code("retry_ids"));
        }
        Ok(())
    }
}
