"""The Python keyword-tagger under a go-plugin host: host-go (plugins/go, built on plugin.NewClient).

With AutoMTLS (``ClientConfig.AutoMTLS``: Go's own crypto/tls and x509 verifier
on the host side), with a wrong magic cookie and with no common protocol
version: the first must work end to end and stop gracefully, the others must
fail with the plugin's reason in the host's log. (host-go against the plain
keyword-tagger is plugins/go/e2e's TestHostGoAgainstPythonKeywordTagger.)
"""

import json
import subprocess

from conftest import KEYWORD_TAGGER
from hub_harness import HOST_GO, require_binary
from switchyard_plugin import NOT_LAUNCHED_BY_HUB_MESSAGE

pytestmark = require_binary(HOST_GO, "plugins/go/build.sh")

CONFIG = json.dumps({"keywords": {"urgent": ["record 2"]}})


def run_host_go(*args: str):
    """Runs host-go against keyword-tagger: (exit status, JSON report, stderr)."""
    result = subprocess.run(
        [HOST_GO, "-log-level", "trace", "-config", CONFIG, *args, KEYWORD_TAGGER],
        capture_output=True,
        timeout=120,
    )
    return result.returncode, json.loads(result.stdout), result.stderr.decode("utf-8", "replace")


def test_keyword_tagger_under_a_go_plugin_host_with_auto_mtls():
    status, report, stderr = run_host_go("-auto-mtls", "-records", "3")
    assert status == 0, stderr
    assert "configuring client automatic mTLS" in stderr, stderr
    assert "auto_mtls=true" in stderr, stderr  # the plugin's own "plugin started" line, relayed by go-plugin
    assert report["negotiated_version"] == 1 and report["health"] == "SERVING"
    assert report["metadata"]["name"] == "keyword-tagger"
    tags = {item["sequence"]: item["record"]["payload"]["tags"] for item in report["enriched"]}
    assert tags == {1: [], 2: ["urgent"], 3: []}, report["enriched"]
    assert report["graceful"] is True and report["exited"] is True, stderr
    assert "plugin failed to exit gracefully" not in stderr


def test_a_go_plugin_host_with_a_wrong_cookie_gets_the_not_launched_message():
    status, report, stderr = run_host_go("-cookie", "not-the-cookie")
    assert status == 1
    assert "Failed to read any lines from plugin's stdout" in report["error"], report
    # The plugin's message reaches the host's log (go-plugin relays its stderr), and it exited 1.
    assert NOT_LAUNCHED_BY_HUB_MESSAGE in stderr, stderr
    assert 'error="exit status 1"' in stderr, stderr


def test_a_go_plugin_host_without_a_common_version_gets_the_plugins_reason():
    status, report, stderr = run_host_go("-versions", "2,3")
    assert status == 1
    assert report.get("negotiated_version") in (None, 0), report
    assert "no common app protocol version: the hub offered [2, 3]" in stderr, stderr
    assert "this plugin supports [1]" in stderr, stderr
    assert 'error="exit status 1"' in stderr, stderr
