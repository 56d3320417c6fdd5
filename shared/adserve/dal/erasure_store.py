"""Erasure's adapters: a listener's FrequencyCaps partition deleted, and the erasure ledger in the logs bucket.

The ledger is one empty object per erased pseudonym, ``erasures/<pseudonym>``, in the training logs bucket:

- **Idempotent by its name.** Recording puts the object only if absent (a conditional ``If-None-Match: *``
  write), so a repeated erasure writes nothing, not even a new version in the versioned bucket.
- **Read once per training run** with one paginated LIST of the prefix: the names are the ledger, no object
  is ever read. A million erasures is a thousand LIST pages, seconds beside a retrain's minutes.
- **Lives beside what it filters, as long as it is needed.** The bucket's lifecycle rule expires ``logs/``
  only, so ledger entries never expire: they outlive every log row they drop. The trainer's role needs
  nothing new (it lists the bucket already), and erasure's role may only put objects under ``erasures/``.
- **Holds pseudonyms only**, never the id: no more personal than the logs it filters.

A DynamoDB table would also do, but would be one more table to provision, back up and grant, for a set that
is only ever added to and read whole.
"""

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from adserve.campaigns.frequency_caps import COUNTER_PREFIX
from adserve.core.errors import ErasureUnavailableError
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.s3_rest import object_keys
from adserve.outcomes.recording import MARKER_PREFIX
from adserve.privacy.erasure import PartitionDeletion
from adserve.privacy.pseudonyms import LEGACY_HASH_HEX_LENGTH, PSEUDONYM_HEX_LENGTH

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef, WriteRequestTypeDef

    from adserve.dal.s3_rest import S3RestClient

LEDGER_PREFIX: Final = "erasures/"
LEGACY_LEDGER_PREFIX: Final = f"{LEDGER_PREFIX}legacy/"
"""Where the unkeyed hashes of rows logged before pseudonyms go: anyone who can list the bucket could test a list
of ids against them, so they expire (a lifecycle rule, LogRetentionDays) once no such row can be left; written
after the last one was logged, they outlive it."""
BATCH_WRITE_LIMIT: Final = 25
"""Items per BatchWriteItem, DynamoDB's maximum."""
UNPROCESSED_ATTEMPTS: Final = 8
"""Rounds of retrying a batch's unprocessed items (throttled writes) before the erasure fails."""
_PSEUDONYM = re.compile(rf"[0-9a-f]{{{PSEUDONYM_HEX_LENGTH}}}|[0-9a-f]{{{LEGACY_HASH_HEX_LENGTH}}}")
"""A keyed pseudonym, or the unkeyed hash rows carried before them (``legacy_listener_hash``)."""


def _backoff(attempt: int) -> float:
    """Seconds before retrying unprocessed items: 50 ms doubling, at most 2 s (about 6 s in all)."""
    return min(2.0, 0.05 * 2.0**attempt)


class DynamoCounterPartitions:
    """Deletes one listener partition of the FrequencyCaps table: a keys-only Query per page, then
    BatchWriteItem deletes of its items, retrying what DynamoDB leaves unprocessed."""

    def __init__(
        self, client: DynamoDBJsonClient, table_name: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._client = client
        self._table = table_name
        self._sleep = sleep

    def delete_partition(self, partition: str) -> PartitionDeletion:
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "listener_id = :partition",
            "ExpressionAttributeValues": {":partition": {"S": partition}},
            "ProjectionExpression": "listener_id, counter_key",
            "ConsistentRead": True,  # an eventually consistent read could miss a counter written a moment ago
        }
        counters = markers = 0
        try:
            for page in self._client.query_pages(**request):
                keys = [
                    {"listener_id": item["listener_id"], "counter_key": item["counter_key"]} for item in page["Items"]
                ]
                for start in range(0, len(keys), BATCH_WRITE_LIMIT):
                    self._delete([{"DeleteRequest": {"Key": key}} for key in keys[start : start + BATCH_WRITE_LIMIT]])
                for key in keys:  # markers: only ones older versions left here (dal.impression_counter)
                    sort_key = key["counter_key"]["S"]
                    counters += sort_key.startswith(COUNTER_PREFIX)
                    markers += sort_key.startswith(MARKER_PREFIX)
        except (ClientError, BotoCoreError) as error:
            raise ErasureUnavailableError(f"deleting counters: {error}") from error
        return PartitionDeletion(counters=counters, markers=markers)

    def _delete(self, requests: "list[WriteRequestTypeDef]") -> None:
        for attempt in range(UNPROCESSED_ATTEMPTS):
            response = self._client.batch_write_item(RequestItems={self._table: requests})
            unprocessed = response.get("UnprocessedItems", {}).get(self._table, [])
            if not unprocessed:
                return
            requests = [{"DeleteRequest": {"Key": entry["DeleteRequest"]["Key"]}} for entry in unprocessed]
            self._sleep(_backoff(attempt))
        raise ErasureUnavailableError(f"{len(requests)} deletes still unprocessed after {UNPROCESSED_ATTEMPTS} rounds")


class S3ErasureLedger:
    """The erasure ledger: ``erasures/<pseudonym>`` objects in the logs bucket (see the module docstring), and
    ``erasures/legacy/<hash>`` for the unkeyed hashes of rows from before pseudonyms, which expire."""

    def __init__(self, client: "S3RestClient", bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def record(self, pseudonym: str) -> bool:
        if not _PSEUDONYM.fullmatch(pseudonym):
            raise ValueError("a ledger entry is a pseudonym")
        prefix = LEGACY_LEDGER_PREFIX if len(pseudonym) == LEGACY_HASH_HEX_LENGTH else LEDGER_PREFIX
        try:
            self._client.put_object(Bucket=self._bucket, Key=f"{prefix}{pseudonym}", Body=b"", IfNoneMatch="*")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise ErasureUnavailableError(f"recording an erasure: {error}") from error
        except BotoCoreError as error:
            raise ErasureUnavailableError(f"recording an erasure: {error}") from error
        return True

    def erased(self) -> frozenset[str]:
        """Every recorded pseudonym (one LIST of the prefix); a name that is not a pseudonym is ignored."""
        names: set[str] = set()
        try:
            names.update(
                key.removeprefix(LEGACY_LEDGER_PREFIX).removeprefix(LEDGER_PREFIX)
                for key in object_keys(self._client, self._bucket, LEDGER_PREFIX)
            )
        except (ClientError, BotoCoreError) as error:
            raise ErasureUnavailableError(f"reading the erasure ledger: {error}") from error
        return frozenset(name for name in names if _PSEUDONYM.fullmatch(name))
