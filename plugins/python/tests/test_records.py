"""Unit tests for the record conversions."""

import datetime

import pytest
from switchyard_plugin import Failure, Record
from switchyard_plugin._stubs import record_pb2


def test_record_round_trips_through_protobuf():
    occurred = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    record = Record(
        id="r1",
        payload={"text": "héllo", "n": [1, 2.5, None, True]},
        source="github",
        type="issue.opened",
        occurred_at=occurred,
        metadata={"a": "b"},
        idempotency_key="k1",
    )
    again = Record.from_proto(record.to_proto())
    assert again == record


def test_absent_optional_fields_stay_absent():
    message = Record(id="r2", payload=[1]).to_proto()
    assert not message.HasField("occurred_at")
    assert not message.HasField("idempotency_key")
    assert message.payload == b"[1]"
    assert Record.from_proto(record_pb2.Record(id="r3")).payload is None


def test_invalid_json_payload_is_a_permanent_failure_naming_the_record():
    with pytest.raises(Failure) as err:
        Record.from_proto(record_pb2.Record(id="bad", payload=b"{not json"))
    assert not err.value.retryable
    assert "'bad'" in err.value.message and "not valid UTF-8 JSON" in err.value.message


def test_unserialisable_payload_is_a_failure():
    with pytest.raises(Failure):
        Record(id="x", payload={"when": datetime.datetime.now()}).to_proto()


def test_failure_wire_form():
    failure = Failure.transient(
        "slow down", retry_after=datetime.timedelta(seconds=1.5), code="rate_limited"
    ).to_proto()
    assert failure.retryable
    assert failure.retry_after.seconds == 1 and failure.retry_after.nanos == 500_000_000
    assert failure.code == "rate_limited"
    assert not Failure.permanent("no").to_proto().HasField("retry_after")
