//! What one POST carries: the JSON body and its `webhook-id`.

use serde_json::{Value, json};
use switchyard_plugin_sdk::{PluginError, RecordEvent};

/// The `type` of every body.
pub const BODY_TYPE: &str = "switchyard.events";

/// The `webhook-id` of a batch: its events' delivery ids joined with `-`
/// (`"1001"` for one event, `"1001-1002-1005"` for three). The same events
/// redelivered in the same batch get the same id; each event's own
/// `delivery_id` in the body is what a receiver deduplicates on.
pub fn message_id(events: &[RecordEvent]) -> String {
    events
        .iter()
        .map(|event| event.delivery_id.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// The body: `{"type": "switchyard.events", "timestamp": RFC 3339,
/// "data": [event, …]}`, each event `{"delivery_id", "kind", "attempt",
/// "record": {"id", "source", "type", "occurred_at", "payload", "metadata",
/// "idempotency_key"}}`.
///
/// # Errors
/// A permanent error for a record whose payload is not JSON.
pub fn body(events: &[RecordEvent], timestamp: &str) -> Result<Vec<u8>, PluginError> {
    let data = events
        .iter()
        .map(event_json)
        .collect::<Result<Vec<_>, _>>()?;
    let body = json!({"type": BODY_TYPE, "timestamp": timestamp, "data": data});
    serde_json::to_vec(&body)
        .map_err(|err| PluginError::permanent(format!("http-output: cannot serialize: {err}")))
}

fn event_json(event: &RecordEvent) -> Result<Value, PluginError> {
    let record = &event.record;
    let payload = if record.payload.is_empty() {
        Value::Null
    } else {
        record.payload_json()?
    };
    Ok(json!({
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
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use switchyard_plugin_sdk::{EventKind, Record};

    use super::*;

    #[test]
    fn a_batch_has_joined_ids_and_every_event() {
        let events = vec![
            RecordEvent::new(
                7,
                EventKind::Created,
                Record::new("a", "t")
                    .with_payload(&json!({"n": 1}))
                    .unwrap(),
            ),
            RecordEvent::new(9, EventKind::Updated, Record::new("b", "t")).with_attempt(2),
        ];
        assert_eq!(message_id(&events), "7-9");
        let body: Value =
            serde_json::from_slice(&body(&events, "2026-01-01T00:00:00Z").unwrap()).unwrap();
        assert_eq!(body["type"], BODY_TYPE);
        assert_eq!(body["data"][0]["record"]["payload"], json!({"n": 1}));
        assert_eq!(body["data"][1]["kind"], "updated");
        assert_eq!(body["data"][1]["attempt"], 2);
        assert_eq!(body["data"][1]["record"]["payload"], Value::Null);
    }
}
