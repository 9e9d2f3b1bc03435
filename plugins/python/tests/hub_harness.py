"""A real Switchyard hub (target/debug/switchyard) for the tests, driven through its admin API.

:class:`Hub` writes a ``plugins.toml`` in a temp dir, starts the hub on an
ephemeral port (``listen = "127.0.0.1:0"``; the bound address is read from
its log), waits for conditions on plugins with deadlines, and, in
:meth:`Hub.kill`, leaves nothing behind: the hub runs in its own session and
process group, and every plugin process group the tests saw is killed too.
"""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional, Set, Tuple

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PYTHON_DIR))
HUB = os.path.join(REPO, "target", "debug", "switchyard")
HOST_GO = os.path.join(REPO, "plugins", "go", "bin", "host-go")
#: Set by plugins/polyglot-test.sh: a missing binary fails the run instead of skipping tests.
REQUIRE_ALL = os.environ.get("SWITCHYARD_REQUIRE_ALL") == "1"

_LISTENING = re.compile(r"HTTP server listening.*?addr=(\d+\.\d+\.\d+\.\d+:\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def require_binary(path: str, how_to_build: str):
    """A pytest mark that skips when ``path`` is not an executable (fails instead under SWITCHYARD_REQUIRE_ALL=1)."""
    missing = not os.access(path, os.X_OK)
    if missing and REQUIRE_ALL:
        pytest.fail(f"{path} is missing ({how_to_build}) and SWITCHYARD_REQUIRE_ALL=1", pytrace=False)
    return pytest.mark.skipif(missing, reason=f"needs {os.path.relpath(path, REPO)} ({how_to_build})")


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (it does not exist, or it is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_until(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Polls ``condition`` until it returns something truthy (returned), failing the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


class Hub:
    """One hub process with the given plugin tables, in ``directory`` (which holds the config, database and log)."""

    def __init__(self, directory, plugins_toml: str, hub_toml: str = "") -> None:
        self.directory = str(directory)
        self.config = os.path.join(self.directory, "plugins.toml")
        with open(self.config, "w") as file:
            file.write(
                f'[hub]\nlisten = "127.0.0.1:0"\ndatabase = "sqlite://hub.db"\n'
                f'stop_grace = "3s"\nkill_grace = "1s"\n{hub_toml}\n{plugins_toml}'
            )
        self.log_path = os.path.join(self.directory, "hub.log")
        self._log = open(self.log_path, "w+b")
        self.plugin_pids: Set[int] = set()
        self.proc = subprocess.Popen(
            [HUB, "run", "--config", self.config],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        self.base = "http://" + wait_until(self._bound_address, 60, "the hub to listen")

    def _bound_address(self) -> Optional[str]:
        if self.proc.poll() is not None:
            pytest.fail(f"the hub exited with status {self.proc.returncode}:\n{self.log_text()[-5000:]}")
        match = _LISTENING.search(self.log_text())
        return match.group(1) if match else None

    def log_text(self) -> str:
        """The hub's log so far (ANSI colours removed)."""
        with open(self.log_path, "rb") as file:
            return _ANSI.sub("", file.read().decode("utf-8", "replace"))

    def request(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        """One HTTP call to the hub's API: (status, decoded JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def plugin(self, name: str) -> Dict[str, Any]:
        """The plugin's status object (GET /api/v1/plugins/NAME); remembers its pid for clean-up."""
        status, body = self.request("GET", f"/api/v1/plugins/{name}")
        assert status == 200, body
        if isinstance(body.get("pid"), int):
            self.plugin_pids.add(body["pid"])
        return body

    def wait_plugin(
        self, name: str, predicate: Callable[[Dict[str, Any]], bool], what: str, timeout: float = 60
    ) -> Dict[str, Any]:
        """Polls the plugin's status until ``predicate`` holds; returns that status."""
        last: Dict[str, Any] = {}

        def check():
            nonlocal last
            assert self.proc.poll() is None, f"the hub exited:\n{self.log_text()[-5000:]}"
            last = self.plugin(name)
            return last if predicate(last) else None

        try:
            return wait_until(check, timeout, f"plugin {name} to be {what}")
        except pytest.fail.Exception:
            pytest.fail(f"plugin {name} never became {what}; last status: {json.dumps(last)}")

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits for GET /readyz to answer 200 (every plugin completed its handshake once)."""
        wait_until(lambda: self.request("GET", "/readyz")[0] == 200, timeout, "the hub to be ready")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the hub; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Stops the hub (SIGTERM, so it removes its socket directory), then kills whatever is left:
        the hub's process group and every plugin process group seen."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Plugins run in process groups of their own (pgid = pid); skip those already gone.
        groups = {self.proc.pid} | {pid for pid in self.plugin_pids if not process_gone(pid)}
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        for pid in self.plugin_pids:
            wait_until(lambda: process_gone(pid), 10, f"plugin process {pid} to die")
        self._log.close()


@pytest.fixture
def start_hub(tmp_path):
    """Starts :class:`Hub` instances; at the end prints the tail of each log and kills everything left."""
    hubs = []

    def start(plugins_toml: str, hub_toml: str = "") -> Hub:
        directory = tmp_path / f"hub{len(hubs)}"
        directory.mkdir()
        hub = Hub(directory, plugins_toml, hub_toml)
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        print(f"--- {hub.log_path} (tail) ---\n{hub.log_text()[-6000:]}")
        hub.kill()
