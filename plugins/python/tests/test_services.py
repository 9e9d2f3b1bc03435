"""Unit tests for the stream answering logic shared by Enrich and HandleEvent."""

import threading

from switchyard_plugin.services import answer_stream


def run(requests, handle, concurrency):
    return list(answer_stream(iter(requests), lambda request: request, handle, list, concurrency))


def test_sequential_answers_each_request_in_order():
    responses = run([[1, 2], [], [3]], lambda item: item * 10, 1)
    assert responses == [[10, 20], [30]]


def test_concurrent_answers_every_item_exactly_once():
    responses = run([list(range(50)), list(range(50, 100))], lambda item: item, 8)
    answered = [answer for response in responses for answer in response]
    assert sorted(answered) == list(range(100))
    assert all(response for response in responses), "no empty batches"


def test_concurrent_items_really_run_at_the_same_time():
    # Each item waits for the other at a barrier: handled one after the other, both would time out.
    barrier = threading.Barrier(2, timeout=10)

    def handle(item):
        barrier.wait()
        return item

    responses = run([["a", "b"]], handle, 2)
    assert sorted(answer for response in responses for answer in response) == ["a", "b"]


def test_a_failing_request_stream_still_answers_what_was_read():
    def requests():
        yield [1, 2]
        raise RuntimeError("cancelled")

    stream = answer_stream(requests(), lambda request: request, lambda item: item, list, 4)
    assert sorted(answer for response in stream for answer in response) == [1, 2]


def test_a_failure_ending_a_call_carries_its_code_and_retry_after_as_the_rust_sdk_does():
    import datetime

    from switchyard_plugin import Failure
    from switchyard_plugin.http import HttpError
    from switchyard_plugin.services import failure_metadata

    assert failure_metadata(Failure.transient("busy", retry_after=datetime.timedelta(seconds=2.5), code="rate")) == [
        ("switchyard-failure-code", "rate"),
        ("switchyard-retry-after-ms", "2500"),
    ]
    assert failure_metadata(Failure.permanent("bad")) == []
    error = HttpError("GET /x answered HTTP 429", retryable=True, code="rate_limited", status=429, retry_after=7)
    assert failure_metadata(error) == [
        ("switchyard-failure-code", "rate_limited"),
        ("switchyard-retry-after-ms", "7000"),
    ]
