"""grpcio, as a client, against a Rust SDK plugin (the real testkit binary) over its Unix socket.

grpcio sends the %-encoded socket path as HTTP/2 ``:authority`` on a ``unix:``
channel (since 1.57), which h2 under tonic refuses with RST_STREAM
PROTOCOL_ERROR (hyperium/h2#487). The Rust SDK rewrites such an authority to
``localhost`` before h2 sees it (plugin-sdk/src/authority.rs), so a plain
``grpc.insecure_channel("unix:" + path)`` must work for every role, over many
calls on one connection (HPACK's dynamic table then carries the authority by
index), and the ``grpc.default_authority`` workaround must keep working too.
"""

import json
import os

import grpc
import pytest
from conftest import hub_env
from hub_harness import REPO, require_binary
from switchyard_plugin._stubs import (
    enrich_pb2,
    enrich_pb2_grpc,
    input_pb2,
    input_pb2_grpc,
    output_pb2,
    output_pb2_grpc,
    plugin_pb2,
    plugin_pb2_grpc,
    record_pb2,
)

TESTKIT = os.path.join(REPO, "target", "debug", "testkit")

pytestmark = require_binary(TESTKIT, "cargo build --workspace --bins")


@pytest.fixture
def testkit(launch, socket_dir):
    """A running testkit plugin: (process, socket path)."""
    process = launch([TESTKIT], hub_env(socket_dir))
    line = process.read_handshake()
    fields = line.split("|")
    assert fields[:3] == ["1", "1", "unix"] and fields[4] == "grpc", line
    return process, fields[3]


def configure(channel: grpc.Channel, config: dict) -> None:
    plugin = plugin_pb2_grpc.PluginStub(channel)
    response = plugin.Configure(
        plugin_pb2.ConfigureRequest(config_json=json.dumps(config).encode(), instance_name="interop"),
        timeout=10,
    )
    assert list(response.errors) == []


@pytest.mark.parametrize("target", ["unix:{}", "unix://{}"])
def test_a_default_grpcio_channel_drives_every_role(testkit, target):
    process, path = testkit
    with grpc.insecure_channel(target.format(path)) as channel:
        plugin = plugin_pb2_grpc.PluginStub(channel)
        metadata = plugin.GetMetadata(plugin_pb2.GetMetadataRequest(), timeout=10)
        assert metadata.name == "testkit"
        assert len(metadata.roles) == 4
        configure(channel, {"tag": "py", "poll_batches": 2, "records_per_batch": 2})

        polled = list(input_pb2_grpc.PollingInputStub(channel).Poll(input_pb2.PollRequest(), timeout=10))
        assert [record.id for batch in polled for record in batch.records] == ["0", "1", "2", "3"]
        assert polled[-1].checkpoint == b"4"

        reply = input_pb2_grpc.WebhookInputStub(channel).HandleWebhook(
            input_pb2.WebhookRequest(method="POST", path="/", body=b'{"id": "w1"}', delivery_id="d1"),
            timeout=10,
        )
        assert [record.id for record in reply.records] == ["w1"]

        # Many calls on one connection: later requests carry :authority from
        # HPACK's dynamic table, which the SDK must keep following.
        enricher = enrich_pb2_grpc.EnricherStub(channel)
        for round_number in range(20):
            request = enrich_pb2.EnrichRequest(
                items=[
                    enrich_pb2.EnrichItem(sequence=n, record=record_pb2.Record(id=f"{round_number}-{n}", type="t"))
                    for n in range(3)
                ]
            )
            results = [result for response in enricher.Enrich(iter([request]), timeout=10) for result in response.results]
            assert sorted(result.sequence for result in results) == [0, 1, 2]
            assert all(result.record.metadata["chain"] == "py" for result in results)

        events = output_pb2.EventRequest(
            events=[
                output_pb2.RecordEvent(
                    delivery_id=7, kind=output_pb2.EVENT_KIND_CREATED, record=record_pb2.Record(id="e1"), attempt=1
                )
            ]
        )
        acks = [ack for response in output_pb2_grpc.OutputStub(channel).HandleEvent(iter([events]), timeout=10) for ack in response.acks]
        assert [(ack.delivery_id, ack.HasField("failure")) for ack in acks] == [(7, False)]
    assert process.proc.poll() is None, process.stderr_text()


def test_the_default_authority_workaround_still_works(testkit):
    _, path = testkit
    options = [("grpc.default_authority", "localhost")]
    with grpc.insecure_channel(f"unix:{path}", options=options) as channel:
        metadata = plugin_pb2_grpc.PluginStub(channel).GetMetadata(plugin_pb2.GetMetadataRequest(), timeout=10)
        assert metadata.name == "testkit"
