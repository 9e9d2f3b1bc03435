"""The gRPC servicers a Python plugin serves, wrapping a :class:`~switchyard_plugin.roles.Plugin`.

Besides the switchyard.v1 services, these include go-plugin's own
``plugin.GRPCController`` (Shutdown stops the plugin), ``plugin.GRPCStdio`` and
``plugin.GRPCBroker`` (both accepted and held open until the host cancels
them, so Go hosts are satisfied).
"""

import concurrent.futures
import functools
import json
import logging
import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

import grpc

from . import _stubs as pb
from .records import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MESSAGE_BYTES,
    ConfigError,
    Failure,
    InvalidWebhook,
    Record,
    RecordEvent,
    WebhookRequest,
    item_bytes,
    pack,
)
from .roles import Enricher, Output, Plugin, PollingInput, WebhookInput

logger = logging.getLogger("switchyard_plugin")

#: How often held-open streams re-check whether the plugin is stopping.
_HOLD_POLL_SECONDS = 0.5


class Lifecycle:
    """Shared state: whether Configure succeeded, and the request to stop.

    A stop request also writes a byte to ``wake_fd`` (when set), the pipe the
    main loop sleeps on, so it reacts at once.
    """

    def __init__(self, wake_fd: Optional[int] = None) -> None:
        self.configured = threading.Event()
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.wake_fd = wake_fd
        self._lock = threading.Lock()

    def request_stop(self, reason: str) -> None:
        """Asks the main loop to stop serving and exit (the first reason wins).

        Not for signal handlers: it takes locks the interrupted thread may hold.
        """
        with self._lock:
            if not self.stopping.is_set():
                self.stop_reason = reason
                self.stopping.set()
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"s")
            except OSError:  # the pipe is full (already awake) or closed (already stopping)
                pass

    def hold_open(self, context: grpc.ServicerContext) -> None:
        """Blocks until the RPC ends (host cancels it, server stops) or the plugin is stopping."""
        ended = threading.Event()
        if not context.add_callback(ended.set):
            return  # The RPC has already ended.
        while not ended.is_set() and not self.stopping.is_set():
            ended.wait(_HOLD_POLL_SECONDS)

    def require_configured(self, context: grpc.ServicerContext, method: str) -> None:
        """Aborts the call with FAILED_PRECONDITION when Configure has not succeeded yet."""
        if not self.configured.is_set():
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{method} called before a successful Configure: the hub must configure the plugin first",
            )


def _unexpected_failure(what: str, err: BaseException) -> Failure:
    """Turns an exception a plugin did not mean to raise into a permanent failure, logging the traceback."""
    logger.error("the plugin raised an unexpected exception while handling %s: %r", what, err, exc_info=err)
    return Failure.permanent(f"the plugin raised {type(err).__name__}: {err}", code="plugin_error")


