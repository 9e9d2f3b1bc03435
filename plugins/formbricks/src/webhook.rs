//! The webhook input: a verified Formbricks webhook body becomes a record.
//!
//! The hub verifies the Standard Webhooks signature (`[plugins.NAME.webhook]
//! auth = "standard_webhooks"`) before the body reaches the plugin.

use serde_json::Value;
use switchyard_plugin_sdk::{PluginError, WebhookInput, WebhookRequest, WebhookResponse};

use crate::Formbricks;
use crate::response::response_record;

/// The events whose `data` is a response.
pub const RESPONSE_EVENTS: &[&str] = &["responseCreated", "responseUpdated", "responseFinished"];

/// The records for a webhook body `{"webhookId", "event", "data"}`: one for
/// a response event, none for another event (logged).
///
/// # Errors
/// A permanent `invalid_body` error (the hub answers 400) for a body that
/// is not JSON, has no string `event`, or a response event whose `data` is
/// not a response with an id.
pub fn webhook_records(body: &[u8]) -> Result<Vec<switchyard_plugin_sdk::Record>, PluginError> {
    let invalid = |message: String| PluginError::permanent(message).with_code("invalid_body");
    let body: Value = serde_json::from_slice(body)
        .map_err(|err| invalid(format!("formbricks: the webhook body is not JSON: {err}")))?;
    let event = body
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("formbricks: the webhook body has no string `event`".to_owned()))?;
    if !RESPONSE_EVENTS.contains(&event) {
        tracing::info!(
            event,
            "Ignored a Formbricks webhook event that carries no response."
        );
        return Ok(Vec::new());
    }
    let data = body
        .get("data")
        .filter(|data| data.is_object())
        .ok_or_else(|| {
            invalid(format!(
                "formbricks: the `{event}` webhook has no `data` object"
            ))
        })?;
    let record = response_record(data).map_err(|err| {
        invalid(format!(
            "formbricks: the `{event}` webhook: {}",
            err.message()
        ))
    })?;
    Ok(vec![record])
}

impl WebhookInput for Formbricks {
    #[tracing::instrument(name = "formbricks.webhook", skip_all)]
    async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, PluginError> {
        Ok(WebhookResponse::records(webhook_records(&request.body)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn response_events_become_records() {
        for event in RESPONSE_EVENTS {
            let body = serde_json::json!({
                "webhookId": "wh1",
                "event": event,
                "data": {"id": "r1", "surveyId": "s1", "finished": true, "data": {"q": "a"}},
            });
            let records = webhook_records(body.to_string().as_bytes()).unwrap();
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].id, "r1");
            assert_eq!(records[0].payload_json().unwrap(), body["data"]);
        }
    }

    #[test]
    fn other_events_are_ignored_and_bad_bodies_refused() {
        let other = br#"{"webhookId":"wh1","event":"surveyClosed","data":{}}"#;
        assert!(webhook_records(other).unwrap().is_empty());
        for bad in [
            &b"not json"[..],
            br#"{"data":{"id":"r1"}}"#,
            br#"{"event":"responseCreated"}"#,
            br#"{"event":"responseCreated","data":{"surveyId":"s"}}"#,
        ] {
            let err = webhook_records(bad).unwrap_err();
            assert!(!err.is_retryable());
            assert_eq!(err.code(), Some("invalid_body"));
        }
    }
}
