//! The JSON shapes of the API (`docs/admin-api.md`) and their conversion to
//! and from domain types. Binary fields (checkpoints) are base64; bodies are
//! UTF-8 text.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Failure, HttpReply, Payload, PollBatch, Record, Role, WebhookDelivery};
use crate::pipeline::poll_control::LastPoll;
use crate::supervisor::{PluginHandle, PluginStatus};

/// Every field of a record but its id, with their JSON names and types:
/// together with [`RecordJson`], the one place the record's JSON shape is
/// written down. [`RecordJson`] (the calls' records, dead letters) and
/// [`StoredRecordJson`](super::data::StoredRecordJson) (stored records, whose
/// `id` is the hub's and whose record id is `source_id`) flatten it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFieldsJson {
    /// Where it came from.
    #[serde(default)]
    pub source: String,
    /// What kind of record it is.
    #[serde(default, rename = "type")]
    pub record_type: String,
    /// RFC 3339, or null.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Any JSON value.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// String metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The deduplication key, or null.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A record as the API shows and accepts it: `id` and the
/// [`RecordFieldsJson`]. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordJson {
    /// The record's id (required).
    pub id: String,
    /// Everything else.
    #[serde(flatten)]
    pub fields: RecordFieldsJson,
}

impl RecordFieldsJson {
    /// Splits a record into its id and the rest, in JSON form.
    pub fn split(record: Record) -> (String, RecordFieldsJson) {
        let Record {
            id,
            source,
            record_type,
            occurred_at,
            payload,
            metadata,
            idempotency_key,
        } = record;
        (
            id,
            RecordFieldsJson {
                source,
                record_type,
                occurred_at,
                payload: payload.to_value(),
                metadata,
                idempotency_key,
            },
        )
    }

    /// The record with id `id` and these fields.
    pub fn into_record(self, id: String) -> Record {
        Record {
            id,
            source: self.source,
            record_type: self.record_type,
            occurred_at: self.occurred_at,
            payload: Payload::from_value(&self.payload),
            metadata: self.metadata,
            idempotency_key: self.idempotency_key,
        }
    }
}

impl From<RecordJson> for Record {
    fn from(record: RecordJson) -> Self {
        record.fields.into_record(record.id)
    }
}

impl From<Record> for RecordJson {
    fn from(record: Record) -> Self {
        let (id, fields) = RecordFieldsJson::split(record);
        RecordJson { id, fields }
    }
}

/// A failure as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureJson {
    /// What went wrong.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// The plugin's retry-after hint in milliseconds, or null.
    pub retry_after_ms: Option<u64>,
    /// The plugin's code, or empty.
    pub code: String,
}

impl From<Failure> for FailureJson {
    fn from(failure: Failure) -> Self {
        FailureJson {
            message: failure.message,
            retryable: failure.retryable,
            retry_after_ms: failure
                .retry_after
                .map(|duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
            code: failure.code,
        }
    }
}

/// A plugin's status as `GET /api/v1/plugins[/NAME]` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginStatusJson {
    /// The instance name.
    pub name: String,
    /// `starting`, `running`, `stopping`, `stopped`, `backoff` or `failed`.
    pub state: &'static str,
    /// The pid, or null.
    pub pid: Option<u32>,
    /// `polling-input`, `webhook-input`, `enrichment`, `output`.
    pub roles: Vec<&'static str>,
    /// The plugin's own name, or null.
    pub plugin_name: Option<String>,
    /// The plugin's version, or null.
    pub version: Option<String>,
    /// The negotiated app protocol version, or null.
    pub protocol_version: Option<u32>,
    /// How many times the hub restarted it.
    pub restarts: u32,
    /// RFC 3339 UTC with milliseconds, or null.
    pub started_at: Option<String>,
    /// The last start failure or exit, or null.
    pub last_error: Option<String>,
    /// How and when the last process ended, or null.
    pub last_exit: Option<LastExitJson>,
    /// While in `backoff`: when the next start is due (RFC 3339), else null.
    pub next_restart_at: Option<String>,
    /// Running, and its last health check said SERVING.
    pub healthy: bool,
    /// Runs only while this hub holds its leased work (hubs sharing a
    /// PostgreSQL database): `stopped` then means another hub does it.
    pub on_demand: bool,
    /// The circuit breaker: `closed`, `open` or `half-open`.
    pub circuit_breaker: &'static str,
    /// For an output: whether its lag is past its `lag_alert` (always
    /// false without one); null for other plugins.
    pub lagging: Option<bool>,
    /// What the plugin does (from its metadata), or null before it first
    /// started or when it says nothing.
    pub description: Option<String>,
    /// The JSON Schema of its `config` table (from its metadata), or null
    /// when it publishes none (or one that is not JSON).
    pub config_schema: Option<serde_json::Value>,
    /// Polling inputs: when the last poll ended (RFC 3339), or null.
    pub last_poll_at: Option<String>,
    /// Polling inputs: records the last poll committed, or null.
    pub last_poll_records: Option<usize>,
    /// Polling inputs: why the last poll failed, or null when it succeeded
    /// (or none ran yet).
    pub last_poll_error: Option<String>,
}

/// How a plugin's last process ended, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastExitJson {
    /// Why it ended.
    pub reason: String,
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
}

impl PluginStatusJson {
    /// The status of `plugin` now, its circuit breaker included.
    pub fn of(plugin: &PluginHandle) -> Self {
        PluginStatusJson {
            circuit_breaker: plugin.breaker_state().as_str(),
            lagging: crate::pipeline::lag_alert::global().lagging(plugin.name()),
            ..PluginStatusJson::from(plugin.status())
        }
    }

