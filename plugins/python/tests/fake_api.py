"""A local HTTP server for the ``switchyard_plugin.http`` tests, and a fake clock.

``FakeApi`` listens on 127.0.0.1 (an ephemeral port) in a thread; each test
routes ``(method, path)`` to a function of the :class:`Seen` request that
returns ``(status, headers, body)``, and every request is recorded.
"""

import http.server
import json
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

Reply = Tuple[int, Dict[str, str], Any]


class Seen:
    """One request the server received."""

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes):
        parts = urllib.parse.urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.body = body

    @property
    def form(self) -> Dict[str, str]:
        """The body as an x-www-form-urlencoded form."""
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


class FakeApi:
    """A threaded HTTP server answering from per-route functions; use as a context manager."""

    def __init__(self) -> None:
        self.routes: Dict[Tuple[str, str], Callable[[Seen], Reply]] = {}
        self.requests: List[Seen] = []
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with api.lock:
                    api.requests.append(seen)
                route = api.routes.get((self.command, seen.path))
                status, headers, body = route(seen) if route else (404, {}, {"error": "no route"})
                if isinstance(body, (bytes, str)):
                    data = body.encode() if isinstance(body, str) else body
                else:
                    data = json.dumps(body).encode()
                    headers = dict({"content-type": "application/json"}, **headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that gave up (the timeout test) makes the write fail: not worth a traceback.
        self.server.handle_error = lambda request, client_address: None
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Callable[[Seen], Reply]) -> None:
        self.routes[(method, path)] = handler

    def seen(self, path: str) -> List[Seen]:
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def __enter__(self) -> "FakeApi":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    """A clock that only moves when told (or, with ``advance_on_sleep``, when slept on); sleeps are recorded."""

    def __init__(self, now: Optional[float] = None, advance_on_sleep: bool = True):
        # Starts at the real time (whole seconds): JWTs it dates are checked against the real clock.
        self.now = float(int(time.time())) if now is None else now
        self.mono = 1000.0
        self.advance_on_sleep = advance_on_sleep
        self.sleeps: List[float] = []
        self.lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            if self.advance_on_sleep:
                self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds
