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


def test_enrich_answers_are_packed_below_a_message_and_a_result_too_large_fails_alone():
    from switchyard_plugin import _stubs as pb
    from switchyard_plugin.services import enrich_responses

    def result(sequence, mebibytes):
        record = pb.record_pb2.Record(id=f"r{sequence}", payload=b"x" * int(mebibytes * (1 << 20)))
        return pb.enrich_pb2.EnrichResult(sequence=sequence, record=record)

    small = [result(n, 0.001) for n in range(3)]
    assert [len(r.results) for r in enrich_responses(small, 8 << 20)] == [3]
    # 1.5 MiB results: two to a message of at most 4 MiB less 64 KiB. The one of 9 MiB, over the
    # 8 MiB limit, becomes a small failure that fits beside them.
    results = [result(0, 1.5), result(1, 1.5), result(2, 9), result(3, 1.5), result(4, 1.5), result(5, 1.5)]
    responses = enrich_responses(results, 8 << 20)
    assert [[r.sequence for r in response.results] for response in responses] == [[0, 1, 2], [3, 4], [5]]
    too_large = responses[0].results[2]
    assert too_large.WhichOneof("outcome") == "failure" and too_large.failure.code == "too_large"
    assert too_large.failure.message.startswith("the enriched record 'r2' is 943"), too_large.failure.message
    assert all(response.ByteSize() <= (4 << 20) - (64 << 10) for response in responses)
    assert enrich_responses([], 8 << 20) == []
