"""github-issues under the real hub (target/debug/switchyard) and `switchyard conformance`, against a fake GitHub.

The hub polls the plugin on a short interval; the records it stores are read back through the
admin API (docs/admin-api.md): every issue once, pull requests left out, and an issue edited on
GitHub stored again as an update (version 2) while the others stay at version 1 (re-reading the
issue at the mark changes nothing). The conformance kit (docs/plugins-in-other-languages.md,
"Check your plugin") must pass with the plugin pointed at the fake.
"""

import json
import os
import subprocess

from conftest import PYTHON_DIR
from fake_github import TOKEN, FakeGitHub, timestamp
from hub_harness import HUB, require_binary, start_hub, wait_until  # noqa: F401

GITHUB_ISSUES = os.path.join(PYTHON_DIR, "github-issues", "github-issues")

pytestmark = require_binary(HUB, "cargo build -p switchyard-hub --bin switchyard")


def stored(hub, source="issues"):
    """The records the hub stored for ``source``, by source_id."""
    status, body = hub.request("GET", f"/api/v1/records?source={source}&limit=1000")
    assert status == 200, body
    return {record["source_id"]: record for record in body["records"]}


def test_issues_are_stored_and_an_edited_issue_is_an_update(start_hub):
    with FakeGitHub() as github:
        for number in range(1, 6):
            github.add(number, updated_minute=number)
        github.add(6, updated_minute=6, pull_request=True)
        hub = start_hub(
            f"""
[plugins.issues]
command = "{GITHUB_ISSUES}"
env = {{ GITHUB_TOKEN = "{TOKEN}" }}

[plugins.issues.config]
base_url = "{github.url}"
owner = "octo-org"
repo = "hello-world"
token_env = "GITHUB_TOKEN"
page_size = 2

[plugins.issues.poll]
interval = "200ms"
"""
        )
        hub.wait_plugin("issues", lambda p: p["state"] == "running", "running")
        wanted = {str(1_000_000 + n) for n in range(1, 6)}
        records = wait_until(lambda: (lambda r: r if set(r) == wanted else None)(stored(hub)), 60, "5 issues stored")
        for number in range(1, 6):
            record = records[str(1_000_000 + number)]
            assert record["type"] == "github.issue" and record["version"] == 1
            assert record["payload"]["number"] == number and record["payload"]["title"] == f"Issue {number}"
            assert record["metadata"] == {"repository": "octo-org/hello-world", "number": str(number)}
        # Later polls ask since= the mark, which the skipped pull request (updated last) moved.
        backfill = len(github.list_requests())
        wait_until(
            lambda: any(r.query.get("since") == timestamp(6) for r in github.list_requests()[backfill:]),
            30,
            "a poll since the mark",
        )

        github.update(2, updated_minute=30, title="Issue 2, edited", state="closed")
        edited = str(1_000_002)
        records = wait_until(
            lambda: (lambda r: r if r[edited]["version"] == 2 else None)(stored(hub)), 60, "issue 2 updated"
        )
        assert records[edited]["payload"]["title"] == "Issue 2, edited"
        assert records[edited]["payload"]["state"] == "closed"
        assert set(records) == wanted, "the pull request must not be stored"
        assert all(r["version"] == 1 for key, r in records.items() if key != edited), records
        log = hub.log_text()
        assert TOKEN not in log


def test_github_issues_passes_the_conformance_kit(tmp_path):
    with FakeGitHub() as github:
        for number in range(1, 4):
            github.add(number, updated_minute=number)
        config = tmp_path / "github-issues.toml"
        config.write_text(
            f'base_url = "{github.url}"\nowner = "octo-org"\nrepo = "hello-world"\n'
            'token_env = "GITHUB_TOKEN"\npage_size = 2\n'
        )
        result = subprocess.run(
            [HUB, "conformance", "--format", "json", "--config", str(config), "--env", f"GITHUB_TOKEN={TOKEN}",
             "--", GITHUB_ISSUES],
            capture_output=True,
            timeout=300,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        checks = {check["check"]: check for check in report["checks"]}
        for name in ("cookie", "handshake", "health", "metadata", "configure-bad", "configure", "shutdown",
                     "poll-determinism"):
            assert checks[name]["status"] == "PASS", checks[name]
        assert "__conformance_unknown_key__" in checks["configure-bad"]["detail"]
        assert any(r.query.get("per_page") == "2" for r in github.list_requests()), "the polls reached the fake"


def test_a_refused_token_fails_the_plugin_only_after_its_restart_policy(start_hub):
    with FakeGitHub() as github:
        github.add(1, updated_minute=1)
        hub = start_hub(
            f"""
[plugins.issues]
command = "{GITHUB_ISSUES}"
env = {{ GITHUB_TOKEN = "ghp_not-the-right-one" }}

[plugins.issues.config]
base_url = "{github.url}"
owner = "octo-org"
repo = "hello-world"
token_env = "GITHUB_TOKEN"

[plugins.issues.restart]
initial_backoff = "50ms"
max_backoff = "100ms"
max_restarts = 2
"""
        )
        failed = hub.wait_plugin("issues", lambda p: p["state"] == "failed", "failed")
        assert failed["restarts"] == 2, failed
        assert "token_env" in failed["last_error"] and "HTTP 401" in failed["last_error"], failed
        assert "ghp_not-the-right-one" not in failed["last_error"]
        assert "ghp_not-the-right-one" not in hub.log_text()
        with github.api.lock:
            starts = [r for r in github.api.requests if r.path == "/repos/octo-org/hello-world"]
        assert len(starts) == 3, "one start check per start: the first and two restarts"
