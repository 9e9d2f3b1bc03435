"""Unit tests for the hclog JSON log handler."""

import io
import json
import logging
import re

from switchyard_plugin.hclog import (
    TRACE,
    HclogJsonHandler,
    hclog_level,
    hclog_timestamp,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def _logger(stream):
    logger = logging.getLogger(f"test-hclog-{id(stream)}")
    logger.propagate = False
    logger.handlers = [HclogJsonHandler(stream=stream)]
    logger.setLevel(TRACE)
    return logger


def test_levels_map_to_hclog_names():
    assert [
        hclog_level(level)
        for level in (TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
    ] == [
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "error",
    ]


def test_timestamps_have_six_fraction_digits_and_utc_offset():
    assert TIMESTAMP.match(hclog_timestamp(0.0))
    assert hclog_timestamp(0.0) == "1970-01-01T00:00:00.000000+00:00"
    assert hclog_timestamp(1.5) == "1970-01-01T00:00:01.500000+00:00"


def test_each_record_is_one_json_line_with_string_fields():
    stream = io.StringIO()
    logger = _logger(stream)
    logger.warning(
        "disk %s is %d%% full", "/data", 93, extra={"fields": {"plugin": "x", "bad": object()}, "attempt": 2}
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["@level"] == "warn"
    assert entry["@message"] == "disk /data is 93% full"
    assert TIMESTAMP.match(entry["@timestamp"])
    assert entry["plugin"] == "x"
    assert entry["attempt"] == 2
    assert isinstance(entry["bad"], str)


def test_exceptions_are_attached_as_error_text_on_the_same_line():
    stream = io.StringIO()
    logger = _logger(stream)
    try:
        raise ValueError("multi\nline")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["@level"] == "error"
    assert "ValueError: multi\nline" in entry["error"]


def test_write_errors_are_swallowed():
    class Broken(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    _logger(Broken()).error("nobody is listening")  # must not raise
