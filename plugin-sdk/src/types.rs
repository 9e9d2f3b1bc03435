//! The plain Rust types a plugin author works with: records, events, poll
//! requests and batches, webhook requests and replies, roles and metadata.
//!
//! No protobuf type appears here; `services/convert.rs` converts. Every type
//! is `#[non_exhaustive]` so fields can be added without breaking plugins:
//! build them with their constructors and `with_*` methods.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::PluginError;

/// One unit of data moving through Switchyard.
///
/// The payload is kept as raw JSON bytes so a record passes through a plugin
/// without being parsed unless the plugin wants to look inside; use
/// [`Record::payload_json`], [`Record::payload_as`] and [`Record::set_payload`]
/// to read and write it.
///
/// ```
/// use switchyard_plugin_sdk::Record;
///
/// let record = Record::new("42", "order.created")
///     .with_source("shop")
///     .with_payload(&serde_json::json!({"total": 12}))?
///     .with_metadata("region", "eu");
/// assert_eq!(record.payload_json()?["total"], 12);
/// # Ok::<(), switchyard_plugin_sdk::PluginError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The record's identifier, unique within its source. Required: the hub
    /// rejects records with an empty id.
    pub id: String,
    /// Where the record came from. Inputs may leave it empty; the hub then
    /// fills in the plugin instance's name.
    pub source: String,
    /// What kind of record this is (for example `"issue.opened"`).
    pub record_type: String,
    /// When the thing the record describes happened upstream, when known.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The content as a UTF-8 JSON document (any JSON value). Empty means no payload.
    pub payload: Vec<u8>,
    /// String metadata, for example HTTP headers or upstream attributes.
    pub metadata: BTreeMap<String, String>,
    /// Optional deduplication key; when absent the hub uses the id.
    pub idempotency_key: Option<String>,
}

impl Record {
    /// A record with the given id and type, no payload and no metadata.
    pub fn new(id: impl Into<String>, record_type: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            record_type: record_type.into(),
            ..Record::default()
        }
    }

    /// Sets the payload to `value` serialized as JSON (builder style).
    ///
    /// # Errors
    /// Fails (permanently) when `value` cannot be serialized as JSON, for
    /// example a map with non-string keys.
    pub fn with_payload<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, PluginError> {
        self.set_payload(value)?;
        Ok(self)
    }

    /// Sets one metadata entry (builder style).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets when the record's event happened upstream (builder style).
    pub fn with_occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(at);
        self
    }

    /// Sets where the record came from (builder style).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the deduplication key (builder style).
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the payload to raw bytes, which should be UTF-8 JSON (builder
    /// style; see [`Record::with_payload`] to serialize a value).
    pub fn with_payload_bytes(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = payload.into();
        self
    }

    /// Parses the payload as a JSON value; an empty payload reads as `null`.
    ///
    /// # Errors
    /// A permanent failure naming the record when the payload is not valid JSON.
    pub fn payload_json(&self) -> Result<serde_json::Value, PluginError> {
        if self.payload.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        self.payload_as()
    }

    /// Deserializes the payload into any serde type.
    ///
    /// # Errors
    /// A permanent failure naming the record when the payload does not match `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.payload).map_err(|err| {
            PluginError::permanent(format!(
                "the payload of record {:?} is not the expected JSON: {err}",
                self.id
            ))
            .with_code("bad_payload")
        })
    }

    /// Replaces the payload with `value` serialized as JSON.
    ///
    /// # Errors
    /// A permanent failure when `value` cannot be serialized as JSON.
    pub fn set_payload<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PluginError> {
        self.payload = serde_json::to_vec(value).map_err(|err| {
            PluginError::permanent(format!("cannot serialize the payload as JSON: {err}"))
                .with_code("bad_payload")
        })?;
        Ok(())
    }
}

/// What happened to a stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The record was stored for the first time.
    Created,
    /// A stored record changed.
    Updated,
}

impl EventKind {
    /// `"created"` or `"updated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
        }
    }
}

/// One event about one record, delivered to an output.
///
/// ```
/// use switchyard_plugin_sdk::{EventKind, Record, RecordEvent};
///
/// let event = RecordEvent::new(7, EventKind::Updated, Record::new("42", "order")).with_attempt(2);
/// assert_eq!((event.delivery_id, event.attempt), (7, 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordEvent {
    /// Unique per output and the same on every redelivery, so outputs can deduplicate.
    pub delivery_id: u64,
    /// Created or updated.
    pub kind: EventKind,
    /// The record as stored (after enrichment).
    pub record: Record,
    /// 1 on the first delivery, incremented on every redelivery.
    pub attempt: u32,
}

impl RecordEvent {
    /// The first delivery (attempt 1) of event `delivery_id` about `record`.
    pub fn new(delivery_id: u64, kind: EventKind, record: Record) -> Self {
        RecordEvent {
            delivery_id,
            kind,
            record,
            attempt: 1,
        }
    }

    /// Sets the delivery attempt, 1 for the first (builder style).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }
}

/// What the hub asks of a poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollRequest {
    /// The last checkpoint the hub committed, exactly as the plugin sent it;
    /// `None` on the very first poll.
    pub checkpoint: Option<Vec<u8>>,
    /// A soft limit on how many records to return in this poll; 0 means no limit.
    pub max_records: u32,
}

impl PollRequest {
    /// The very first poll: no checkpoint, no limit.
    pub fn new() -> Self {
        PollRequest::default()
    }

    /// Continues from `checkpoint` (builder style).
    pub fn with_checkpoint(mut self, checkpoint: impl Into<Vec<u8>>) -> Self {
        self.checkpoint = Some(checkpoint.into());
        self
    }

