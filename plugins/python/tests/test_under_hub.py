"""keyword-tagger (Python) and echo-go (Go) under the real Switchyard hub.

Skipped until the hub (target/debug/switchyard) and echo-go (plugins/go/bin/echo-go,
built by plugins/go/build.sh) exist (a failure instead with SWITCHYARD_REQUIRE_ALL=1).
Drives the hub through its admin API (docs/admin-api.md) and checks both plugins
start, answer, and stop with the hub.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from conftest import KEYWORD_TAGGER, PYTHON_DIR
from hub_harness import require_binary

REPO = os.path.dirname(os.path.dirname(PYTHON_DIR))
HUB = os.path.join(REPO, "target", "debug", "switchyard")
ECHO_GO = os.path.join(REPO, "plugins", "go", "bin", "echo-go")

pytestmark = [
    require_binary(HUB, "cargo build -p switchyard-hub --bin switchyard"),
    require_binary(ECHO_GO, "plugins/go/build.sh"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_python_and_go_plugins_under_the_hub(tmp_path):
    port = free_port()
    # Relative commands are resolved against the config file's directory (docs/configuration.md).
    config = tmp_path / "plugins.toml"
    config.write_text(
        f"""
[hub]
listen = "127.0.0.1:{port}"
database = "sqlite://hub.db"

[plugins.tagger]
command = "{os.path.relpath(KEYWORD_TAGGER, tmp_path)}"

[plugins.tagger.config]
keywords = {{ urgent = ["asap", "outage"], billing = ["invoice"] }}
text_fields = ["title", "body"]

[plugins.echo]
command = "{ECHO_GO}"

[plugins.echo.config]
tag = "go"
"""
    )
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "hub.log", "w+b")
    hub = subprocess.Popen([HUB, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = http("GET", f"{base}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            assert hub.poll() is None, "the hub exited early"
            assert time.monotonic() < deadline, "the hub did not become ready"
            time.sleep(0.1)

        status, plugins = http("GET", f"{base}/api/v1/plugins")
        assert status == 200
        by_name = {plugin["name"]: plugin for plugin in plugins}
        assert by_name["tagger"]["state"] == "running" and by_name["tagger"]["plugin_name"] == "keyword-tagger"
        assert by_name["tagger"]["roles"] == ["enrichment"]
        assert by_name["echo"]["state"] == "running" and by_name["echo"]["roles"] == ["enrichment", "output"]

        status, body = http(
            "POST",
            f"{base}/api/v1/plugins/tagger/call/enrich",
            {
                "records": [
                    {"id": "1", "payload": {"title": "Outage!", "body": "invoice asap"}},
                    {"id": "2", "payload": [1]},
                ]
            },
        )
        assert status == 200, body
        assert body["results"][0]["record"]["payload"]["tags"] == ["billing", "urgent"]
        assert body["results"][1]["failure"]["code"] == "payload_not_object"

        status, body = http(
            "POST",
            f"{base}/api/v1/plugins/echo/call/enrich",
            {"records": [{"id": "1", "payload": {}, "metadata": {"chain": "python"}}]},
        )
        assert status == 200, body
        assert body["results"][0]["record"]["metadata"]["chain"] == "python,go"

        status, body = http(
            "POST",
            f"{base}/api/v1/plugins/echo/call/events",
            {"events": [{"kind": "created", "record": {"id": "1", "payload": {}}}]},
        )
        assert status == 200, body
        assert body["acks"] == [{"delivery_id": 1, "ok": True}]

        pids = [plugin["pid"] for plugin in plugins]
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=30) == 0
        for pid in pids:
            assert process_gone(pid), f"plugin process {pid} outlived the hub"
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        log.seek(0)
        print(log.read().decode(errors="replace")[-5000:])
        log.close()
