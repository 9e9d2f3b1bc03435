//! The hub's own types for what travels between it and its plugins: records,
//! failures, events, metadata. They are what the supervisor, the HTTP API and
//! (later) the pipeline work with; only `rpc/` converts them to and from the
//! generated protobuf types, so the wire contract can evolve in one place.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

mod payload;

pub use payload::Payload;

/// A role a plugin serves (one binary may serve several): the one `Role`
/// the hub, the SDK and `switchyard new` share.
pub use switchyard_wire::Role;

/// What a plugin says about itself in `GetMetadata`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginMetadata {
    /// The plugin's own name (may differ from the instance name).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The roles served; never empty.
    pub roles: Vec<Role>,
    /// A JSON Schema for the `config` table, or empty.
    pub config_schema: String,
    /// One line saying what the plugin does.
    pub description: String,
    /// Webhook inputs only: the HTTP client waits for `HandleWebhook`'s reply.
    pub webhook_sync_reply: bool,
}

/// One problem a plugin found in its `config` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// A dotted path inside `config`, or empty for the table as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// One unit of data moving through Switchyard.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unique within its source.
    pub id: String,
    /// Where the record came from (may be empty from an input plugin).
    pub source: String,
    /// What kind of record this is.
    pub record_type: String,
    /// When the thing happened upstream, if known.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The content: any JSON value, as the text it arrived in.
    pub payload: Payload,
    /// String metadata (headers, upstream attributes).
    pub metadata: BTreeMap<String, String>,
    /// An optional deduplication key.
    pub idempotency_key: Option<String>,
}

impl Record {
    /// About how many bytes the record's text takes (payload, id, source,
    /// type, metadata, idempotency key): what the hub's memory bounds count
    /// (the outbox feed, an output's scan), not an exact heap size.
    pub fn byte_len(&self) -> usize {
        let metadata: usize = self
            .metadata
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        self.payload.as_str().len()
            + self.id.len()
            + self.source.len()
            + self.record_type.len()
            + metadata
            + self.idempotency_key.as_ref().map_or(0, String::len)
    }
}

/// Why a call, or one item of a streamed call, failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A human-readable description.
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
    /// How long the plugin asks the hub to wait before the next attempt.
    pub retry_after: Option<Duration>,
    /// A machine-readable code chosen by the plugin, or empty.
    pub code: String,
}

/// A poll request: what is new since `checkpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollRequest {
    /// The last committed checkpoint, exactly as the plugin sent it.
    pub checkpoint: Option<Vec<u8>>,
    /// A soft limit on the records to return; 0 means none.
    pub max_records: u32,
}

/// One batch of a poll's output.
#[derive(Debug, Clone, PartialEq)]
pub struct PollBatch {
    /// Records fetched, in order.
    pub records: Vec<Record>,
    /// When present, covers every record sent so far in this poll.
    pub checkpoint: Option<Vec<u8>>,
}

/// One HTTP webhook delivery, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The raw query string without `?`.
    pub query: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// A stable id for this delivery.
    pub delivery_id: String,
    /// When the hub received it.
    pub received_at: DateTime<Utc>,
}

/// What a webhook plugin made of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOutcome {
    /// Records to store.
    pub records: Vec<Record>,
    /// The reply to send, for plugins that answer synchronously.
    pub reply: Option<HttpReply>,
}

/// An HTTP reply a webhook plugin wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code, 200 to 599.
    pub status: u16,
    /// The reply headers.
    pub headers: Vec<(String, String)>,
    /// The reply body.
    pub body: Vec<u8>,
}

/// The outcome of enriching one record.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrichOutcome {
    /// The enriched record.
    Enriched(Record),
    /// Why the record could not be enriched.
    Failed(Failure),
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Stored for the first time.
    Created,
    /// A stored record changed.
    Updated,
}

/// One event about one record, for an output.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvent {
    /// Unique per output, stable across redeliveries.
    pub delivery_id: u64,
    /// Created or updated.
    pub kind: EventKind,
    /// The record as stored (shared with the outbox event it came from).
    pub record: Arc<Record>,
    /// 1 on the first delivery.
    pub attempt: u32,
}

/// An output's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAck {
    /// The delivery id of the event this answers.
    pub delivery_id: u64,
    /// `None` when delivered; the reason when not (a nack).
    pub failure: Option<Failure>,
}