class PluginService(pb.plugin_pb2_grpc.PluginServicer):
    """switchyard.v1.Plugin: GetMetadata and Configure."""

    def __init__(self, plugin: Plugin, lifecycle: Lifecycle):
        self.plugin = plugin
        self.lifecycle = lifecycle

    def GetMetadata(self, request, context):  # noqa: N802 - gRPC method name
        schema = self.plugin.config_schema
        return pb.plugin_pb2.PluginMetadata(
            name=self.plugin.name,
            version=self.plugin.version,
            roles=self.plugin.roles(),
            config_schema=json.dumps(schema, separators=(",", ":")) if schema else "",
            description=self.plugin.description,
            webhook_sync_reply=self.plugin.webhook_sync_reply,
        )

    def Configure(self, request, context):  # noqa: N802 - gRPC method name
        try:
            errors = self._configure(bytes(request.config_json), request.instance_name)
        except Failure as failure:
            # A retryable Failure from configure() (an unreachable upstream): UNAVAILABLE, so the hub
            # restarts the plugin with backoff instead of treating the configuration as wrong. Health is
            # left alone: the hub checks it while Configure runs, and waits for SERVING before using it.
            self.lifecycle.configured.clear()
            logger.warning(
                "configure failed, retryable",
                extra={"fields": {"instance": request.instance_name, "error": failure.message, "code": failure.code}},
            )
            _abort_for(context, failure, grpc.StatusCode.INVALID_ARGUMENT)
        if errors:
            self.lifecycle.configured.clear()
            logger.warning(
                "configuration rejected",
                extra={
                    "fields": {"instance": request.instance_name, "errors": [f"{e.field}: {e.message}" for e in errors]}
                },
            )
        else:
            self.lifecycle.configured.set()
            logger.info("configured", extra={"fields": {"instance": request.instance_name}})
        return pb.plugin_pb2.ConfigureResponse(errors=[error.to_proto() for error in errors])

    def _configure(self, raw: bytes, instance_name: str) -> List[ConfigError]:
        try:
            config: Any = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError) as err:
            return [ConfigError(field="", message=f"the configuration is not valid UTF-8 JSON: {err}")]
        if not isinstance(config, dict):
            return [
                ConfigError(
                    field="", message=f"the configuration must be a table (JSON object), not {_json_type(config)}"
                )
            ]
        try:
            errors = self.plugin.configure(config, instance_name)
        except Failure as failure:
            if failure.retryable:
                raise
            return [ConfigError(field="", message=failure.message)]
        except Exception as err:  # noqa: BLE001 - reported to the hub as a config error
            logger.error("configure raised an exception: %r", err, exc_info=err)
            return [
                ConfigError(
                    field="", message=f"the plugin failed to apply its configuration: {type(err).__name__}: {err}"
                )
            ]
        if errors is None:
            return []
        if not isinstance(errors, (list, tuple)) or not all(isinstance(e, ConfigError) for e in errors):
            logger.error("configure returned %r instead of a list of ConfigError", errors)
            return [
                ConfigError(
                    field="", message="the plugin's configure() returned something other than a list of ConfigError"
                )
            ]
        return list(errors)


