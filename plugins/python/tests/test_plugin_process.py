"""End-to-end tests: real plugin processes launched the way the hub launches them."""

import base64
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time

import grpc
import pytest
from conftest import FIXTURES, KEYWORD_TAGGER, hub_env
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from cryptography import x509
from switchyard_plugin import NOT_LAUNCHED_BY_HUB_MESSAGE, tls
from switchyard_plugin._stubs import (
    enrich_pb2,
    enrich_pb2_grpc,
    grpc_broker_pb2,
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
    input_pb2,
    input_pb2_grpc,
    output_pb2,
    output_pb2_grpc,
    plugin_pb2,
    plugin_pb2_grpc,
    record_pb2,
)
from tls_probe import H2_SETTINGS, h2_first_frame_type

HANDSHAKE = re.compile(r"^1\|1\|unix\|(?P<path>/[^|]*/plugin\d+)\|grpc\|$")
HCLOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
TAGGER_CONFIG = {"keywords": {"urgent": ["asap", "outage"], "billing": ["invoice"]}, "text_fields": ["title", "body"]}


def start_plugin(launch, socket_dir, argv=None, **env):
    """Launches a plugin with the hub's environment and returns (process, socket path)."""
    process = launch(argv or [KEYWORD_TAGGER], hub_env(socket_dir, **env))
    line = process.read_handshake()
    match = HANDSHAKE.match(line)
    assert match, f"bad handshake line {line!r}"
    return process, match.group("path")


def shutdown_and_wait(process, channel, timeout=2.0):
    """Calls GRPCController.Shutdown and returns the exit status (the reply may be lost; that is fine)."""
    try:
        grpc_controller_pb2_grpc.GRPCControllerStub(channel).Shutdown(grpc_controller_pb2.Empty(), timeout=5)
    except grpc.RpcError as err:
        assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), err
    started = time.monotonic()
    status = process.wait(timeout=10)
    assert time.monotonic() - started < timeout, "the plugin took too long to exit after Shutdown"
    return status


def assert_hclog_lines(lines):
    assert lines, "expected log lines on stderr"
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry["@level"], str) and entry["@level"] in ("trace", "debug", "info", "warn", "error")
        assert isinstance(entry["@message"], str)
        assert HCLOG_TIMESTAMP.match(entry["@timestamp"]), entry["@timestamp"]


def enrich_request(*items):
    return enrich_pb2.EnrichRequest(
        items=[
            enrich_pb2.EnrichItem(
                sequence=sequence, record=record_pb2.Record(id=f"r{sequence}", source="test", payload=payload)
            )
            for sequence, payload in items
        ]
    )


# --- starting up -----------------------------------------------------------------------------


