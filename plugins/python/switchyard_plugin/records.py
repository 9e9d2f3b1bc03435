"""Plain-Python records and results, and their conversion to and from protobuf.

Plugin authors work with these dataclasses only: payloads are decoded JSON
values (usually a ``dict``), times are timezone-aware ``datetime`` objects,
and failures are raised as :class:`Failure`.
"""

import dataclasses
import datetime
import enum
import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

from google.protobuf import duration_pb2, timestamp_pb2

from ._stubs import input_pb2, output_pb2, plugin_pb2, record_pb2


class Failure(Exception):
    """Raised by a role method when a record, event or call cannot be handled.

    ``retryable`` says whether trying again later may succeed (a timeout, an
    upstream 5xx); permanent failures (malformed data) are not retried.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: Optional[datetime.timedelta] = None,
        code: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code

    @classmethod
    def permanent(cls, message: str, code: str = "") -> "Failure":
        """A failure that the same input will always hit again."""
        return cls(message, retryable=False, code=code)

    @classmethod
    def transient(cls, message: str, retry_after: Optional[datetime.timedelta] = None, code: str = "") -> "Failure":
        """A failure that may go away if the hub tries again later."""
        return cls(message, retryable=True, retry_after=retry_after, code=code)

    def to_proto(self) -> record_pb2.Failure:
        """The wire form of this failure."""
        failure = record_pb2.Failure(message=self.message, retryable=self.retryable, code=self.code)
        if self.retry_after is not None:
            failure.retry_after.CopyFrom(duration_pb2.Duration())
            failure.retry_after.FromTimedelta(self.retry_after)
        return failure

    def __repr__(self) -> str:
        return f"Failure({self.message!r}, retryable={self.retryable}, code={self.code!r})"


class InvalidWebhook(Failure):
    """Raised by ``handle_webhook`` for a malformed body: the hub answers 400 and does not retry."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message, retryable=False, code=code)


@dataclasses.dataclass
class ConfigError:
    """One problem with the plugin's configuration.

    ``field`` is a dotted path to the offending key inside ``config`` (for
    example ``"keywords.urgent"``), or ``""`` for the table as a whole.
    """

    field: str
    message: str

    def to_proto(self) -> plugin_pb2.ConfigError:
        """The wire form of this error."""
        return plugin_pb2.ConfigError(field=self.field, message=self.message)


@dataclasses.dataclass
class Record:
    """One unit of data moving through Switchyard.

    ``payload`` is the decoded JSON document (any JSON value; ``None`` for an
    empty payload, which is sent back as ``null``).
    """

    id: str
    payload: Any = None
    source: str = ""
    type: str = ""
    occurred_at: Optional[datetime.datetime] = None
    metadata: Dict[str, str] = dataclasses.field(default_factory=dict)
    idempotency_key: Optional[str] = None

    @classmethod
    def from_proto(cls, message: record_pb2.Record) -> "Record":
        """Decodes a wire record; raises a permanent :class:`Failure` if its payload is not JSON."""
        raw = bytes(message.payload)
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise Failure.permanent(
                    f"record {message.id!r}: payload is not valid UTF-8 JSON: {err}", code="invalid_payload"
                ) from err
        return cls(
            id=message.id,
            payload=payload,
            source=message.source,
            type=message.type,
            occurred_at=message.occurred_at.ToDatetime(tzinfo=datetime.timezone.utc)
            if message.HasField("occurred_at")
            else None,
            metadata=dict(message.metadata),
            idempotency_key=message.idempotency_key if message.HasField("idempotency_key") else None,
        )

    def to_proto(self) -> record_pb2.Record:
        """Encodes this record; raises a permanent :class:`Failure` if the payload is not JSON-serialisable."""
        try:
            payload = json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise Failure.permanent(
                f"record {self.id!r}: the plugin produced a payload that is not JSON: {err}", code="invalid_payload"
            ) from err
        message = record_pb2.Record(
            id=self.id,
            source=self.source,
            type=self.type,
            payload=payload.encode("utf-8"),
            metadata={str(key): str(value) for key, value in self.metadata.items()},
        )
        if self.occurred_at is not None:
            occurred_at = self.occurred_at
            if occurred_at.tzinfo is None:
                occurred_at = occurred_at.replace(tzinfo=datetime.timezone.utc)
            message.occurred_at.CopyFrom(timestamp_pb2.Timestamp())
            message.occurred_at.FromDatetime(occurred_at)
        if self.idempotency_key is not None:
            message.idempotency_key = self.idempotency_key
        return message


#: The most bytes a gRPC message may have, sent or received, by default
#: (gRPC's own default for a received message is 4 MiB): 65 MiB, so a webhook
#: body at the hub's largest ``max_body`` (64 MiB) arrives with the rest of its
#: request, and the record made of it goes back with what else it carries.
DEFAULT_MAX_MESSAGE_BYTES = 65 * 1024 * 1024

#: The most encoded bytes of records one ``PollResponse`` of several records
#: carries: gRPC's default limit for a received message (4 MiB) less 64 KiB
#: of room for the checkpoint and the framework, as the hub packs its own
#: messages. A larger :class:`PollBatch` goes out as several messages.
MESSAGE_BYTES = 4 * 1024 * 1024 - 64 * 1024


