"""Python plugins under the real hub: crash and restart, the liveness probe, a version mismatch, AutoMTLS.

Each test starts target/debug/switchyard with a temp ``plugins.toml`` and
watches it through the admin API (docs/admin-api.md): a SIGKILLed plugin, one
that crashes by itself in the middle of a call, and one frozen with SIGSTOP
must each come back as a new process that serves calls; a plugin that speaks
no protocol version the hub offers, or expects another magic cookie, must give
an error naming it and the reason; ``tls = "auto"`` must run a Python plugin
over go-plugin's AutoMTLS.
Every wait is a poll with a deadline; the fixture kills the hub's process
group and every plugin's at the end.
"""

import os
import re
import signal
import subprocess
import tempfile

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from conftest import FIXTURES, KEYWORD_TAGGER, VENV_PYTHON
from hub_harness import HUB, REQUIRE_ALL, Hub, process_gone, require_binary, start_hub, wait_until  # noqa: F401
from switchyard_plugin import NOT_LAUNCHED_BY_HUB_MESSAGE

pytestmark = require_binary(HUB, "cargo build -p switchyard-hub --bin switchyard")

TAGGER = f"""
[plugins.tagger]
command = "{KEYWORD_TAGGER}"
[plugins.tagger.config]
keywords = {{ urgent = ["asap", "outage"] }}
[plugins.tagger.restart]
initial_backoff = "10ms"
max_backoff = "100ms"
"""

URGENT = {"records": [{"id": "1", "payload": {"text": "outage, fix asap"}}]}


def restarted(old_pid: int):
    """A predicate: the plugin runs again, as a process other than ``old_pid``."""
    return lambda p: p["state"] == "running" and isinstance(p["pid"], int) and p["pid"] != old_pid


def assert_enrich_tags(hub: Hub, name: str = "tagger") -> None:
    status, body = hub.request("POST", f"/api/v1/plugins/{name}/call/enrich", URGENT)
    assert status == 200, body
    assert body["results"][0]["record"]["payload"]["tags"] == ["urgent"], body


def hub_supports_auto_mtls() -> bool:
    """Whether this hub build knows `tls = "auto"` (`switchyard check` on a config that sets it)."""
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "plugins.toml")
        with open(config, "w") as file:
            file.write(f'[plugins.t]\ncommand = "{KEYWORD_TAGGER}"\ntls = "auto"\n')
        result = subprocess.run([HUB, "check", "--config", config], capture_output=True, timeout=60)
    return result.returncode == 0


# --- crash and restart -----------------------------------------------------------------------------


def test_a_sigkilled_python_plugin_comes_back_with_a_new_pid_and_serves(start_hub):
    hub = start_hub(TAGGER)
    hub.wait_ready()
    before = hub.wait_plugin("tagger", lambda p: p["state"] == "running", "running")
    assert before["restarts"] == 0 and before["last_exit"] is None
    assert_enrich_tags(hub)
    old_pid = before["pid"]

    os.kill(old_pid, signal.SIGKILL)
    after = hub.wait_plugin("tagger", restarted(old_pid), "running again with a new pid")
    assert after["restarts"] == 1, after
    assert after["last_exit"]["reason"] == "killed by signal SIGKILL", after
    assert after["last_error"] == "plugin `tagger` killed by signal SIGKILL", after
    assert after["plugin_name"] == "keyword-tagger" and after["roles"] == ["enrichment"]
    wait_until(lambda: process_gone(old_pid), 10, f"the killed process {old_pid} to be reaped")
    # The new process was configured again (Configure ran) and answers.
    assert_enrich_tags(hub)
    assert hub.plugin("tagger")["pid"] == after["pid"]


def test_a_python_plugin_that_crashes_during_a_call_is_restarted_and_the_call_still_succeeds(start_hub):
    hub = start_hub(
        f"""
[plugins.crashy]
command = "{VENV_PYTHON}"
args = ["{os.path.join(FIXTURES, "crashing_plugin.py")}"]
env = {{ CRASH_ON_ITEM = "2" }}
[plugins.crashy.restart]
initial_backoff = "10ms"
max_backoff = "100ms"
"""
    )
    hub.wait_ready()
    first = hub.wait_plugin("crashy", lambda p: p["state"] == "running", "running")
    old_pid = first["pid"]
    status, body = hub.request("POST", "/api/v1/plugins/crashy/call/enrich", {"records": [{"id": "a", "payload": {}}]})
    assert status == 200, body
    assert body["results"][0]["record"]["metadata"]["pid"] == str(old_pid)

    # The second record kills the process (exit status 3) in the middle of the call. The hub
    # restarts the plugin and retries the call on the new process: nothing is lost.
    status, body = hub.request("POST", "/api/v1/plugins/crashy/call/enrich", {"records": [{"id": "b", "payload": {}}]})
    assert status == 200, body
    served_by = int(body["results"][0]["record"]["metadata"]["pid"])
    assert served_by != old_pid

    after = hub.wait_plugin("crashy", restarted(old_pid), "running again with a new pid")
    assert after["pid"] == served_by
    assert after["restarts"] == 1, after
    assert after["last_exit"]["reason"] == "exited with status 3", after
    assert after["last_error"].startswith("plugin `crashy` exited with status 3"), after
    assert process_gone(old_pid)
    assert '"crashing on purpose"' in hub.log_text() or "crashing on purpose" in hub.log_text()


