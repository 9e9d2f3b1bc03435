//! The one fixed record every measurement sends (about 200 bytes encoded):
//! the same bytes to testkit, to the go-plugin peer (through a file holding the
//! encoded record) and through the raw socket of the floor.

use std::collections::BTreeMap;

use prost::Message;
use switchyard_wire::pb::v1 as pb;

/// The benchmark's record, as protobuf.
pub fn record() -> pb::Record {
    pb::Record {
        id: "order-000000042".to_owned(),
        source: "bench".to_owned(),
        r#type: "order.created".to_owned(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_795_456_800,
            nanos: 0,
        }),
        payload: br#"{"customer":"c-1234567","total_cents":129900,"currency":"EUR","items":[{"sku":"sku-00017","qty":2},{"sku":"sku-00391","qty":1}]}"#
            .to_vec(),
        metadata: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
        idempotency_key: None,
    }
}

/// The record's protobuf encoding.
pub fn encoded() -> Vec<u8> {
    record().encode_to_vec()
}

/// The record as the hub's domain type, for the hub's own role client.
pub fn domain_record() -> anyhow::Result<switchyard_hub::domain::Record> {
    switchyard_hub::rpc::convert::record_from_pb(record())
        .map_err(|err| anyhow::anyhow!("the benchmark record does not convert: {}", err.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_about_two_hundred_bytes() {
        let size = encoded().len();
        assert!(
            (180..=240).contains(&size),
            "encoded record is {size} bytes"
        );
    }

    #[test]
    fn the_record_converts_to_the_hub_domain() {
        assert_eq!(domain_record().unwrap().id, "order-000000042");
    }
}
