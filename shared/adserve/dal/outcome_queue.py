"""Outcome events to the outcomes queue, where Record counts impressions and writes the training logs."""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import OutcomeQueueUnavailableError
from adserve.core.observability import logger
from adserve.dal.json_clients import SQSJsonClient
from adserve.outcomes.events import OUTCOME_KIND, OutcomeEvent

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

SQS_MAX_BATCH = 10
"""SendMessageBatch takes at most ten entries."""


def _attributes() -> dict[str, "MessageAttributeValueTypeDef"]:
    """The kind, and the request's correlation id (when there is one) so Record can log it with the event."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {"kind": {"DataType": "String", "StringValue": OUTCOME_KIND}}
    correlation_id = logger.get_correlation_id()
    if correlation_id:
        attributes["correlation_id"] = {"DataType": "String", "StringValue": str(correlation_id)}
    return attributes


class OutcomeQueue:
    def __init__(self, client: SQSJsonClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def publish(self, event: OutcomeEvent) -> None:
        """Queue one event; raise OutcomeQueueUnavailableError when SQS cannot take it."""
        try:
            self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=event.model_dump_json(), MessageAttributes=_attributes()
            )
        except (ClientError, BotoCoreError) as error:
            raise OutcomeQueueUnavailableError(str(error)) from error

    def publish_batch(self, events: Sequence[OutcomeEvent], in_time: Callable[[], bool] = lambda: True) -> list[str]:
        """Queue events ten per SendMessageBatch call; return the event ids that were NOT queued.

        Never raises for SQS faults: a failed call fails all of its entries, a failed entry only itself, and
        either way the caller learns exactly which events to report as failed. A chunk is sent only while
        *in_time()* (another call still fits the request's time); the events of chunks not sent are failed too,
        so a slow SQS cannot run the function past its timeout and lose every event's answer.
        """
        failed: list[str] = []
        for start in range(0, len(events), SQS_MAX_BATCH):
            chunk = events[start : start + SQS_MAX_BATCH]
            failed.extend(self._send_chunk(chunk) if in_time() else [event.event_id for event in chunk])
        return failed

    def _send_chunk(self, chunk: Sequence[OutcomeEvent]) -> list[str]:
        # Entry ids must match ^[A-Za-z0-9_-]{1,80}$ and be unique per call; event ids may hold '.' or ':'.
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "MessageBody": event.model_dump_json(), "MessageAttributes": _attributes()}
            for index, event in enumerate(chunk)
        ]
        try:
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            logger.warning("outcome batch not queued", extra={"entries": len(chunk), "error": str(error)})
            return [event.event_id for event in chunk]
        succeeded = {entry["Id"] for entry in response.get("Successful", [])}
        for entry in response.get("Failed", []):
            logger.warning(
                "outcome entry not queued",
                extra={"code": entry.get("Code"), "sender_fault": entry.get("SenderFault")},
            )
        # An entry SQS reported neither way is treated as failed: a retry is safe, a silent loss is not.
        return [event.event_id for index, event in enumerate(chunk) if str(index) not in succeeded]
