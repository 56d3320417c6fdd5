"""Decision records to the outcomes queue, where Record writes them to the training logs."""

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.decision_records import RECORD_KIND, DecisionRecord
from adserve.errors import DecisionLogUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class DecisionQueue:
    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def publish(self, record: DecisionRecord) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=record.model_dump_json(),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": RECORD_KIND}},
            )
        except (ClientError, BotoCoreError) as error:
            raise DecisionLogUnavailableError(str(error)) from error
