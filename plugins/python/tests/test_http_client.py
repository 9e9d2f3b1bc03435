"""Retries, error kinds, timeouts, the token bucket and rate-limit headers of ``HttpClient``."""

import concurrent.futures
import email.utils
import socket
import threading

import pytest
from fake_api import FakeApi, FakeClock
from switchyard_plugin.http import HttpClient, HttpConfigError, HttpError, parse_duration


@pytest.fixture
def api():
    with FakeApi() as server:
        yield server


def client(api, clock, **table):
    return HttpClient.from_config(dict({"base_url": api.url}, **table), clock=clock, environ={})


def answers(*replies):
    """A route giving ``replies`` in turn (the last one from then on)."""
    queue = list(replies)
    lock = threading.Lock()

    def handle(request):
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return handle


def test_durations():
    assert [parse_duration(v) for v in ("500ms", "30s", "5m", "1h", 2, 0.5, "1.5s")] == [
        0.5,
        30,
        300,
        3600,
        2,
        0.5,
        1.5,
    ]
    for bad in ("5 parsecs", -1, True, "", None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_retry_after_as_an_http_date_is_honoured(api):
    clock = FakeClock()
    when = email.utils.formatdate(clock.now + 7, usegmt=True)
    api.route("GET", "/x", answers((503, {"retry-after": when}, "busy"), (200, {}, {"ok": 1})))
    assert client(api, clock).get_json("/x") == {"ok": 1}
    assert clock.sleeps == [7.0]


def test_429_with_retry_after_seconds_then_success(api):
    clock = FakeClock()
    api.route("GET", "/x", answers((429, {"retry-after": "2"}, {}), (429, {"retry-after": "3"}, {}), (200, {}, [])))
    assert client(api, clock).get_json("/x") == []
    assert clock.sleeps == [2.0, 3.0]


def test_backoff_is_exponential_with_jitter_and_capped(api):
    clock = FakeClock()
    api.route("GET", "/x", answers((502, {}, "")))
    c = client(api, clock, retry={"max_attempts": 6, "initial_backoff": "1s", "max_backoff": "4s"})
    with pytest.raises(HttpError) as err:
        c.get("/x")
    assert (err.value.retryable, err.value.code, err.value.status) == (True, "upstream_unavailable", 502)
    assert len(api.seen("/x")) == 6
    bases = [1, 2, 4, 4, 4]
    assert len(clock.sleeps) == 5
    for slept, base in zip(clock.sleeps, bases):
        assert base / 2 <= slept <= base


def test_server_errors_retries_a_500_here(api):
    clock = FakeClock()
    api.route("GET", "/x", answers((500, {}, ""), (200, {}, {"ok": 1})))
    assert client(api, clock, retry={"server_errors": True}).get_json("/x") == {"ok": 1}
    assert len(api.seen("/x")) == 2
    api.route("GET", "/y", answers((500, {}, "")))
    with pytest.raises(HttpError) as err:
        client(api, clock).get("/y")
    assert len(api.seen("/y")) == 1, "without server_errors a 500 goes to the hub at once"
    assert err.value.retryable
    with pytest.raises(HttpConfigError):
        client(api, clock, retry={"server_errors": "yes"})


def test_a_retry_after_over_the_cap_is_not_waited_for_but_handed_to_the_hub(api):
    clock = FakeClock()
    api.route("GET", "/x", answers((429, {"retry-after": "3600"}, "")))
    with pytest.raises(HttpError) as err:
        client(api, clock, retry={"max_retry_after": "1m"}).get("/x")
    assert err.value.retryable and err.value.code == "rate_limited"
    assert err.value.retry_after.total_seconds() == 3600
    assert clock.sleeps == [] and len(api.seen("/x")) == 1


@pytest.mark.parametrize(
    "status, code", [(400, "client_error"), (403, "forbidden"), (404, "not_found"), (422, "client_error")]
)
def test_other_4xx_are_permanent_and_not_retried(api, status, code):
    clock = FakeClock()
    api.route("GET", "/x", answers((status, {}, {"error": "no"})))
    with pytest.raises(HttpError) as err:
        client(api, clock).get("/x")
    assert (err.value.retryable, err.value.code, err.value.status) == (False, code, status)
    assert len(api.seen("/x")) == 1 and clock.sleeps == []


def test_a_body_that_is_not_json_is_permanent(api):
    api.route("GET", "/x", answers((200, {"content-type": "text/html"}, "<html>")))
    with pytest.raises(HttpError) as err:
        client(api, FakeClock()).get_json("/x")
    assert (err.value.retryable, err.value.code) == (False, "bad_response")


def test_connection_refused_is_retried_then_retryable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    c = HttpClient.from_config({"base_url": f"http://127.0.0.1:{port}", "retry": {"max_attempts": 3}}, clock=clock)
    with pytest.raises(HttpError) as err:
        c.get("/x")
    assert (err.value.retryable, err.value.code, err.value.status) == (True, "connect_error", None)
    assert len(clock.sleeps) == 2


def test_every_call_has_a_timeout(api):
    release = threading.Event()
    api.route("GET", "/slow", lambda request: (release.wait(10), (200, {}, {}))[1])
    c = client(api, FakeClock(), timeout="200ms", retry={"max_attempts": 1})
    try:
        with pytest.raises(HttpError) as err:
            c.get("/slow")
    finally:
        release.set()
    assert (err.value.retryable, err.value.code) == (True, "timeout")
    assert "0.2s" in err.value.message


def test_the_token_bucket_spaces_concurrent_calls():
    # A frozen clock: the bucket's reservations alone decide who waits and how long.
    clock = FakeClock(advance_on_sleep=False)
    with FakeApi() as api:
        api.route("GET", "/x", answers((200, {}, {})))
        c = client(api, clock, rate_limit={"per_second": 10.0, "burst": 5})
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(lambda _: c.get("/x"), range(12)))
        assert len(api.seen("/x")) == 12
    # 5 calls took saved-up tokens; the other 7 waited for tokens 0.1 s apart.
    assert sorted(round(s, 6) for s in clock.sleeps) == [round(0.1 * n, 6) for n in range(1, 8)]


