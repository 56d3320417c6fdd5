"""Decision records to the outcomes queue, where Record writes them to the training logs."""

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.decision_records import RECORD_KIND, DecisionRecord
from adserve.errors import DecisionLogUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


MAX_MESSAGE_BYTES = 250 * 1024
"""SQS accepts 256 KiB per message; the margin covers message attributes."""


class DecisionQueue:
    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def publish(self, record: DecisionRecord) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=record.to_json_within(MAX_MESSAGE_BYTES),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": RECORD_KIND}},
            )
        except (ClientError, BotoCoreError) as error:
            raise DecisionLogUnavailableError(str(error)) from error