def test_a_sigstopped_python_plugin_is_caught_by_the_liveness_probe_and_replaced(start_hub):
    # A 1 s health timeout, so a busy machine does not fail checks of a healthy plugin.
    hub = start_hub(
        TAGGER
        + """
[plugins.tagger.health]
interval = "200ms"
timeout = "1s"
failure_threshold = 3
"""
    )
    hub.wait_ready()
    before = hub.wait_plugin("tagger", lambda p: p["state"] == "running" and p["healthy"], "running and healthy")
    old_pid = before["pid"]

    os.kill(old_pid, signal.SIGSTOP)
    try:
        after = hub.wait_plugin("tagger", restarted(old_pid), "replaced after failing its health checks")
    finally:
        if not process_gone(old_pid):
            os.kill(old_pid, signal.SIGCONT)
    assert after["restarts"] == 1, after
    reason = after["last_exit"]["reason"]
    assert reason.startswith("unhealthy: 3 consecutive health checks failed"), reason
    # The frozen process was killed (SIGKILL reaches a stopped process) and reaped.
    wait_until(lambda: process_gone(old_pid), 10, f"the frozen process {old_pid} to be killed")
    hub.wait_plugin("tagger", lambda p: p["healthy"] is True, "healthy again")
    assert_enrich_tags(hub)


# --- handshake failures under the hub --------------------------------------------------------------


def mismatched_plugin(name: str, env: str) -> str:
    """A [plugins.NAME] table for tests/fixtures/mismatched_plugin.py with ``env``, never restarted."""
    return f"""
[plugins.{name}]
command = "{VENV_PYTHON}"
args = ["{os.path.join(FIXTURES, "mismatched_plugin.py")}"]
env = {{ {env} }}
[plugins.{name}.restart]
policy = "never"
"""


def failed_start(hub: Hub, name: str) -> dict:
    """Waits for the plugin's start to fail; checks the hub and the other plugin carry on; returns its status."""
    status = hub.wait_plugin(name, lambda p: p["state"] == "stopped" and p["last_error"], "stopped with an error")
    assert status["pid"] is None
    assert status["last_exit"]["reason"] == "failed to start: exited with status 1 before completing the handshake"
    hub.wait_plugin("tagger", lambda p: p["state"] == "running", "running")
    assert_enrich_tags(hub)
    code, body = hub.request("POST", f"/api/v1/plugins/{name}/call/enrich", URGENT)
    assert code == 409, body
    return status


def test_a_python_plugin_without_a_common_protocol_version_gives_a_hub_error_naming_it(start_hub):
    hub = start_hub(mismatched_plugin("future", 'FIXTURE_PROTOCOL_VERSIONS = "2"') + TAGGER)
    error = failed_start(hub, "future")["last_error"]
    assert error.startswith("plugin `future` exited with status 1 before completing the handshake"), error
    assert "no common app protocol version: the hub offered [1]" in error, error
    assert "this plugin supports [2]" in error, error


def test_a_python_plugin_expecting_another_cookie_gives_a_hub_error_naming_it(start_hub):
    hub = start_hub(mismatched_plugin("stranger", 'FIXTURE_COOKIE_VALUE = "another-app"') + TAGGER)
    error = failed_start(hub, "stranger")["last_error"]
    assert error.startswith("plugin `stranger` exited with status 1 before completing the handshake"), error
    assert NOT_LAUNCHED_BY_HUB_MESSAGE in error, error


# --- AutoMTLS ----------------------------------------------------------------------------------------


def test_a_python_plugin_under_the_hub_with_auto_mtls(start_hub):
    if not hub_supports_auto_mtls():
        message = 'this hub build does not know `tls = "auto"` (AutoMTLS) yet'
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    hub = start_hub(TAGGER.replace('command = "', 'tls = "auto"\ncommand = "', 1))
    hub.wait_ready()
    before = hub.wait_plugin("tagger", lambda p: p["state"] == "running", "running")
    assert_enrich_tags(hub)
    # The plugin said it serves AutoMTLS (its hclog line, relayed by the hub with its fields) ...
    line = next((line for line in hub.log_text().splitlines() if "plugin started plugin=tagger" in line), "")
    address = re.search(r'address=\\?"(/[^"\\]+)', line)
    assert address and re.search(r'auto_mtls=\\?"true', line), hub.log_text()
    # ... and its socket speaks only TLS: a plaintext gRPC client gets nowhere.
    with grpc.insecure_channel(f"unix:{address.group(1)}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), err.value

    # A megabyte or two each way on one stream goes through the TLS front's flow control intact.
    records = [
        {"id": str(n), "payload": {"text": ("asap " if n % 3 == 0 else "calm ") + "x" * 500}} for n in range(3000)
    ]
    status, body = hub.request("POST", "/api/v1/plugins/tagger/call/enrich", {"records": records})
    assert status == 200, body
    tags = [result["record"]["payload"]["tags"] for result in body["results"]]
    assert tags == [["urgent"] if n % 3 == 0 else [] for n in range(3000)]

    # A restarted process makes a new certificate, and the hub pins the new one.
    os.kill(before["pid"], signal.SIGKILL)
    hub.wait_plugin("tagger", restarted(before["pid"]), "running again with a new pid")
    assert_enrich_tags(hub)
    assert "the TLS handshake with it" not in hub.log_text()  # the hub's own TLS failures (none)

    pids = [before["pid"], hub.plugin("tagger")["pid"]]
    assert hub.stop() == 0
    for pid in pids:
        assert process_gone(pid), f"plugin process {pid} outlived the hub"
