//! One JetStream message as a record.

use async_nats::jetstream::message::Acker;
use serde_json::{Value, json};
use switchyard_plugin_sdk::{PluginError, Record};

/// The record for `message` and the handle to ack it later.
///
/// The id is the message's stream sequence (unique in the stream, the same
/// on every redelivery); the type is `record_type` or, when empty, the
/// subject; the payload is the body when it is JSON, else `{"text": ...}`
/// for UTF-8 or `{"base64": ...}`; the metadata holds `nats.subject`,
/// `nats.stream`, `nats.stream_sequence`, `nats.msg_id` (when the message
/// has a `Nats-Msg-Id`) and every header as `header.NAME` (first value).
///
/// # Errors
/// A permanent error for a message without JetStream metadata (not
/// delivered by a consumer).
pub fn into_record(
    message: async_nats::jetstream::Message,
    record_type: &str,
) -> Result<(Record, Acker), PluginError> {
    let (stream, sequence) = {
        let info = message.info().map_err(|err| {
            PluginError::permanent(format!(
                "nats-input: a message on {} has no JetStream metadata: {err}",
                message.subject
            ))
            .with_code("bad_message")
        })?;
        (info.stream.to_owned(), info.stream_sequence)
    };
    let (message, acker) = message.split();
    let subject = message.subject.to_string();
    let kind = if record_type.is_empty() {
        subject.clone()
    } else {
        record_type.to_owned()
    };
    let mut record = Record::new(sequence.to_string(), kind)
        .with_payload(&payload(&message.payload))?
        .with_metadata("nats.subject", subject)
        .with_metadata("nats.stream", stream)
        .with_metadata("nats.stream_sequence", sequence.to_string());
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            if let Some(value) = values.first() {
                record = record.with_metadata(format!("header.{name}"), value.as_str());
            }
        }
        if let Some(id) = headers.get(async_nats::header::NATS_MESSAGE_ID) {
            record = record.with_metadata("nats.msg_id", id.as_str());
        }
    }
    Ok((record, acker))
}

/// The body as a JSON value: itself when it is JSON, else wrapped.
pub fn payload(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return value;
    }
    match std::str::from_utf8(body) {
        Ok(text) => json!({ "text": text }),
        Err(_) => {
            use base64::Engine as _;
            json!({ "base64": base64::engine::general_purpose::STANDARD.encode(body) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_json() {
        assert_eq!(payload(br#"{"n":1}"#), json!({"n": 1}));
        assert_eq!(payload(b"hello"), json!({"text": "hello"}));
        assert_eq!(payload(&[0xff, 0x00]), json!({"base64": "/wA="}));
        assert_eq!(payload(b""), Value::Null);
    }
}
