//! `generator`: a polling input that emits synthetic, deterministic records,
//! for demos, load tests and pipelines under construction. See README.md.

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::{
    ConfigErrors, Emitter, Plugin, PluginError, PollRequest, PollingInput, Record,
};

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Records emitted per poll (at most; see `total`).
    #[serde(default = "default_hundred")]
    pub records_per_poll: u64,
    /// Records per streamed batch; a checkpoint follows every batch.
    #[serde(default = "default_hundred")]
    pub batch_size: u64,
    /// Stop emitting once this many records were emitted across all polls.
    #[serde(default)]
    pub total: Option<u64>,
    /// The type of every record.
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// The source of every record; empty lets the hub use the instance name.
    #[serde(default)]
    pub source: Option<String>,
    /// Approximate size in bytes of the `filler` text field of each payload.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
}

fn default_hundred() -> u64 {
    100
}
fn default_record_type() -> String {
    "generated".into()
}
fn default_payload_bytes() -> usize {
    64
}

/// The largest `payload_bytes` accepted (records must fit gRPC messages comfortably).
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The configured generator.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    filler: String,
}

impl Generator {
    /// Validates the configuration and builds the generator.
    ///
    /// # Errors
    /// Every out-of-range key.
    pub fn new(config: GeneratorConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if config.batch_size == 0 {
            errors.push("batch_size", "must be at least 1");
        }
        if config.record_type.is_empty() {
            errors.push("record_type", "must not be empty");
        }
        if config.payload_bytes > MAX_PAYLOAD_BYTES {
            errors.push(
                "payload_bytes",
                format!("must be at most {MAX_PAYLOAD_BYTES}"),
            );
        }
        errors.into_result()?;
        let filler = "lorem ipsum dolor sit amet "
            .chars()
            .cycle()
            .take(config.payload_bytes)
            .collect();
        Ok(Generator { config, filler })
    }

    /// The record with sequence number `seq` (the same on every call).
    pub fn record(&self, seq: u64) -> Result<Record, PluginError> {
        let mut record = Record::new(seq.to_string(), self.config.record_type.clone())
            .with_payload(&serde_json::json!({ "seq": seq, "filler": self.filler }))?;
        if let Some(source) = &self.config.source {
            record.source.clone_from(source);
        }
        Ok(record)
    }
}

/// The plugin definition.
pub fn plugin() -> Plugin<Generator> {
    Plugin::new("generator", env!("CARGO_PKG_VERSION"))
        .description("Emits synthetic records with sequential ids and a checkpoint")
        .polling_input(|config: GeneratorConfig| async move { Generator::new(config) })
}

/// Reads a checkpoint: the next sequence number as decimal UTF-8.
fn parse_checkpoint(checkpoint: Option<&[u8]>) -> Result<u64, PluginError> {
    let Some(bytes) = checkpoint else {
        return Ok(0);
    };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            PluginError::permanent(format!(
                "the checkpoint {:?} is not a decimal sequence number",
                String::from_utf8_lossy(bytes)
            ))
            .with_code("bad_checkpoint")
        })
}

impl PollingInput for Generator {
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let start = parse_checkpoint(request.checkpoint.as_deref())?;
        let mut count = self.config.records_per_poll;
        if request.max_records > 0 {
            count = count.min(u64::from(request.max_records));
        }
        let mut end = start.saturating_add(count);
        if let Some(total) = self.config.total {
            end = end.min(total.max(start));
        }
        let mut next = start;
        while next < end {
            let batch_end = next.saturating_add(self.config.batch_size).min(end);
            let records = (next..batch_end)
                .map(|seq| self.record(seq))
                .collect::<Result<Vec<_>, _>>()?;
            emitter
                .emit_with_checkpoint(records, batch_end.to_string())
                .await?;
            next = batch_end;
        }
        tracing::debug!(from = start, to = end, "Generated records.");
        Ok(())
    }
}