def _json_type(value: Any) -> str:
    """Names a decoded JSON value's type the way JSON does ("an array", "a string", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _concurrency_of(plugin: Plugin) -> int:
    concurrency = getattr(plugin, "concurrency", 1)
    return concurrency if isinstance(concurrency, int) and concurrency > 1 else 1


_END_OF_STREAM = object()


def answer_stream(
    requests: Iterator[Any],
    items_of: Callable[[Any], Iterable[Any]],
    handle: Callable[[Any], Any],
    respond: Callable[[List[Any]], Any],
    concurrency: int,
) -> Iterator[Any]:
    """Answers every item of every request on a bidirectional stream exactly once.

    ``handle`` turns one item into its answer and never raises. With
    ``concurrency`` 1, items are handled in order and each request gets one
    response. With more, up to ``concurrency`` items are handled at once on a
    pool private to this stream, and answers are sent as they complete,
    batched with whatever else has completed meanwhile (the protocol allows
    any order and any batch size).
    """
    if concurrency <= 1:
        for request in requests:
            answers = [handle(item) for item in items_of(request)]
            if answers:
                yield respond(answers)
        return

    answers: "queue.Queue[Any]" = queue.Queue()
    in_flight = threading.Condition()
    counter = [0]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stream-worker")

    def post_answer(future: "concurrent.futures.Future[Any]") -> None:
        # Runs when the item is handled, or when it was cancelled because the stream ended.
        try:
            if not future.cancelled():
                answers.put(future.result())
        finally:
            with in_flight:
                counter[0] -= 1
                in_flight.notify_all()

    def read_requests() -> None:
        try:
            for request in requests:
                for item in items_of(request):
                    with in_flight:
                        counter[0] += 1
                    try:
                        future = pool.submit(handle, item)
                    except RuntimeError:  # the pool was shut down: the stream is being cancelled
                        with in_flight:
                            counter[0] -= 1
                        return
                    future.add_done_callback(post_answer)
        except Exception:  # noqa: BLE001 - the host cancelled the stream; nothing more to read
            pass
        finally:
            with in_flight:
                in_flight.wait_for(lambda: counter[0] == 0)
            answers.put(_END_OF_STREAM)

    reader = threading.Thread(target=read_requests, name="stream-reader", daemon=True)
    reader.start()
    try:
        while True:
            first = answers.get()
            if first is _END_OF_STREAM:
                return
            batch = [first]
            ended = False
            while True:
                try:
                    more = answers.get_nowait()
                except queue.Empty:
                    break
                if more is _END_OF_STREAM:
                    ended = True
                    break
                batch.append(more)
            yield respond(batch)
            if ended:
                return
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def enrich_responses(results: List[Any], max_message_bytes: int) -> List[Any]:
    """``results`` as EnrichResponses of at most :data:`MESSAGE_BYTES` of results each (a result
    larger than that alone goes in a message of its own; :func:`pack`), in order: an enricher may
    make its records larger than they came, and the hub reads any number of answers. A result too
    large for any message (over ``max_message_bytes``) is replaced by a permanent failure, code
    ``too_large``, that names the record: that item fails alone, where sending it would end the
    stream with RESOURCE_EXHAUSTED and fail every item in flight on it."""

    def sendable(result: Any) -> Tuple[Any, int]:
        size = item_bytes(result)
        if size <= max_message_bytes:
            return result, size
        failure = Failure.permanent(
            f"the enriched record {result.record.id!r} is {size} bytes on the wire, over the"
            f" {max_message_bytes} bytes one message may carry",
            code="too_large",
        )
        replaced = pb.enrich_pb2.EnrichResult(sequence=result.sequence, failure=failure.to_proto())
        return replaced, item_bytes(replaced)

    return [pb.enrich_pb2.EnrichResponse(results=run) for run in pack(map(sendable, results))]


class EnricherService(pb.enrich_pb2_grpc.EnricherServicer):
    """switchyard.v1.Enricher: answers every item of every batch exactly once, a batch's results in
    one response unless they are too large for one (:func:`enrich_responses`)."""

    def __init__(self, plugin: Enricher, lifecycle: Lifecycle, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.plugin = plugin
        self.lifecycle = lifecycle
        self.max_message_bytes = max_message_bytes

    def Enrich(self, request_iterator, context):  # noqa: N802 - gRPC method name
        self.lifecycle.require_configured(context, "Enrich")
        for results in answer_stream(
            request_iterator,
            lambda request: request.items,
            self._enrich_item,
            list,
            _concurrency_of(self.plugin),
        ):
            yield from enrich_responses(results, self.max_message_bytes)

    def _enrich_item(self, item) -> Any:
        result = pb.enrich_pb2.EnrichResult(sequence=item.sequence)
        try:
            record = Record.from_proto(item.record)
            enriched = self.plugin.enrich(record)
            if not isinstance(enriched, Record):
                raise Failure.permanent(
                    f"the plugin's enrich() returned {type(enriched).__name__}, not a Record", code="plugin_error"
                )
            if enriched.id != item.record.id or enriched.source != item.record.source:
                raise Failure.permanent(
                    f"the plugin changed the record's id or source ({item.record.id!r}/{item.record.source!r} -> "
                    f"{enriched.id!r}/{enriched.source!r}); enrichers must keep both",
                    code="plugin_error",
                )
            result.record.CopyFrom(enriched.to_proto())
        except Failure as failure:
            logger.debug(
                "record not enriched",
                extra={"fields": {"record_id": item.record.id, "sequence": item.sequence, "error": failure.message}},
            )
            result.failure.CopyFrom(failure.to_proto())
        except Exception as err:  # noqa: BLE001 - one bad record must not end the stream
            result.failure.CopyFrom(_unexpected_failure(f"record {item.record.id!r}", err).to_proto())
        return result


class OutputService(pb.output_pb2_grpc.OutputServicer):
    """switchyard.v1.Output: acks or nacks every event of every batch exactly once."""

    def __init__(self, plugin: Output, lifecycle: Lifecycle):
        self.plugin = plugin
        self.lifecycle = lifecycle

    def HandleEvent(self, request_iterator, context):  # noqa: N802 - gRPC method name
        self.lifecycle.require_configured(context, "HandleEvent")
        yield from answer_stream(
            request_iterator,
            lambda request: request.events,
            self._handle,
            lambda acks: pb.output_pb2.EventResponse(acks=acks),
            _concurrency_of(self.plugin),
        )

    def _handle(self, message) -> Any:
        ack = pb.output_pb2.EventAck(delivery_id=message.delivery_id)
        try:
            self.plugin.handle_event(RecordEvent.from_proto(message))
        except Failure as failure:
            logger.debug(
                "event nacked",
                extra={"fields": {"delivery_id": message.delivery_id, "error": failure.message}},
            )
            ack.failure.CopyFrom(failure.to_proto())
        except Exception as err:  # noqa: BLE001 - one bad event must not end the stream
            failure = _unexpected_failure(f"delivery {message.delivery_id}", err)
            failure.retryable = True  # the event itself may be fine; let the hub retry.
            ack.failure.CopyFrom(failure.to_proto())
        return ack


#: Trailing metadata carrying a failed call's code and retry-after hint, as the Rust SDK sends them.
FAILURE_CODE_KEY = "switchyard-failure-code"
RETRY_AFTER_KEY = "switchyard-retry-after-ms"


def failure_metadata(failure: Failure) -> List[tuple]:
    """The trailing metadata for a call that ``failure`` ends: its code and retry-after (milliseconds)."""
    metadata = []
    if failure.code:
        metadata.append((FAILURE_CODE_KEY, failure.code))
    if failure.retry_after is not None:
        metadata.append((RETRY_AFTER_KEY, str(max(0, int(failure.retry_after.total_seconds() * 1000)))))
    return metadata


def _abort_for(context: grpc.ServicerContext, failure: Failure, permanent_code: grpc.StatusCode) -> None:
    """Ends the call: UNAVAILABLE for a retryable failure, ``permanent_code`` otherwise, with its metadata."""
    code = grpc.StatusCode.UNAVAILABLE if failure.retryable else permanent_code
    metadata = failure_metadata(failure)
    if metadata:
        context.set_trailing_metadata(tuple(metadata))
    context.abort(code, failure.message)


def _may_exceed(response, max_message_bytes: int) -> bool:
    """Whether a packed PollResponse could be over ``max_message_bytes``: a message of several
    records holds at most MESSAGE_BYTES (4 MiB) of them, so only a lone record or a checkpoint of
    tens of MiB can pass it (half the room is margin for framing); the rest need no second measure."""
    room = max_message_bytes - MESSAGE_BYTES
    return len(response.records) == 1 or len(response.checkpoint) > room // 2


class PollingInputService(pb.input_pb2_grpc.PollingInputServicer):
    """switchyard.v1.PollingInput: streams the batches ``poll()`` yields.

    A :class:`Failure` ends the call with UNAVAILABLE (retryable) or
    FAILED_PRECONDITION (permanent); any other exception with INTERNAL.
    """

    def __init__(
        self, plugin: PollingInput, lifecycle: Lifecycle, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ):
        self.plugin = plugin
        self.lifecycle = lifecycle
        self.max_message_bytes = max_message_bytes

    def Poll(self, request, context):  # noqa: N802 - gRPC method name
        self.lifecycle.require_configured(context, "Poll")
        checkpoint = bytes(request.checkpoint) if request.HasField("checkpoint") else None
        too_large = None
        try:
            for batch in self.plugin.poll(checkpoint, request.max_records):
                if not context.is_active():
                    return
                # A batch too large for one message goes out as several (PollBatch.to_protos).
                for response in batch.to_protos():
                    if _may_exceed(response, self.max_message_bytes) and response.ByteSize() > self.max_message_bytes:
                        too_large = response
                        break
                    yield response
                if too_large is not None:
                    break
        except Failure as failure:
            _abort_for(context, failure, grpc.StatusCode.FAILED_PRECONDITION)
        except Exception as err:  # noqa: BLE001 - reported as the call's status
            failure = _unexpected_failure("a poll", err)
            context.abort(grpc.StatusCode.INTERNAL, failure.message)
        if too_large is not None:
            record = too_large.records[0].id if too_large.records else ""
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"record {record!r} is {too_large.ByteSize()} bytes on the wire, over the"
                f" {self.max_message_bytes} bytes one message may carry; emit it smaller",
            )


class WebhookInputService(pb.input_pb2_grpc.WebhookInputServicer):
    """switchyard.v1.WebhookInput: a non-retryable :class:`Failure` (or :class:`InvalidWebhook`)
    becomes INVALID_ARGUMENT (the hub answers 400), a retryable one UNAVAILABLE, anything else INTERNAL."""

    def __init__(self, plugin: WebhookInput, lifecycle: Lifecycle):
        self.plugin = plugin
        self.lifecycle = lifecycle

    def HandleWebhook(self, request, context):  # noqa: N802 - gRPC method name
        self.lifecycle.require_configured(context, "HandleWebhook")
        try:
            return self.plugin.handle_webhook(WebhookRequest.from_proto(request)).to_proto()
        except (InvalidWebhook, Failure) as failure:
            _abort_for(context, failure, grpc.StatusCode.INVALID_ARGUMENT)
        except Exception as err:  # noqa: BLE001 - reported as the call's status
            failure = _unexpected_failure(f"webhook delivery {request.delivery_id!r}", err)
            context.abort(grpc.StatusCode.INTERNAL, failure.message)


class ControllerService(pb.grpc_controller_pb2_grpc.GRPCControllerServicer):
    """plugin.GRPCController: Shutdown asks the plugin to stop serving and exit 0."""

    def __init__(self, lifecycle: Lifecycle):
        self.lifecycle = lifecycle

    def Shutdown(self, request, context):  # noqa: N802 - gRPC method name
        self.lifecycle.request_stop("the host called GRPCController.Shutdown")
        return pb.grpc_controller_pb2.Empty()


class StdioService(pb.grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """plugin.GRPCStdio: held open and silent (Python plugins log to the real stderr, which the host reads)."""

    def __init__(self, lifecycle: Lifecycle):
        self.lifecycle = lifecycle

    def StreamStdio(self, request, context) -> Iterator[Any]:  # noqa: N802 - gRPC method name
        self.lifecycle.hold_open(context)
        return
        yield  # pragma: no cover - makes this a generator that yields nothing


class BrokerService(pb.grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """plugin.GRPCBroker: accepts the stream, ignores offered connections, and holds it open."""

    def __init__(self, lifecycle: Lifecycle):
        self.lifecycle = lifecycle

    def StartStream(self, request_iterator, context) -> Iterator[Any]:  # noqa: N802 - gRPC method name
        reader = threading.Thread(target=self._drain, args=(request_iterator,), name="broker-drain", daemon=True)
        reader.start()
        self.lifecycle.hold_open(context)
        return
        yield  # pragma: no cover - makes this a generator that yields nothing

    @staticmethod
    def _drain(request_iterator) -> None:
        try:
            for info in request_iterator:
                logger.debug(
                    "ignoring a broker connection offer: this plugin uses no brokered connections",
                    extra={"fields": {"service_id": info.service_id}},
                )
        except Exception:  # noqa: BLE001 - the stream was cancelled
            pass


def register_all(
    server: grpc.Server, plugin: Plugin, lifecycle: Lifecycle, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> List[str]:
    """Adds every servicer the plugin needs to ``server`` (which sends messages of at most
    ``max_message_bytes``); returns the full service names registered."""
    names = ["switchyard.v1.Plugin", "plugin.GRPCController", "plugin.GRPCStdio", "plugin.GRPCBroker"]
    pb.plugin_pb2_grpc.add_PluginServicer_to_server(PluginService(plugin, lifecycle), server)
    pb.grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(ControllerService(lifecycle), server)
    pb.grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(StdioService(lifecycle), server)
    pb.grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(BrokerService(lifecycle), server)
    role_services: List[tuple] = [
        (
            PollingInput,
            "switchyard.v1.PollingInput",
            functools.partial(PollingInputService, max_message_bytes=max_message_bytes),
            pb.input_pb2_grpc.add_PollingInputServicer_to_server,
        ),
        (
            WebhookInput,
            "switchyard.v1.WebhookInput",
            WebhookInputService,
            pb.input_pb2_grpc.add_WebhookInputServicer_to_server,
        ),
        (
            Enricher,
            "switchyard.v1.Enricher",
            functools.partial(EnricherService, max_message_bytes=max_message_bytes),
            pb.enrich_pb2_grpc.add_EnricherServicer_to_server,
        ),
        (Output, "switchyard.v1.Output", OutputService, pb.output_pb2_grpc.add_OutputServicer_to_server),
    ]
    for role, name, servicer, add in role_services:
        if isinstance(plugin, role):
            add(servicer(plugin, lifecycle), server)
            names.append(name)
    return names


__all__: List[str] = ["FAILURE_CODE_KEY", "RETRY_AFTER_KEY", "Lifecycle", "failure_metadata", "register_all"]
