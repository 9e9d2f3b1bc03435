//! Conversions between the generated protobuf types and the hub's domain
//! types. Everything a plugin sends is checked here: a record with an empty id
//! or a payload that is not JSON is a [`ConvertError`], never a panic.

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_wire::pb::v1 as pb;

use crate::domain::{
    EventAck, EventKind, Failure, HttpReply, Payload, PluginMetadata, Record, RecordEvent, Role,
};

/// Something a plugin sent that breaks the wire contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

/// Converts the metadata a plugin sent, checking that it names itself, gives a
/// version and serves at least one known role.
pub fn metadata_from_pb(metadata: pb::PluginMetadata) -> Result<PluginMetadata, ConvertError> {
    if metadata.name.trim().is_empty() {
        return Err(ConvertError("its metadata has an empty name".to_owned()));
    }
    if metadata.version.trim().is_empty() {
        return Err(ConvertError("its metadata has an empty version".to_owned()));
    }
    if metadata.roles.is_empty() {
        return Err(ConvertError(
            "its metadata declares no roles (at least one is required)".to_owned(),
        ));
    }
    let mut roles = Vec::with_capacity(metadata.roles.len());
    for value in &metadata.roles {
        let role = Role::from_pb(*value).ok_or_else(|| {
            ConvertError(format!("its metadata declares an unknown role ({value})"))
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(PluginMetadata {
        name: metadata.name,
        version: metadata.version,
        roles,
        config_schema: metadata.config_schema,
        description: metadata.description,
        webhook_sync_reply: metadata.webhook_sync_reply,
    })
}

/// Converts a record sent by a plugin.
pub fn record_from_pb(record: pb::Record) -> Result<Record, ConvertError> {
    if record.id.is_empty() {
        return Err(ConvertError(
            "the plugin sent a record with an empty id".to_owned(),
        ));
    }
    let payload = if record.payload.is_empty() {
        Payload::null()
    } else {
        Payload::from_json(record.payload).map_err(|err| {
            ConvertError(format!(
                "the plugin sent record {:?} whose payload is not valid JSON: {err}",
                record.id
            ))
        })?
    };
    let occurred_at = match record.occurred_at {
        None => None,
        Some(timestamp) => Some(timestamp_from_pb(&timestamp).ok_or_else(|| {
            ConvertError(format!(
                "the plugin sent record {:?} with an out-of-range occurred_at",
                record.id
            ))
        })?),
    };
    Ok(Record {
        id: record.id,
        source: record.source,
        record_type: record.r#type,
        occurred_at,
        payload,
        metadata: record.metadata,
        idempotency_key: record.idempotency_key,
    })
}

/// Converts a record for sending to a plugin.
pub fn record_to_pb(record: &Record) -> pb::Record {
    pb::Record {
        id: record.id.clone(),
        source: record.source.clone(),
        r#type: record.record_type.clone(),
        occurred_at: record.occurred_at.map(timestamp_to_pb),
        payload: record.payload.to_bytes(),
        metadata: record.metadata.clone(),
        idempotency_key: record.idempotency_key.clone(),
    }
}

/// Converts every record of a batch, failing on the first bad one.
pub fn records_from_pb(records: Vec<pb::Record>) -> Result<Vec<Record>, ConvertError> {
    records.into_iter().map(record_from_pb).collect()
}

/// Converts a failure sent by a plugin. A negative `retry_after` is ignored.
pub fn failure_from_pb(failure: pb::Failure) -> Failure {
    Failure {
        message: failure.message,
        retryable: failure.retryable,
        retry_after: failure.retry_after.and_then(|duration| {
            let seconds = u64::try_from(duration.seconds).ok()?;
            let nanos = u32::try_from(duration.nanos).ok()?;
            Some(Duration::from_secs(seconds) + Duration::from_nanos(u64::from(nanos)))
        }),
        code: failure.code,
    }
}

/// Converts an event for sending to an output.
pub fn event_to_pb(event: &RecordEvent) -> pb::RecordEvent {
    pb::RecordEvent {
        delivery_id: event.delivery_id,
        kind: match event.kind {
            EventKind::Created => pb::EventKind::Created,
            EventKind::Updated => pb::EventKind::Updated,
        } as i32,
        record: Some(record_to_pb(&event.record)),
        attempt: event.attempt,
    }
}

/// Converts an output's ack.
pub fn ack_from_pb(ack: pb::EventAck) -> EventAck {
    EventAck {
        delivery_id: ack.delivery_id,
        failure: ack.failure.map(failure_from_pb),
    }
}

/// Converts a webhook plugin's HTTP reply, checking the status code.
pub fn reply_from_pb(reply: pb::HttpReply) -> Result<HttpReply, ConvertError> {
    let status = u16::try_from(reply.status)
        .ok()
        .filter(|status| (200..=599).contains(status))
        .ok_or_else(|| {
            ConvertError(format!(
                "the plugin asked for HTTP status {}, outside 200 to 599",
                reply.status
            ))
        })?;
    Ok(HttpReply {
        status,
        headers: reply
            .headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
        body: reply.body,
    })
}

/// Converts a protobuf timestamp; `None` when out of chrono's range.
pub fn timestamp_from_pb(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// Converts a time to a protobuf timestamp.
pub fn timestamp_to_pb(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pb_record(id: &str, payload: &[u8]) -> pb::Record {
        pb::Record {
            id: id.to_owned(),
            payload: payload.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn records_round_trip() {
        let record = Record {
            id: "42".into(),
            source: "github".into(),
            record_type: "issue.opened".into(),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 5),
            payload: serde_json::json!({"title": "It broke"}).into(),
            metadata: [("a".to_owned(), "b".to_owned())].into(),
            idempotency_key: Some("k".into()),
        };
        assert_eq!(record_from_pb(record_to_pb(&record)).unwrap(), record);
    }

    #[test]
    fn rejects_bad_records() {
        assert!(record_from_pb(pb_record("", b"{}")).is_err());
        let err = record_from_pb(pb_record("1", b"{nope")).unwrap_err();
        assert!(err.0.contains("not valid JSON"), "{err}");
        assert_eq!(
            record_from_pb(pb_record("1", b"")).unwrap().payload,
            serde_json::Value::Null
        );
    }

    #[test]
    fn validates_metadata() {
        let good = pb::PluginMetadata {
            name: "echo".into(),
            version: "0.1.0".into(),
            roles: vec![pb::Role::Enrichment as i32, pb::Role::Output as i32],
            ..Default::default()
        };
        let metadata = metadata_from_pb(good.clone()).unwrap();
        assert_eq!(metadata.roles, [Role::Enrichment, Role::Output]);
        let no_roles = pb::PluginMetadata {
            roles: vec![],
            ..good.clone()
        };
        assert!(
            metadata_from_pb(no_roles)
                .unwrap_err()
                .0
                .contains("no roles")
        );
        let unknown = pb::PluginMetadata {
            roles: vec![9],
            ..good.clone()
        };
        assert!(
            metadata_from_pb(unknown)
                .unwrap_err()
                .0
                .contains("unknown role (9)")
        );
        let unnamed = pb::PluginMetadata {
            name: " ".into(),
            ..good
        };
        assert!(
            metadata_from_pb(unnamed)
                .unwrap_err()
                .0
                .contains("empty name")
        );
    }

    #[test]
    fn checks_reply_status() {
        let reply = pb::HttpReply {
            status: 99,
            ..Default::default()
        };
        assert!(reply_from_pb(reply).is_err());
        let reply = pb::HttpReply {
            status: 204,
            ..Default::default()
        };
        assert_eq!(reply_from_pb(reply).unwrap().status, 204);
    }

    #[test]
    fn converts_retry_after() {
        let failure = failure_from_pb(pb::Failure {
            message: "slow down".into(),
            retryable: true,
            retry_after: Some(prost_types::Duration {
                seconds: 2,
                nanos: 500_000_000,
            }),
            code: "rate_limited".into(),
        });
        assert_eq!(failure.retry_after, Some(Duration::from_millis(2500)));
    }
}
