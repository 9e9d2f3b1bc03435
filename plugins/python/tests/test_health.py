"""The plugin's health handle: NOT_SERVING while its upstream is down, and retryable Configure failures."""

import concurrent.futures
import json

import grpc
import pytest
from conftest import FIXTURES
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from switchyard_plugin import Enricher
from switchyard_plugin._stubs import enrich_pb2, enrich_pb2_grpc, plugin_pb2, plugin_pb2_grpc, record_pb2
from test_plugin_process import start_plugin

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def statuses(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    return [stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status for name in ("", "plugin")]


def test_the_handle_drives_the_servicer_for_both_service_names():
    class Plain(Enricher):
        name = "plain"

    plugin = Plain()
    plugin.health.set_upstream_healthy(False, "down before serve()")  # remembered until attached
    servicer = health.HealthServicer()
    plugin.health.attach(servicer)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert statuses(channel) == [NOT_SERVING, NOT_SERVING]
            assert plugin.health.reason == "down before serve()"
            plugin.health.set_upstream_healthy(True)
            assert statuses(channel) == [SERVING, SERVING]
            assert plugin.health.upstream_healthy and plugin.health.reason == ""
    finally:
        server.stop(None)


def enrich(channel, upstream):
    item = enrich_pb2.EnrichItem(
        sequence=1, record=record_pb2.Record(id="r", source="t", payload=json.dumps({"upstream": upstream}).encode())
    )
    responses = list(
        enrich_pb2_grpc.EnricherStub(channel).Enrich(iter([enrich_pb2.EnrichRequest(items=[item])]), timeout=10)
    )
    assert responses[0].results[0].HasField("record")


def configure(channel, config):
    return plugin_pb2_grpc.PluginStub(channel).Configure(
        plugin_pb2.ConfigureRequest(config_json=json.dumps(config).encode(), instance_name="h"), timeout=10
    )


def test_a_plugin_process_reports_not_serving_while_its_upstream_is_down(launch, socket_dir, python_exe):
    process, path = start_plugin(launch, socket_dir, [python_exe, f"{FIXTURES}/health_plugin.py"])
    channel = process.connect(path)
    assert statuses(channel) == [SERVING, SERVING]
    assert list(configure(channel, {}).errors) == []
    enrich(channel, "down")
    assert statuses(channel) == [NOT_SERVING, NOT_SERVING]
    enrich(channel, "up")
    assert statuses(channel) == [SERVING, SERVING]
    assert "the upstream is unhealthy: reporting NOT_SERVING" in process.stderr_text()


def test_configure_failing_on_an_unreachable_upstream_is_unavailable_with_retry_after(launch, socket_dir, python_exe):
    process, path = start_plugin(launch, socket_dir, [python_exe, f"{FIXTURES}/health_plugin.py"])
    channel = process.connect(path)
    with pytest.raises(grpc.RpcError) as err:
        configure(channel, {"upstream": "unreachable"})
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == "cannot reach api.example.test"
    trailers = dict(err.value.trailing_metadata())
    assert trailers["switchyard-retry-after-ms"] == "1500"
    assert trailers["switchyard-failure-code"] == "connect_error"
    # A permanent failure stays a configuration error, as before.
    errors = configure(channel, {"upstream": "refused"}).errors
    assert [(e.field, e.message) for e in errors] == [("", "the API key was refused")]
    assert list(configure(channel, {}).errors) == []
