//! A Formbricks response object as a record.

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchyard_plugin_sdk::{PluginError, Record};

/// The type of every record this plugin emits.
pub const RECORD_TYPE: &str = "formbricks.response";

/// The record for one response object (from the Management API's `data`
/// array or a webhook's `data`): id = the response's `id`, payload = the
/// response, time = its `updatedAt` when that is RFC 3339.
///
/// # Errors
/// A permanent `invalid_response` error when the object has no non-empty
/// string `id`.
pub fn response_record(response: &Value) -> Result<Record, PluginError> {
    let id = match response.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Err(PluginError::permanent(
                "a Formbricks response has no non-empty string `id`",
            )
            .with_code("invalid_response"));
        }
    };
    let mut record = Record::new(id, RECORD_TYPE).with_payload(response)?;
    if let Some(updated) = response
        .get("updatedAt")
        .and_then(Value::as_str)
        .and_then(parse_time)
    {
        record = record.with_occurred_at(updated);
    }
    Ok(record)
}

/// Parses an RFC 3339 timestamp (`2024-04-23T08:14:12.343Z`).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_response_becomes_a_record() {
        let response = serde_json::json!({
            "id": "clvc3n6hy000u494jn2ypw30r",
            "createdAt": "2024-04-23T08:03:32.901Z",
            "updatedAt": "2024-04-23T08:14:12.343Z",
            "surveyId": "clusgqpml0000135cxet3y8vh",
            "finished": true,
            "data": {"hs8yd14l9h8u353tjmv6rzaw": "clicked"},
        });
        let record = response_record(&response).unwrap();
        assert_eq!(record.id, "clvc3n6hy000u494jn2ypw30r");
        assert_eq!(record.record_type, RECORD_TYPE);
        assert_eq!(record.payload_json().unwrap(), response);
        assert_eq!(
            record.occurred_at.unwrap().to_rfc3339(),
            "2024-04-23T08:14:12.343+00:00"
        );
    }

    #[test]
    fn a_response_without_an_id_is_refused() {
        for response in [serde_json::json!({}), serde_json::json!({"id": 7})] {
            let err = response_record(&response).unwrap_err();
            assert!(!err.is_retryable());
            assert_eq!(err.code(), Some("invalid_response"));
        }
    }
}
