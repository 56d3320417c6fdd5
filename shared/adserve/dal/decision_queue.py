"""Decision records to the outcomes queue, where Record writes them to the training logs."""

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import DecisionLogUnavailableError
from adserve.core.observability import logger
from adserve.dal.json_clients import SQSJsonClient
from adserve.outcomes.decision_records import RECORD_KIND, DecisionRecord

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef


MAX_MESSAGE_BYTES = 250 * 1024
"""SQS accepts 256 KiB per message; the margin covers message attributes."""


class DecisionQueue:
    def __init__(self, client: SQSJsonClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def publish(self, record: DecisionRecord) -> None:
        """The record, with the request's correlation id as a message attribute so Record can log it."""
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "kind": {"DataType": "String", "StringValue": RECORD_KIND}
        }
        correlation_id = logger.get_correlation_id()
        if correlation_id:
            attributes["correlation_id"] = {"DataType": "String", "StringValue": str(correlation_id)}
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=record.to_json_within(MAX_MESSAGE_BYTES),
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as error:
            raise DecisionLogUnavailableError(str(error)) from error