def test_refuses_to_run_without_the_cookie():
    result = subprocess.run([KEYWORD_TAGGER], env={}, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == b""
    assert NOT_LAUNCHED_BY_HUB_MESSAGE in result.stderr.decode()


def test_refuses_a_wrong_cookie(socket_dir):
    env = hub_env(socket_dir, SWITCHYARD_PLUGIN_MAGIC_COOKIE="0000")
    result = subprocess.run([KEYWORD_TAGGER], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == b""
    assert "not meant to be executed directly" in result.stderr.decode()


def test_handshake_line_and_socket(launch, socket_dir):
    process, path = start_plugin(launch, socket_dir, versions="3,1,2")
    assert os.path.dirname(path) == socket_dir
    assert os.path.exists(path)
    channel = process.connect(path)
    assert shutdown_and_wait(process, channel) == 0
    assert not os.path.exists(path), "the socket file should be removed on exit"


def test_socket_group_is_applied(launch, socket_dir):
    process, path = start_plugin(launch, socket_dir, PLUGIN_UNIX_SOCKET_GROUP=str(os.getgid()))
    info = os.stat(path)
    assert info.st_gid == os.getgid()
    assert info.st_mode & 0o777 == 0o660
    assert shutdown_and_wait(process, process.connect(path)) == 0


def test_version_negotiation_without_a_common_version_exits_1(socket_dir):
    env = hub_env(socket_dir, versions="6,5")
    result = subprocess.run([KEYWORD_TAGGER], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == b""
    assert "no common app protocol version" in result.stderr.decode()
    assert "the hub offered [5, 6]" in result.stderr.decode()


def test_an_old_host_without_versions_gets_version_1(launch, socket_dir):
    process, path = start_plugin(launch, socket_dir, versions=None)
    assert shutdown_and_wait(process, process.connect(path)) == 0


def test_multiplexing_request_is_answered_with_false(launch, socket_dir):
    process = launch([KEYWORD_TAGGER], hub_env(socket_dir, PLUGIN_MULTIPLEX_GRPC="true"))
    line = process.read_handshake()
    assert re.match(r"^1\|1\|unix\|/.*/plugin\d+\|grpc\|\|false$", line), line


def test_an_unreadable_client_cert_is_refused_clearly(socket_dir):
    env = hub_env(socket_dir, PLUGIN_CLIENT_CERT="-----BEGIN CERTIFICATE-----\n...")
    result = subprocess.run([KEYWORD_TAGGER], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == b""
    assert "cannot start: PLUGIN_CLIENT_CERT does not hold a usable certificate (AutoMTLS)" in result.stderr.decode()
    assert os.listdir(socket_dir) == []


def test_auto_mtls_prints_the_certificate_and_serves_only_tls(launch, socket_dir):
    host = tls.generate_identity()
    process = launch([KEYWORD_TAGGER], hub_env(socket_dir, PLUGIN_CLIENT_CERT=host.cert_pem.decode()))
    line = process.read_handshake()
    match = re.match(r"^1\|1\|unix\|(?P<path>/[^|]*/plugin\d+)\|grpc\|(?P<cert>[A-Za-z0-9+/]{51,})$", line)
    assert match, f"bad handshake line {line!r}"
    der = base64.b64decode(match.group("cert") + "=" * (-len(match.group("cert")) % 4))
    cert = x509.load_der_x509_certificate(der)
    assert cert.public_key().curve.name == "secp521r1"
    assert cert.subject.rfc4514_string() == "CN=localhost,O=HashiCorp"

    path = match.group("path")
    assert h2_first_frame_type(path, host, der) == H2_SETTINGS
    assert h2_first_frame_type(path, host, der) == H2_SETTINGS
    try:
        assert h2_first_frame_type(path, tls.generate_identity(), der) is None
    except (ConnectionError, OSError):
        pass  # refused during the handshake rather than after it
    assert any('"auto_mtls":true' in line for line in process.stderr_lines), process.stderr_text()
    # The refused client is logged at warn (an operator's only clue when a host's certificate is wrong).
    deadline = time.monotonic() + 10
    while not any('"@level":"warn"' in line and "AutoMTLS" in line for line in process.stderr_lines):
        assert time.monotonic() < deadline, f"the refused TLS client was not logged: {process.stderr_text()}"
        time.sleep(0.05)

    process.proc.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.remaining_stdout() == b""
    assert os.listdir(socket_dir) == [], "the socket and the private gRPC directory must be removed"


# --- the full round trip -----------------------------------------------------------------------


def test_keyword_tagger_round_trip(launch, socket_dir):
    process, path = start_plugin(launch, socket_dir)
    channel = process.connect(path)

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("plugin", ""):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    plugin = plugin_pb2_grpc.PluginStub(channel)
    metadata = plugin.GetMetadata(plugin_pb2.GetMetadataRequest(), timeout=5)
    assert metadata.name == "keyword-tagger"
    assert metadata.version == "0.1.0"
    assert list(metadata.roles) == [plugin_pb2.ROLE_ENRICHMENT]
    assert metadata.description
    schema = json.loads(metadata.config_schema)
    assert schema["required"] == ["keywords"]

    enricher = enrich_pb2_grpc.EnricherStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        list(enricher.Enrich(iter([enrich_request((1, b'{"text":"x"}'))]), timeout=5))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    bad = plugin.Configure(
        plugin_pb2.ConfigureRequest(
            config_json=b'{"keywords":{"urgent":"asap"},"outptu_field":"x"}', instance_name="t"
        ),
        timeout=5,
    )
    assert {(e.field, bool(e.message)) for e in bad.errors} == {("keywords.urgent", True), ("outptu_field", True)}
    not_json = plugin.Configure(plugin_pb2.ConfigureRequest(config_json=b"[1]", instance_name="t"), timeout=5)
    assert [e.field for e in not_json.errors] == [""]

    good = plugin.Configure(
        plugin_pb2.ConfigureRequest(config_json=json.dumps(TAGGER_CONFIG).encode(), instance_name="tagger"), timeout=5
    )
    assert list(good.errors) == []

    requests = [
        enrich_request(
            (10, b'{"title":"Outage in eu-west","body":"fix ASAP"}'),
            (11, b'{"title":"hello"}'),
        ),
        enrich_request((12, b'["not", "an", "object"]'), (13, b'{"body":"invoice 42","tags":["vip"]}'), (14, b"{oops")),
    ]
    results = {}
    for response in enricher.Enrich(iter(requests), timeout=10):
        for result in response.results:
            assert result.sequence not in results, "each item must be answered exactly once"
            results[result.sequence] = result
    assert sorted(results) == [10, 11, 12, 13, 14]

    def tags(sequence):
        record = results[sequence].record
        assert record.id == f"r{sequence}" and record.source == "test"
        return json.loads(record.payload)["tags"]

    assert tags(10) == ["urgent"]
    assert tags(11) == []
    assert tags(13) == ["billing", "vip"]
    assert results[12].WhichOneof("outcome") == "failure"
    assert not results[12].failure.retryable
    assert "an array, not a JSON object" in results[12].failure.message
    assert results[14].WhichOneof("outcome") == "failure"
    assert "not valid UTF-8 JSON" in results[14].failure.message

    assert shutdown_and_wait(process, channel) == 0
    assert process.remaining_stdout() == b"", "nothing may follow the handshake line on stdout"
    assert_hclog_lines(process.stderr_lines)
    messages = [json.loads(line)["@message"] for line in process.stderr_lines]
    assert "keyword-tagger configured" in messages
    assert "configuration rejected" in messages


def test_shutdown_with_go_plugin_streams_held_open(launch, socket_dir):
    """A Go host opens GRPCStdio and GRPCBroker first; they must not delay Shutdown."""
    process, path = start_plugin(launch, socket_dir)
    channel = process.connect(path)
    stdio = grpc_stdio_pb2_grpc.GRPCStdioStub(channel).StreamStdio(empty_pb2.Empty())
    broker = grpc_broker_pb2_grpc.GRPCBrokerStub(channel).StartStream(
        iter([grpc_broker_pb2.ConnInfo(service_id=1, network="unix", address="/nowhere")])
    )
    time.sleep(0.2)  # let both streams reach the server; nothing observable to wait on
    assert shutdown_and_wait(process, channel) == 0
    for stream in (stdio, broker):
        # Both streams have ended (cleanly or cancelled) and carried no data.
        try:
            assert list(stream) == []
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), err


def test_stdout_stays_clean_and_logs_are_hclog(launch, socket_dir, python_exe):
    process, path = start_plugin(launch, socket_dir, argv=[python_exe, os.path.join(FIXTURES, "chatty_plugin.py")])
    channel = process.connect(path)
    plugin = plugin_pb2_grpc.PluginStub(channel)
    assert list(plugin.GetMetadata(plugin_pb2.GetMetadataRequest(), timeout=5).roles) == [
        plugin_pb2.ROLE_ENRICHMENT,
        plugin_pb2.ROLE_OUTPUT,
    ]
    assert list(plugin.Configure(plugin_pb2.ConfigureRequest(config_json=b"{}"), timeout=5).errors) == []

    results = list(
        enrich_pb2_grpc.EnricherStub(channel).Enrich(
            iter(
                [
                    enrich_pb2.EnrichRequest(
                        items=[
                            enrich_pb2.EnrichItem(sequence=1, record=record_pb2.Record(id="ok", payload=b"{}")),
                            enrich_pb2.EnrichItem(sequence=2, record=record_pb2.Record(id="boom", payload=b"{}")),
                        ]
                    )
                ]
            ),
            timeout=10,
        )
    )[0].results
    assert results[0].record.metadata["chatty"] == "yes"
    assert results[1].failure.code == "plugin_error" and "kaboom" in results[1].failure.message

    acks = list(
        output_pb2_grpc.OutputStub(channel).HandleEvent(
            iter(
                [
                    output_pb2.EventRequest(
                        events=[
                            output_pb2.RecordEvent(
                                delivery_id=7,
                                kind=output_pb2.EVENT_KIND_CREATED,
                                record=record_pb2.Record(id="a"),
                                attempt=1,
                            ),
                            output_pb2.RecordEvent(
                                delivery_id=8,
                                kind=output_pb2.EVENT_KIND_UPDATED,
                                record=record_pb2.Record(id="nack"),
                                attempt=2,
                            ),
                        ]
                    )
                ]
            ),
            timeout=10,
        )
    )[0].acks
    assert [(a.delivery_id, a.HasField("failure")) for a in acks] == [(7, False), (8, True)]
    assert acks[1].failure.retryable

    assert shutdown_and_wait(process, channel) == 0
    assert process.remaining_stdout() == b""
    printed = [line for line in process.stderr_lines if not line.startswith("{")]
    assert printed == ["configure printed this to stdout", "and wrote this", "enriching ok", "enriching boom"]
    json_lines = [line for line in process.stderr_lines if line.startswith("{")]
    assert_hclog_lines(json_lines)
    levels = [json.loads(line)["@level"] for line in json_lines if json.loads(line)["@message"] == "level check"]
    assert levels == ["trace", "debug", "info", "warn", "error"]


# --- stopping ------------------------------------------------------------------------------------


def test_sigint_is_ignored_and_sigterm_stops_gracefully(launch, socket_dir):
    process, path = start_plugin(launch, socket_dir)
    channel = process.connect(path)
    process.proc.send_signal(signal.SIGINT)
    health = health_pb2_grpc.HealthStub(channel)
    # Still serving after SIGINT (a health call is a round trip, so the signal has been handled by now
    # or is being handled; check twice across the plugin's 1 s main-loop tick).
    for _ in range(2):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        assert process.proc.poll() is None
        time.sleep(0.6)
    process.proc.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    assert any("SIGTERM received" in line for line in process.stderr_lines)


PR_SET_CHILD_SUBREAPER = 36


def test_exits_when_its_parent_dies(socket_dir, python_exe):
    """The plugin's parent (a stand-in hub) exits without stopping it; the plugin must notice and exit."""
    libc = ctypes.CDLL(None, use_errno=True)
    # Become a subreaper so the orphaned plugin is re-parented to this test process, which can then wait for it.
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        env = hub_env(socket_dir)
        fake_hub = subprocess.run(
            [
                python_exe,
                "-c",
                "import subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL);"
                " print(p.pid); print(p.stdout.readline().decode().strip(), flush=True)",
                KEYWORD_TAGGER,
            ],
            env=env,
            capture_output=True,
            timeout=60,
        )
        pid_text, line = fake_hub.stdout.decode().split("\n")[:2]
        plugin_pid = int(pid_text)
        assert HANDSHAKE.match(line), line
        deadline = time.monotonic() + 10
        while True:
            finished, status = os.waitpid(plugin_pid, os.WNOHANG)
            if finished:
                break
            if time.monotonic() > deadline:
                os.kill(plugin_pid, signal.SIGKILL)
                os.waitpid(plugin_pid, 0)
                pytest.fail("the plugin kept running after its parent died")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))


def test_concurrent_enricher_and_cancelled_stream(launch, socket_dir, python_exe):
    process, path = start_plugin(launch, socket_dir, argv=[python_exe, os.path.join(FIXTURES, "slow_plugin.py")])
    channel = process.connect(path)
    assert (
        not plugin_pb2_grpc.PluginStub(channel)
        .Configure(plugin_pb2.ConfigureRequest(config_json=b"{}"), timeout=5)
        .errors
    )
    enricher = enrich_pb2_grpc.EnricherStub(channel)

    results = {}
    for response in enricher.Enrich(iter([enrich_request((1, b"{}"), (2, b"{}"))]), timeout=30):
        for result in response.results:
            results[result.sequence] = result
    # enrich_request names records r1, r2; re-send them as a pair that must meet at the barrier.
    pair = enrich_pb2.EnrichRequest(
        items=[
            enrich_pb2.EnrichItem(sequence=3, record=record_pb2.Record(id="pair-a", payload=b"{}")),
            enrich_pb2.EnrichItem(sequence=4, record=record_pb2.Record(id="pair-b", payload=b"{}")),
        ]
    )
    for response in enricher.Enrich(iter([pair]), timeout=30):
        for result in response.results:
            results[result.sequence] = result
    assert sorted(results) == [1, 2, 3, 4]
    assert all(result.WhichOneof("outcome") == "record" for result in results.values()), results

    # Answers larger than they came: no message over 4 MiB but a lone result, and a record too
    # large for any message (66 MiB) fails alone instead of ending the stream.
    sizes = ["30", "huge", "30", "1"]
    inflate = enrich_pb2.EnrichRequest(
        items=[
            enrich_pb2.EnrichItem(sequence=10 + n, record=record_pb2.Record(id=f"inflate-{size}", payload=b"{}"))
            for n, size in enumerate(sizes)
        ]
    )
    inflated = {}
    limits = [("grpc.max_receive_message_length", 80 << 20)]
    with grpc.insecure_channel(f"unix:{path}", options=limits) as large:
        for response in enrich_pb2_grpc.EnricherStub(large).Enrich(iter([inflate]), timeout=60):
            assert len(response.results) == 1 or response.ByteSize() <= 4 << 20, len(response.results)
            for result in response.results:
                inflated[result.sequence] = result
    assert sorted(inflated) == [10, 11, 12, 13]
    failure = inflated[11].failure
    assert inflated[11].WhichOneof("outcome") == "failure" and failure.code == "too_large" and not failure.retryable
    assert failure.message.startswith("the enriched record 'inflate-huge' is 692"), failure.message
    for sequence, mebibytes in ((10, 30), (12, 30), (13, 1)):
        assert inflated[sequence].WhichOneof("outcome") == "record"
        assert len(json.loads(inflated[sequence].record.payload)["text"]) == mebibytes << 20

    # An item that never finishes must not keep the plugin from stopping when asked to.
    stuck = enricher.Enrich(
        iter(
            [enrich_pb2.EnrichRequest(items=[enrich_pb2.EnrichItem(sequence=5, record=record_pb2.Record(id="stuck"))])]
        )
    )
    deadline = time.monotonic() + 10
    while not any("stuck record received" in line for line in process.stderr_lines):
        assert time.monotonic() < deadline, "the stuck record never reached the plugin"
        time.sleep(0.05)
    assert shutdown_and_wait(process, channel) == 0
    with pytest.raises(grpc.RpcError):
        list(stuck)


def test_input_roles(launch, socket_dir, python_exe):
    process, path = start_plugin(launch, socket_dir, argv=[python_exe, os.path.join(FIXTURES, "inputs_plugin.py")])
    channel = process.connect(path)
    plugin = plugin_pb2_grpc.PluginStub(channel)
    metadata = plugin.GetMetadata(plugin_pb2.GetMetadataRequest(), timeout=5)
    assert list(metadata.roles) == [plugin_pb2.ROLE_POLLING_INPUT, plugin_pb2.ROLE_WEBHOOK_INPUT]
    assert metadata.webhook_sync_reply
    assert not plugin.Configure(plugin_pb2.ConfigureRequest(config_json=b""), timeout=5).errors

    poller = input_pb2_grpc.PollingInputStub(channel)
    batches = list(poller.Poll(input_pb2.PollRequest(checkpoint=b"10"), timeout=10))
    assert [[r.id for r in b.records] for b in batches] == [["10", "11"], ["12", "13"]]
    assert [b.checkpoint for b in batches] == [b"12", b"14"]
    assert batches[0].records[0].occurred_at.seconds > 0
    first = list(poller.Poll(input_pb2.PollRequest(), timeout=10))
    assert first[0].records[0].id == "0"
    for checkpoint, code in ((b"-1", grpc.StatusCode.UNAVAILABLE), (b"999", grpc.StatusCode.FAILED_PRECONDITION)):
        with pytest.raises(grpc.RpcError) as err:
            list(poller.Poll(input_pb2.PollRequest(checkpoint=checkpoint), timeout=10))
        assert err.value.code() == code
    # One batch of 70 MB: several messages below 4 MiB (this client's default limit), the
    # checkpoint on the last; a record too large for any message fails the poll, naming it.
    large = list(poller.Poll(input_pb2.PollRequest(checkpoint=b"large"), timeout=30))
    assert [len(b.records) for b in large] == [4] * 17 + [2]
    assert [b.HasField("checkpoint") for b in large] == [False] * 17 + [True] and large[-1].checkpoint == b"done"
    records = [r for b in large for r in b.records]
    assert [r.id for r in records] == [str(n) for n in range(70)]
    assert all(len(r.payload) == 1_000_002 for r in records)
    with pytest.raises(grpc.RpcError) as err:
        list(poller.Poll(input_pb2.PollRequest(checkpoint=b"huge"), timeout=30))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details().startswith("record '0' is 68157"), err.value.details()

    webhooks = input_pb2_grpc.WebhookInputStub(channel)
    reply = webhooks.HandleWebhook(
        input_pb2.WebhookRequest(
            method="POST",
            path="/webhooks/inputs",
            headers=[record_pb2.Header(name="x-event", value="ping")],
            body=b'{"challenge":"abc"}',
            delivery_id="d-1",
        ),
        timeout=10,
    )
    assert [(r.id, r.type, json.loads(r.payload)) for r in reply.records] == [("d-1", "ping", {"challenge": "abc"})]
    assert reply.reply.status == 200 and reply.reply.body == b"abc"
    for body, code in (
        (b"not json", grpc.StatusCode.INVALID_ARGUMENT),
        (b'{"retry":true}', grpc.StatusCode.UNAVAILABLE),
    ):
        with pytest.raises(grpc.RpcError) as err:
            webhooks.HandleWebhook(input_pb2.WebhookRequest(body=body, delivery_id="d-2"), timeout=10)
        assert err.value.code() == code
        assert err.value.details()
    # A body at the hub's largest max_body (64 MiB) arrives with the rest of its request, and the
    # record made of it goes back: the plugin takes and sends messages of up to 65 MiB.
    frame = len(json.dumps({"text": ""}, separators=(",", ":")))
    body = json.dumps({"text": "x" * (64 * 1024 * 1024 - frame)}, separators=(",", ":")).encode()
    assert len(body) == 64 * 1024 * 1024
    limits = [("grpc.max_send_message_length", 80 << 20), ("grpc.max_receive_message_length", 80 << 20)]
    with grpc.insecure_channel(f"unix:{path}", options=limits) as large:
        reply = input_pb2_grpc.WebhookInputStub(large).HandleWebhook(
            input_pb2.WebhookRequest(method="POST", path="/webhooks/inputs", body=body, delivery_id="d-max"),
            timeout=60,
        )
    assert [(r.id, len(r.payload)) for r in reply.records] == [("d-max", len(body))]
    assert shutdown_and_wait(process, channel) == 0