def item_bytes(message: Any) -> int:
    """The bytes ``message`` takes as the item field (field 1) of another: key, length, body."""
    size = message.ByteSize()
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


def pack(sized: Iterable[Tuple[Any, int]]) -> List[List[Any]]:
    """Messages, each with its :func:`item_bytes`, in order, in runs of at most
    :data:`MESSAGE_BYTES` each (a message larger than that alone in a run of its own): the items of
    the messages the SDK sends, as the hub and the Rust SDK pack theirs."""
    runs: List[List[Any]] = []
    run_bytes = 0
    for message, size in sized:
        if not runs or run_bytes + size > MESSAGE_BYTES:
            runs.append([])
            run_bytes = 0
        runs[-1].append(message)
        run_bytes += size
    return runs


@dataclasses.dataclass
class PollBatch:
    """One batch of a poll's output; ``checkpoint`` (when set) covers every record sent so far."""

    records: List[Record] = dataclasses.field(default_factory=list)
    checkpoint: Optional[bytes] = None

    def to_proto(self) -> input_pb2.PollResponse:
        """The wire form of this batch."""
        response = input_pb2.PollResponse(records=[record.to_proto() for record in self.records])
        if self.checkpoint is not None:
            response.checkpoint = bytes(self.checkpoint)
        return response

    def to_protos(self) -> List[input_pb2.PollResponse]:
        """The wire form of this batch as messages of at most :data:`MESSAGE_BYTES` of records each
        (a record larger than that alone goes in a message of its own), in order, the checkpoint on
        the last, so that it still covers them all. The hub gathers a poll's records up to their
        checkpoint whatever the messages they came in; a batch of any size is sent this way."""
        messages = (record.to_proto() for record in self.records)
        runs = pack((message, item_bytes(message)) for message in messages)
        responses = [input_pb2.PollResponse(records=run) for run in runs] or [input_pb2.PollResponse()]
        if self.checkpoint is not None:
            responses[-1].checkpoint = bytes(self.checkpoint)
        return responses


@dataclasses.dataclass
class WebhookRequest:
    """One HTTP webhook delivery as the hub received it (authentication secrets removed)."""

    method: str
    path: str
    query: str
    headers: List[tuple]
    body: bytes
    delivery_id: str
    received_at: Optional[datetime.datetime]

    @classmethod
    def from_proto(cls, message: input_pb2.WebhookRequest) -> "WebhookRequest":
        """Decodes a wire webhook request."""
        return cls(
            method=message.method,
            path=message.path,
            query=message.query,
            headers=[(header.name, header.value) for header in message.headers],
            body=bytes(message.body),
            delivery_id=message.delivery_id,
            received_at=message.received_at.ToDatetime(tzinfo=datetime.timezone.utc)
            if message.HasField("received_at")
            else None,
        )

    def header(self, name: str) -> Optional[str]:
        """The first header with this name (case-insensitive), or ``None``."""
        wanted = name.lower()
        for header_name, value in self.headers:
            if header_name.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """The body decoded as JSON; raises :class:`InvalidWebhook` when it is not."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise InvalidWebhook(f"the webhook body is not valid UTF-8 JSON: {err}") from err


@dataclasses.dataclass
class HttpReply:
    """An HTTP reply a webhook plugin wants sent (only with ``webhook_sync_reply``)."""

    status: int = 200
    headers: List[tuple] = dataclasses.field(default_factory=list)
    body: bytes = b""

    def to_proto(self) -> input_pb2.HttpReply:
        """The wire form of this reply."""
        return input_pb2.HttpReply(
            status=self.status,
            headers=[record_pb2.Header(name=name, value=value) for name, value in self.headers],
            body=self.body,
        )


@dataclasses.dataclass
class WebhookResult:
    """What a webhook delivery produced: records to store and an optional reply."""

    records: List[Record] = dataclasses.field(default_factory=list)
    reply: Optional[HttpReply] = None

    def to_proto(self) -> input_pb2.WebhookResponse:
        """The wire form of this result."""
        response = input_pb2.WebhookResponse(records=[record.to_proto() for record in self.records])
        if self.reply is not None:
            response.reply.CopyFrom(self.reply.to_proto())
        return response


class EventKind(enum.Enum):
    """What happened to a record an output receives."""

    CREATED = output_pb2.EVENT_KIND_CREATED
    UPDATED = output_pb2.EVENT_KIND_UPDATED
    UNSPECIFIED = output_pb2.EVENT_KIND_UNSPECIFIED


@dataclasses.dataclass
class RecordEvent:
    """One event for an output: a record was created or updated.

    ``delivery_id`` is the same on every redelivery, so outputs can deduplicate;
    ``attempt`` is 1 on the first delivery.
    """

    delivery_id: int
    kind: EventKind
    record: Record
    attempt: int

    @classmethod
    def from_proto(cls, message: output_pb2.RecordEvent) -> "RecordEvent":
        """Decodes a wire event; raises a permanent :class:`Failure` if its record's payload is not JSON."""
        try:
            kind = EventKind(message.kind)
        except ValueError:
            kind = EventKind.UNSPECIFIED
        return cls(
            delivery_id=message.delivery_id,
            kind=kind,
            record=Record.from_proto(message.record),
            attempt=message.attempt,
        )