def test_the_bucket_refills_with_time():
    clock = FakeClock(advance_on_sleep=False)
    with FakeApi() as api:
        api.route("GET", "/x", answers((200, {}, {})))
        c = client(api, clock, rate_limit={"per_second": 2.0, "burst": 2})
        c.get("/x"), c.get("/x")
        clock.advance(1.0)  # two tokens back
        c.get("/x"), c.get("/x")
        assert clock.sleeps == []
        c.get("/x")
        assert clock.sleeps == [0.5]


@pytest.mark.parametrize(
    "headers, pause",
    [
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "EPOCH+30"}, 30.0),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "5"}, 5.0),
        ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "EPOCH+30"}, None),
    ],
)
def test_rate_limit_headers_pause_the_next_call_until_the_reset(api, headers, pause):
    clock = FakeClock()
    headers = {k: v.replace("EPOCH+30", str(int(clock.now) + 30)) for k, v in headers.items()}
    api.route("GET", "/x", answers((200, headers, {})))
    c = client(api, clock)
    c.get("/x")
    assert clock.sleeps == []
    c.get("/x")
    assert clock.sleeps == ([pause] if pause is not None else [])


def test_unknown_and_mistyped_keys_are_rejected_by_name():
    table = {
        "base_url": "ftp://x",
        "timeout": "soon",
        "retries": 3,
        "retry": {"max_attempts": 0, "jitter": True},
        "rate_limit": {"burst": 2},
        "pagination": {"kind": "cursor"},
    }
    with pytest.raises(HttpConfigError) as err:
        HttpClient.from_config(table, field="api")
    assert sorted(e.field for e in err.value.errors) == [
        "api.base_url",
        "api.pagination.cursor_param",
        "api.pagination.cursor_path",
        "api.rate_limit.per_second",
        "api.retries",
        "api.retry.jitter",
        "api.retry.max_attempts",
        "api.timeout",
    ]


@pytest.mark.parametrize(
    "pagination, field",
    [
        ({"kind": "cursor", "cursor_param": "c", "cursor_path": "/n", "page_size": 10}, "api.pagination.page_size"),
        ({"kind": "cursor", "cursor_param": "c", "cursor_path": "/n", "limit_param": "l"}, "api.pagination.page_size"),
        ({"kind": "page_token", "token_param": "t", "token_path": "next"}, "api.pagination.token_path"),
        ({"kind": "page", "page_size": 0}, "api.pagination.page_size"),
        ({"kind": "link", "cursor_param": "c"}, "api.pagination.cursor_param"),
    ],
)
def test_pagination_tables_are_checked_key_by_key(pagination, field):
    with pytest.raises(HttpConfigError) as err:
        HttpClient.from_config({"pagination": pagination}, field="api")
    assert [e.field for e in err.value.errors] == [field], err.value.errors


@pytest.mark.parametrize("status", [403, 429])
def test_a_used_up_rate_limit_waits_for_the_reset_then_retries(api, status):
    # GitHub answers an exhausted primary limit with 403 or 429, X-RateLimit-Remaining: 0 and the reset epoch.
    clock = FakeClock()
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 40)}
    body = {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com"}
    api.route("GET", "/x", answers((status, limited, body), (200, {"x-ratelimit-remaining": "4999"}, {"ok": 1})))
    assert client(api, clock).get_json("/x") == {"ok": 1}
    assert clock.sleeps == [40.0]
    assert len(api.seen("/x")) == 2


def test_a_403_with_retry_after_is_a_secondary_rate_limit(api):
    clock = FakeClock()
    body = {"message": "You have exceeded a secondary rate limit."}
    api.route("GET", "/x", answers((403, {"retry-after": "60"}, body), (200, {}, {"ok": 1})))
    assert client(api, clock).get_json("/x") == {"ok": 1}
    assert clock.sleeps == [60.0]


def test_a_rate_limit_resetting_after_max_retry_after_is_handed_to_the_hub(api):
    clock = FakeClock()
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 3600)}
    api.route("GET", "/x", answers((403, limited, {"message": "API rate limit exceeded"})))
    with pytest.raises(HttpError) as err:
        client(api, clock).get("/x")
    assert err.value.retryable and err.value.code == "rate_limited" and err.value.status == 403
    assert err.value.retry_after is not None and err.value.retry_after.total_seconds() == 3600
    assert clock.sleeps == [] and len(api.seen("/x")) == 1


def test_a_403_without_rate_limit_headers_stays_forbidden(api):
    clock = FakeClock()
    api.route("GET", "/x", answers((403, {"x-ratelimit-remaining": "4000"}, {"message": "Resource not accessible"})))
    with pytest.raises(HttpError) as err:
        client(api, clock).get("/x")
    assert not err.value.retryable and err.value.code == "forbidden"
    assert len(api.seen("/x")) == 1