    /// This status with the facts of the plugin's last poll, if any.
    pub fn with_last_poll(mut self, last: Option<LastPoll>) -> Self {
        if let Some(last) = last {
            self.last_poll_at = Some(last.at.to_rfc3339_opts(SecondsFormat::Millis, true));
            self.last_poll_records = Some(last.records);
            self.last_poll_error = last.error;
        }
        self
    }
}

impl From<PluginStatus> for PluginStatusJson {
    fn from(status: PluginStatus) -> Self {
        PluginStatusJson {
            name: status.name,
            state: status.state.as_str(),
            pid: status.pid,
            roles: status.roles.iter().copied().map(Role::as_str).collect(),
            plugin_name: status.plugin_name,
            version: status.version,
            protocol_version: status.protocol_version,
            restarts: status.restarts,
            started_at: status
                .started_at
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
            last_error: status.last_error,
            last_exit: status.last_exit.map(|exit| LastExitJson {
                reason: exit.reason,
                at: exit.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            }),
            next_restart_at: status
                .next_restart_at
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
            healthy: status.healthy,
            on_demand: status.on_demand,
            circuit_breaker: "closed",
            lagging: None,
            description: status.description.filter(|text| !text.is_empty()),
            config_schema: status
                .config_schema
                .and_then(|text| serde_json::from_str(&text).ok()),
            last_poll_at: None,
            last_poll_records: None,
            last_poll_error: None,
        }
    }
}

/// The body of `call/poll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    /// The checkpoint, base64, or null.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// A soft limit; 0 for none.
    #[serde(default)]
    pub max_records: u32,
}

/// One batch in the answer of `call/poll`.
#[derive(Debug, Serialize)]
pub struct PollBatchJson {
    /// The records.
    pub records: Vec<RecordJson>,
    /// The checkpoint, base64, or null.
    pub checkpoint: Option<String>,
}

impl From<PollBatch> for PollBatchJson {
    fn from(batch: PollBatch) -> Self {
        PollBatchJson {
            records: batch.records.into_iter().map(RecordJson::from).collect(),
            checkpoint: batch.checkpoint.map(|bytes| encode_base64(&bytes)),
        }
    }
}

/// The body of `call/webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// The HTTP method (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    /// The request path (default `/webhooks/NAME`).
    #[serde(default)]
    pub path: Option<String>,
    /// The query string without `?`.
    #[serde(default)]
    pub query: String,
    /// Headers as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as UTF-8 text.
    #[serde(default)]
    pub body: String,
}

fn default_method() -> String {
    "POST".to_owned()
}

impl WebhookBody {
    /// The delivery this body describes, for plugin `name` (the default
    /// path is `/webhooks/NAME`), with the hub's `delivery_id`.
    pub fn into_delivery(
        self,
        name: &str,
        delivery_id: String,
        received_at: DateTime<Utc>,
    ) -> WebhookDelivery {
        WebhookDelivery {
            method: self.method,
            path: self.path.unwrap_or_else(|| format!("/webhooks/{name}")),
            query: self.query,
            headers: self.headers,
            body: self.body.into_bytes(),
            delivery_id,
            received_at,
        }
    }
}

impl Default for WebhookBody {
    fn default() -> Self {
        WebhookBody {
            method: default_method(),
            path: None,
            query: String::new(),
            headers: Vec::new(),
            body: String::new(),
        }
    }
}

/// The reply in the answer of `call/webhook`.
#[derive(Debug, Serialize)]
pub struct HttpReplyJson {
    /// The status code.
    pub status: u16,
    /// Headers as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

impl From<HttpReply> for HttpReplyJson {
    fn from(reply: HttpReply) -> Self {
        HttpReplyJson {
            status: reply.status,
            headers: reply.headers,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }
    }
}

/// The body of `call/enrich`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichBody {
    /// The records to enrich.
    pub records: Vec<RecordJson>,
}

/// The body of `call/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    /// The events to send.
    pub events: Vec<EventJson>,
}

/// One event in `call/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventJson {
    /// `created` or `updated`.
    pub kind: EventKindJson,
    /// The record.
    pub record: RecordJson,
}

/// An event kind in JSON.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKindJson {
    /// Stored for the first time.
    Created,
    /// A stored record changed.
    Updated,
}

/// Encodes bytes as standard padded base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 (padding optional).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('='))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_accept_the_documented_minimum() {
        let record: RecordJson = serde_json::from_str(r#"{"id":"1","payload":{"a":1}}"#).unwrap();
        assert_eq!(record.fields.source, "");
        assert_eq!(record.fields.occurred_at, None);
        let full: RecordJson = serde_json::from_str(
            r#"{"id":"42","source":"github","type":"issue.opened","occurred_at":"2026-11-23T18:00:00Z",
               "payload":{"title":"It broke"},"metadata":{"x":"y"},"idempotency_key":null}"#,
        )
        .unwrap();
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["occurred_at"], "2026-11-23T18:00:00Z");
        assert_eq!(json["type"], "issue.opened");
        assert_eq!(
            json,
            serde_json::json!({"id": "42", "source": "github", "type": "issue.opened",
                "occurred_at": "2026-11-23T18:00:00Z", "payload": {"title": "It broke"},
                "metadata": {"x": "y"}, "idempotency_key": null})
        );
        assert_eq!(
            Record::from(full.clone()),
            Record::from(RecordJson::from(Record::from(full)))
        );
        let error = serde_json::from_str::<RecordJson>(r#"{"id":"1","bogus":1}"#).unwrap_err();
        assert!(error.to_string().contains("bogus"), "{error}");
        assert!(serde_json::from_str::<RecordJson>(r#"{"payload":1}"#).is_err());
    }

    #[test]
    fn base64_round_trips_with_or_without_padding() {
        assert_eq!(encode_base64(b"ab"), "YWI=");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YWI").unwrap(), b"ab");
    }
}
