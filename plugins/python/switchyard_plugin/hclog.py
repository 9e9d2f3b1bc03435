"""Logging to stderr as hclog JSON lines, which go-plugin hosts and the hub parse.

Each record becomes one line such as::

    {"@level":"info","@message":"configured","@timestamp":"2026-01-02T03:04:05.123456+00:00","@module":"keyword-tagger","tags":3}

``@timestamp`` has exactly 6 fractional digits and a ``+00:00`` offset (hclog's
``TimeFormatJSON``; anything else makes the host fall back to text parsing),
and ``@level``/``@message`` are always strings. Extra fields come from
``logger.info("msg", extra={"fields": {...}})`` or plain ``extra`` keys.
"""

import datetime
import json
import logging
import sys
import threading
import traceback
from typing import Optional, TextIO

#: Python levels below DEBUG map to hclog's "trace".
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "fields"}


def hclog_level(levelno: int) -> str:
    """The hclog level name for a Python logging level."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def hclog_timestamp(created: float) -> str:
    """Formats a ``time.time()`` value as hclog's ``2006-01-02T15:04:05.000000Z07:00`` in UTC."""
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds")


def _json_safe(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class HclogJsonFormatter(logging.Formatter):
    """Formats a LogRecord as one hclog JSON object (no newline)."""

    def __init__(self, module: Optional[str] = None):
        super().__init__()
        self.module = module

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "@level": hclog_level(record.levelno),
            "@message": str(record.getMessage()),
            "@timestamp": hclog_timestamp(record.created),
            "@module": self.module or record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(str(key), _json_safe(value))
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, _json_safe(value))
        if record.exc_info:
            entry["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class HclogJsonHandler(logging.Handler):
    """Writes hclog JSON lines to a stream (the real stderr by default).

    Write errors (the host has gone and the pipe is closed) are ignored: a
    plugin must never die or loop because its log cannot be written.
    """

    def __init__(self, stream: Optional[TextIO] = None, module: Optional[str] = None, level: int = TRACE):
        super().__init__(level)
        self.stream = stream if stream is not None else sys.__stderr__
        self.setFormatter(HclogJsonFormatter(module))
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            with self._write_lock:
                self.stream.write(line)
                self.stream.flush()
        except Exception:  # noqa: BLE001 - a log line must never take the plugin down
            pass


def install(module: str, level: int = TRACE) -> logging.Logger:
    """Routes the root logger to an :class:`HclogJsonHandler` on stderr and returns the plugin's logger.

    The hub filters by level itself, so the default is to emit everything
    down to trace. Uncaught exceptions (main and other threads) are logged at
    error level before Python's default handling.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(HclogJsonHandler(module=None, level=level))
    root.setLevel(level)
    # grpc's own loggers are chatty at debug; keep them at info unless asked.
    logging.getLogger("grpc").setLevel(max(level, logging.INFO))
    logger = logging.getLogger(module)

    def log_uncaught(exc_type, exc, tb):
        logger.error("uncaught exception: %s", exc, exc_info=(exc_type, exc, tb))

    def log_thread_uncaught(args):
        if args.exc_type is SystemExit:
            return
        thread = args.thread.name if args.thread else "?"
        logger.error(
            "uncaught exception in thread %s: %s",
            thread,
            args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = log_uncaught
    threading.excepthook = log_thread_uncaught
    logging.captureWarnings(True)
    return logger
