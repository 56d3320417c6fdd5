"""A listener's frequency counters in DynamoDB: one item per (listener, counter), read in one Query.

The partition key attribute is still called ``listener_id`` (renaming it would replace the table), but it
holds the listener's keyed pseudonym (adserve.privacy.pseudonyms), never the id an app sends. The Query keeps
to the ``cap#`` prefix: impression markers now have partitions of their own (``dal.impression_counter``), but
those older versions wrote stay in listener partitions until their TTL.
"""

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.campaigns.frequency_caps import COUNTER_PREFIX
from adserve.core.errors import CapStoreUnavailableError
from adserve.dal.json_clients import DynamoDBJsonClient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef


class FrequencyCapStore:
    def __init__(self, client: DynamoDBJsonClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def read_counters(self, listener: str, now: datetime) -> dict[str, int]:
        """One Query for every counter of the listener; counters past their TTL are ignored (deletion lags)."""
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "listener_id = :listener AND begins_with(counter_key, :prefix)",
            "ExpressionAttributeValues": {":listener": {"S": listener}, ":prefix": {"S": COUNTER_PREFIX}},
            "ProjectionExpression": "counter_key, impressions, expires_at",
        }
        counts: dict[str, int] = {}
        now_epoch = now.timestamp()
        try:
            for page in self._client.query_pages(**request):
                for item in page["Items"]:
                    if float(item["expires_at"]["N"]) > now_epoch:
                        counts[item["counter_key"]["S"]] = int(item["impressions"]["N"])
        except (ClientError, BotoCoreError) as error:
            raise CapStoreUnavailableError(str(error)) from error
        return counts
