"""Shared helpers for the Python plugin tests: launching a plugin process as the hub would."""

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import grpc
import pytest
from switchyard_plugin import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYWORD_TAGGER = os.path.join(PYTHON_DIR, "keyword-tagger", "keyword-tagger")
FIXTURES = os.path.join(PYTHON_DIR, "tests", "fixtures")
VENV_PYTHON = os.path.join(PYTHON_DIR, ".venv", "bin", "python")
HANDSHAKE_TIMEOUT = 30.0


def hub_env(socket_dir: str, versions: Optional[str] = "1", **extra: str) -> Dict[str, str]:
    """Exactly the environment the Switchyard hub gives a plugin (nothing inherited, no PATH)."""
    env = {
        MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
        "PLUGIN_UNIX_SOCKET_DIR": socket_dir,
        "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
    }
    if versions is not None:
        env["PLUGIN_PROTOCOL_VERSIONS"] = versions
    env.update(extra)
    return env


class PluginProcess:
    """A plugin child process: its handshake line, its stderr lines, and a gRPC channel to it."""

    def __init__(self, argv: List[str], env: Dict[str, str]):
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stderr_lines: List[str] = []
        self.stdout_rest: List[bytes] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.channel: Optional[grpc.Channel] = None

    def _drain_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def read_handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> str:
        """The first stdout line, waiting up to ``timeout`` (fails the test on EOF or timeout)."""
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no handshake line within {timeout}s; stderr: {self.stderr_text()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    pytest.fail(f"stdout closed before the handshake line; stderr: {self.stderr_text()}")
                buffer += chunk
        line, _, rest = buffer.partition(b"\n")
        if rest:
            self.stdout_rest.append(rest)
        return line.decode("utf-8")

    def connect(self, socket_path: str) -> grpc.Channel:
        """A gRPC channel over the plugin's Unix socket."""
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        return self.channel

    def remaining_stdout(self) -> bytes:
        """Everything on stdout after the handshake line (call once the process has exited)."""
        return b"".join(self.stdout_rest) + self.proc.stdout.read()

    def wait(self, timeout: float) -> int:
        """The exit status, failing the test if the process is still running after ``timeout``."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the plugin did not exit within {timeout}s; stderr: {self.stderr_text()}")
        self._stderr_thread.join(timeout=5)
        return status

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)

    def close(self) -> None:
        """Kills whatever is left (the whole process group) and closes the channel."""
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def socket_dir():
    """A short private directory for plugin sockets (socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="sy-py-")
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launch():
    """Starts plugin processes and kills any left running at the end of the test."""
    started: List[PluginProcess] = []

    def start(argv: List[str], env: Dict[str, str]) -> PluginProcess:
        process = PluginProcess(argv, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


#: Set by test-wheel.sh: the tests run against the installed switchyard-plugin wheel, not the source tree.
TESTING_INSTALLED_WHEEL = os.environ.get("SWITCHYARD_TEST_INSTALLED_WHEEL") == "1"

if TESTING_INSTALLED_WHEEL:
    import switchyard_plugin

    assert (
        os.sep + "site-packages" + os.sep in switchyard_plugin.__file__
    ), f"SWITCHYARD_TEST_INSTALLED_WHEEL=1 but switchyard_plugin comes from {switchyard_plugin.__file__}"


@pytest.fixture(scope="session")
def python_exe() -> str:
    """The interpreter plugin processes run with: the build.sh virtualenv's (falls back to the running one),
    or the running one when testing the installed wheel."""
    if TESTING_INSTALLED_WHEEL:
        return sys.executable
    return VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable
