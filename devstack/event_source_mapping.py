"""SQS event source mappings: poll a function's queue and invoke it with batches, as Lambda's poller does.

One thread per enabled ``SQS`` event of the template, or, for a function with several execution environments
(``LocalStack.start(function_processes={id: n})``), one per environment up to the event's
``ScalingConfig.MaximumConcurrency``: Lambda's pollers invoke that many batches of one queue at once.

* **Batching.** ReceiveMessage asks for at most 10 messages (SQS's limit per call) with ``AttributeNames=All``
  and ``MessageAttributeNames=All``; the poller keeps receiving until it holds ``BatchSize`` messages or
  ``MaximumBatchingWindowInSeconds`` has passed since the first one arrived (a window of 0 invokes with what
  one ReceiveMessage returned). While a batch fills, a ReceiveMessage that returns fewer messages than asked
  (the queue is drained for the moment) is followed by a pause of ``REFILL_PAUSE_SECONDS`` (cut to what is
  left of the window), so the next one finds several messages instead of each arrival costing a request;
  the batch is still invoked as soon as it is full or the window ends. A message received twice while a
  batch fills (its visibility timeout ran out) is kept once, with its newest receipt handle.
* **The event** is Lambda's: ``{"Records": [{messageId, receiptHandle, body, attributes, messageAttributes,
  md5OfBody, [md5OfMessageAttributes], eventSource: "aws:sqs", eventSourceARN, awsRegion}]}``, with message
  attributes in Lambda's lower-camel shape (``stringValue``, ``binaryValue`` as base64, ``stringListValues``,
  ``binaryListValues``, ``dataType``).
* **Outcome.** The function is invoked through the stack's runtime (one invocation at a time per function).
  If it returns, the batch's messages are deleted (DeleteMessageBatch), except, with
  ``FunctionResponseTypes: [ReportBatchItemFailures]``, those its ``batchItemFailures`` name. Lambda's rules
  for that response are kept: no response, ``{}``, or a null or empty list is full success; a response that
  is not an object, a ``batchItemFailures`` that is not a list, or an ``itemIdentifier`` that is missing,
  empty, not a string or not a message of the batch fails the whole batch. A handler that raises (or returns
  something that is not JSON) fails the whole batch too. Failed messages are not touched: they come back
  when their visibility timeout expires, and once a message has been received ``maxReceiveCount`` times
  SQS moves it to the queue's dead-letter queue on the next receive.
* **Dead-letter queues.** moto (5.x) implements the RedrivePolicy move itself, in ReceiveMessage, as SQS does
  (checked against moto's server: a message received ``maxReceiveCount`` times lands in the DLQ on the next
  ReceiveMessage), so the poller does not emulate it; an external endpoint does it server-side as well.
* **Speed.** Retries wait for the queue's visibility timeout; ``LocalStack.start(...,
  visibility_timeout_override=5)`` (``adserve-local run --visibility-timeout``) shortens it for every queue.
* **Stopping.** ReceiveMessage long-polls for at most 1 s and the loop checks a stop event between calls, so
  ``stop()`` returns within about a second unless a handler is still running; a batch still filling when
  the stop comes is not invoked (its messages reappear after their visibility timeout).

Not emulated: the scaling of Lambda's pollers with the queue's depth (a fixed number here, see above), the
6 MB payload cap and FilterCriteria.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from devstack.stack_description import SqsEventSource, StackDescription

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef, MessageTypeDef

__all__ = [
    "SQS_MAX_MESSAGES_PER_RECEIVE",
    "BatchResult",
    "EventSourceMappings",
    "InvalidBatchResponseError",
    "SqsPoller",
    "failed_message_ids",
    "sqs_event",
]

logger = logging.getLogger(__name__)

SQS_MAX_MESSAGES_PER_RECEIVE = 10
WAIT_SECONDS = 1
"""Longest ReceiveMessage long poll: the bound on how long a stop request waits for a poller."""
REFILL_PAUSE_SECONDS = 0.1
"""Pause after a ReceiveMessage that drained the queue while a batch fills (never past the batching window)."""

# The system attributes Lambda passes on in a record's ``attributes``.
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)

Invoke = Callable[[str, Any], Any]


class InvalidBatchResponseError(ValueError):
    """A response Lambda would not accept as a partial batch response: the whole batch fails."""


@dataclass(frozen=True)
class BatchResult:
    """One invocation: how many messages it carried and which ones were left on the queue."""

    function_id: str
    size: int
    failed: frozenset[str]
    milliseconds: int
    error: str | None = None


def sqs_event(messages: Sequence[MessageTypeDef], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda invokes a function with for *messages* received from the queue *queue_arn*."""
    return {"Records": [_record(message, queue_arn, region) for message in messages]}


def _record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    attributes: Mapping[Any, str] = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: attributes[name] for name in _RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _base64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [_base64(item) for item in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def _base64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode("ascii")


def failed_message_ids(response: Any, message_ids: Sequence[str], *, report_batch_item_failures: bool) -> set[str]:
    """The messages of a batch to leave on the queue after the function returned *response*.

    Raises :class:`InvalidBatchResponseError` when Lambda would fail the whole batch.
    """
    try:
        document = json.loads(json.dumps(response))
    except (TypeError, ValueError) as error:  # Lambda cannot marshal it: an invocation error
        raise InvalidBatchResponseError(f"the response is not JSON: {error}") from error
    if not report_batch_item_failures or document is None:
        return set()
    if not isinstance(document, dict):
        raise InvalidBatchResponseError(f"the response is not an object: {document!r}")
    failures = document.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise InvalidBatchResponseError(f"batchItemFailures is not a list: {failures!r}")
    batch = set(message_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in batch:
            raise InvalidBatchResponseError(f"batchItemFailures names no message of the batch: {failure!r}")
        failed.add(identifier)
    return failed


class SqsPoller:
    """Lambda's poller for one SQS event source: receive a batch, invoke, delete what succeeded, repeat."""

    def __init__(
        self,
        source: SqsEventSource,
        *,
        queue_url: str,
        queue_arn: str,
        region: str,
        invoke: Invoke,
        client: SQSClient,
        wait_seconds: int = WAIT_SECONDS,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._region = region
        self._invoke = invoke
        self._client = client
        self._wait_seconds = wait_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SqsPoller({self.source.queue_id} -> {self.source.function_id})"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        name = f"sqs-poller-{self.source.function_id}-{self.source.event_name}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; whether it has ended (a handler still running keeps it alive)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
            self._thread = None
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        self.request_stop()
        return self.join(timeout)

    def poll_once(self) -> BatchResult | None:
        """Receive one batch and process it; None if the queue had nothing (or a stop was requested)."""
        messages = self._receive_batch()
        if not messages or self._stopping.is_set():
            return None
        return self._process(messages)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("%s: polling %s failed; retrying in 1 s", self.source.function_id, self.queue_url)
                self._stopping.wait(1.0)

    def _receive_batch(self) -> list[MessageTypeDef]:
        batch: dict[str, MessageTypeDef] = {}  # by message ID: a message seen twice keeps its newest handle
        window_ends: float | None = None
        while not self._stopping.is_set() and len(batch) < self.source.batch_size:
            remaining = math.inf if window_ends is None else window_ends - time.monotonic()
            if remaining <= 0:
                break
            wait = self._wait_seconds if remaining >= self._wait_seconds else 0
            asked = min(SQS_MAX_MESSAGES_PER_RECEIVE, self.source.batch_size - len(batch))
            messages = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=asked,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            for message in messages:
                batch[message["MessageId"]] = message
            if not batch:
                if window_ends is None and not wait:
                    self._stopping.wait(0.1)
                continue
            if window_ends is None:
                window_ends = time.monotonic() + self.source.maximum_batching_window_seconds
            if len(messages) < asked and (messages or not wait):  # drained for now: let more arrive first
                self._stopping.wait(min(REFILL_PAUSE_SECONDS, max(0.0, window_ends - time.monotonic())))
        return list(batch.values())

    def _process(self, messages: list[MessageTypeDef]) -> BatchResult:
        event = sqs_event(messages, queue_arn=self.queue_arn, region=self._region)
        ids = [message["MessageId"] for message in messages]
        started = time.perf_counter()
        error: str | None = None
        raised: Exception | None = None
        try:
            response = self._invoke(self.source.function_id, event)
            failed = failed_message_ids(
                response, ids, report_batch_item_failures=self.source.reports_batch_item_failures
            )
        except InvalidBatchResponseError as invalid:
            failed, error = set(ids), f"invalid batch response ({invalid})"
        except Exception as exception:  # noqa: BLE001 - any function error fails the batch, as in Lambda; logged below
            failed, error, raised = set(ids), f"{type(exception).__name__}: {exception}", exception
        milliseconds = int((time.perf_counter() - started) * 1000)
        self._delete([message for message in messages if message["MessageId"] not in failed])
        result = BatchResult(self.source.function_id, len(messages), frozenset(failed), milliseconds, error)
        _log_batch(result, self.source, raised)
        return result

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), SQS_MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + SQS_MAX_MESSAGES_PER_RECEIVE]
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(chunk)
            ]
            response = self._client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                message_id = chunk[int(failure["Id"])]["MessageId"]
                logger.warning(
                    "%s: could not delete message %s (%s); it will be delivered again",
                    self.source.function_id,
                    message_id,
                    failure.get("Message", failure.get("Code")),
                )


def _log_batch(result: BatchResult, source: SqsEventSource, raised: Exception | None) -> None:
    """One line per batch (with the handler's traceback when it raised)."""
    line = "%s <- %s: batch of %d, %d failed, %d ms"
    arguments: tuple[Any, ...] = (result.function_id, source.queue_id, result.size, len(result.failed))
    if result.error is None:
        logger.info(line, *arguments, result.milliseconds)
    else:
        logger.warning(
            line + "; whole batch retried: %s", *arguments, result.milliseconds, result.error, exc_info=raised
        )


class EventSourceMappings:
    """The SQS pollers of a stack, started and stopped together."""

    def __init__(self, pollers: Sequence[SqsPoller]) -> None:
        self.pollers = tuple(pollers)

    @classmethod
    def for_stack(
        cls,
        description: StackDescription,
        invoke: Invoke,
        session: boto3.session.Session | None = None,
        *,
        environments: Mapping[str, int] | None = None,
        wait_seconds: int = WAIT_SECONDS,
    ) -> EventSourceMappings:
        """Pollers for each enabled SQS event source, on the queues *description* references: as many as the
        function has execution environments (*environments*, by function; 1 if not named), at most the source's
        MaximumConcurrency, each with a client of its own."""
        session = session or boto3.session.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=wait_seconds + 10)
        pollers: list[SqsPoller] = []
        for source in description.sqs_event_sources:
            if not source.enabled:
                logger.info("%s: event source %s is disabled", source.function_id, source.event_name)
                continue
            queue = description.references[source.queue_id]
            concurrency = (environments or {}).get(source.function_id, 1)
            if source.maximum_concurrency is not None:
                concurrency = min(concurrency, source.maximum_concurrency)
            pollers.extend(
                SqsPoller(
                    source,
                    queue_url=queue.ref,
                    queue_arn=str(queue.attributes["Arn"]),
                    region=description.region,
                    invoke=invoke,
                    client=session.client("sqs", config=config),
                    wait_seconds=wait_seconds,
                )
                for _ in range(concurrency)
            )
        return cls(pollers)

    def __iter__(self) -> Iterator[SqsPoller]:
        return iter(self.pollers)

    def start(self) -> None:
        for poller in self.pollers:
            poller.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every poller to stop, then wait for each (all stop together, within about a second)."""
        for poller in self.pollers:
            poller.request_stop()
        deadline = time.monotonic() + timeout
        for poller in self.pollers:
            if not poller.join(max(0.0, deadline - time.monotonic())):
                logger.warning("%r is still running a batch; leaving it to finish on its own", poller)
