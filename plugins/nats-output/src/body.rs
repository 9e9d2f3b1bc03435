//! What one message carries: the event as JSON.

use serde_json::{Value, json};
use switchyard_plugin_sdk::{PluginError, RecordEvent};

/// The message body: `{"delivery_id", "kind", "attempt", "record": {"id",
/// "source", "type", "occurred_at", "payload", "metadata",
/// "idempotency_key"}}`, the shape `http-output` uses for each event.
///
/// # Errors
/// A permanent error for a record whose payload is not JSON.
pub fn body(event: &RecordEvent) -> Result<Vec<u8>, PluginError> {
    let record = &event.record;
    let payload = if record.payload.is_empty() {
        Value::Null
    } else {
        record.payload_json()?
    };
    let body = json!({
        "delivery_id": event.delivery_id,
        "kind": event.kind.as_str(),
        "attempt": event.attempt,
        "record": {
            "id": record.id,
            "source": record.source,
            "type": record.record_type,
            "occurred_at": record.occurred_at.map(|at| at.to_rfc3339()),
            "payload": payload,
            "metadata": record.metadata,
            "idempotency_key": record.idempotency_key,
        },
    });
    serde_json::to_vec(&body)
        .map_err(|err| PluginError::permanent(format!("nats-output: cannot serialize: {err}")))
}