    /// Sets the soft limit on records, 0 for none (builder style).
    pub fn with_max_records(mut self, max_records: u32) -> Self {
        self.max_records = max_records;
        self
    }
}

/// One message of a poll's stream: records, a checkpoint covering every
/// record sent so far in the poll, or both. [`Emitter`](crate::Emitter)
/// sends them; [`TestHarness::poll`](crate::testing::TestHarness::poll)
/// collects them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollBatch {
    /// The records in this message.
    pub records: Vec<Record>,
    /// The checkpoint it carried, if any.
    pub checkpoint: Option<Vec<u8>>,
}

impl PollBatch {
    /// A message carrying `records` and no checkpoint.
    pub fn new(records: Vec<Record>) -> Self {
        PollBatch {
            records,
            checkpoint: None,
        }
    }

    /// Adds the checkpoint that covers the records (builder style).
    pub fn with_checkpoint(mut self, checkpoint: impl Into<Vec<u8>>) -> Self {
        self.checkpoint = Some(checkpoint.into());
        self
    }
}

/// One HTTP webhook delivery, exactly as the hub received it (secrets removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookRequest {
    /// The HTTP method, for example `"POST"`.
    pub method: String,
    /// The request path, for example `"/webhooks/github"`.
    pub path: String,
    /// The raw query string without the leading `?`.
    pub query: String,
    /// The headers in order, as (name, value); names may repeat.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes.
    pub body: Vec<u8>,
    /// A stable id for this delivery, the same on every retry.
    pub delivery_id: String,
    /// When the hub received the request.
    pub received_at: Option<DateTime<Utc>>,
}

impl WebhookRequest {
    /// A request with the given method and path, no headers and an empty body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        WebhookRequest {
            method: method.into(),
            path: path.into(),
            ..WebhookRequest::default()
        }
    }

    /// Appends a header (builder style).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the raw query string, without the leading `?` (builder style).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Sets the delivery id (builder style).
    pub fn with_delivery_id(mut self, delivery_id: impl Into<String>) -> Self {
        self.delivery_id = delivery_id.into();
        self
    }

    /// Sets when the hub received the request (builder style).
    pub fn with_received_at(mut self, at: DateTime<Utc>) -> Self {
        self.received_at = Some(at);
        self
    }

    /// A POST request with the given JSON body and a `content-type` header
    /// (handy in tests).
    pub fn json(body: &serde_json::Value) -> Self {
        WebhookRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            ..WebhookRequest::default()
        }
    }

    /// The first value of the header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Parses the body as JSON into any serde type.
    ///
    /// # Errors
    /// A permanent failure (the hub answers 400) when the body is not that JSON.
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            PluginError::permanent(format!("the request body is not valid JSON: {err}"))
                .with_code("bad_body")
        })
    }
}

/// The HTTP reply a webhook plugin wants sent (only used when the plugin
/// declared [`Plugin::webhook_sync_reply`](crate::Plugin::webhook_sync_reply)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpReply {
    /// The HTTP status code, 200 to 599.
    pub status: u16,
    /// Reply headers as (name, value).
    pub headers: Vec<(String, String)>,
    /// Reply body bytes.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A reply with the given status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        HttpReply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header (builder style).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and a `content-type` header (builder style).
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .push(("content-type".into(), content_type.to_owned()));
        self.body = body.into();
        self
    }
}

/// What a webhook delivery turned into.
///
/// ```
/// use switchyard_plugin_sdk::{HttpReply, Record, WebhookResponse};
///
/// let response = WebhookResponse::records(vec![Record::new("42", "push")])
///     .with_reply(HttpReply::new(200).with_body("text/plain", "ok"));
/// assert_eq!(response.reply.map(|reply| reply.status), Some(200));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookResponse {
    /// Records to store; may be empty (for example for a ping).
    pub records: Vec<Record>,
    /// The reply the sender should get, when the plugin answers synchronously.
    pub reply: Option<HttpReply>,
}

impl WebhookResponse {
    /// A response carrying these records and no reply.
    pub fn records(records: Vec<Record>) -> Self {
        WebhookResponse {
            records,
            reply: None,
        }
    }

    /// Sets the reply the sender gets (builder style; used when the plugin
    /// declared [`Plugin::webhook_sync_reply`](crate::Plugin::webhook_sync_reply)).
    pub fn with_reply(mut self, reply: impl Into<Option<HttpReply>>) -> Self {
        self.reply = reply.into();
        self
    }
}

/// A role a plugin serves (as reported by `GetMetadata`): the one role
/// enum the hub and the SDK share (`switchyard_wire::Role`), so both name
/// roles alike (`polling-input`, ... from `as_str`).
pub use switchyard_wire::Role as RoleKind;

/// What a plugin says about itself in `GetMetadata`, as plain types (see
/// [`TestHarness::metadata`](crate::testing::TestHarness::metadata)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metadata {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The roles it serves.
    pub roles: Vec<RoleKind>,
    /// The config JSON Schema (`Value::Null` when the plugin sent none).
    pub config_schema: serde_json::Value,
    /// The one-line description.
    pub description: String,
    /// Whether webhook replies are synchronous.
    pub webhook_sync_reply: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payload_helpers_round_trip() {
        let record = Record::new("1", "t")
            .with_payload(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(record.payload, br#"{"a":1}"#);
        assert_eq!(record.payload_json().unwrap()["a"], 1);
        assert_eq!(
            Record::new("2", "t").payload_json().unwrap(),
            serde_json::Value::Null
        );
        let bad = Record::new("3", "t").with_payload_bytes("{");
        let err = bad.payload_json().unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("record \"3\""), "{err}");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let request = WebhookRequest::json(&serde_json::json!({}));
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        assert_eq!(request.header("x-missing"), None);
    }
}
