"""Exactly-once impression counting in the FrequencyCaps table: one transaction per impression.

The transaction puts the impression's dedupe marker only if it is absent and adds one to each counter
slot, all items in the listener's partition, so a redelivered impression cancels as a whole and concurrent
impressions never lose an update. Decide's Query skips markers by the counters' ``cap#`` key prefix.
"""

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from adserve.core.errors import CounterStoreUnavailableError
from adserve.dal.transactions import (
    CONFLICT,
    DUPLICATE,
    TransactionalWriter,
    cancellation_reasons,
    conflict_backoff,
    describe,
)
from adserve.outcomes.recording import ImpressionIncrement

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class DynamoImpressionCounter(TransactionalWriter):
    def count_once(self, increment: ImpressionIncrement) -> bool:
        """True when counted now, False when the marker shows it was counted before.

        A cancellation by a concurrent transaction on the same items (TransactionConflict) is retried
        with jittered backoff; any other failure raises CounterStoreUnavailableError.
        """
        items = self._transaction(increment)
        for attempt in range(self._conflict_attempts):
            try:
                self._client.transact_write_items(TransactItems=items)
                return True
            except ClientError as error:
                reasons = cancellation_reasons(error)
                if reasons and reasons[0] == DUPLICATE:
                    return False
                if CONFLICT not in reasons:
                    raise CounterStoreUnavailableError(describe(error)) from error
            except BotoCoreError as error:
                raise CounterStoreUnavailableError(str(error)) from error
            self._sleep(conflict_backoff(attempt))
        raise CounterStoreUnavailableError(f"transaction conflicts persisted over {self._conflict_attempts} attempts")

    def _transaction(self, increment: ImpressionIncrement) -> "list[TransactWriteItemTypeDef]":
        listener = {"S": increment.listener}
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "listener_id": listener,
                        "counter_key": {"S": increment.marker_key},
                        "expires_at": {"N": str(int(increment.marker_expires_at.timestamp()))},
                    },
                    "ConditionExpression": "attribute_not_exists(counter_key)",
                }
            }
        ]
        # Sliding windows (session, lifetime) move their expiry forward with each impression; calendar
        # windows compute the same expiry for every impression of the window.
        items.extend(
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"listener_id": listener, "counter_key": {"S": slot.key}},
                    "UpdateExpression": "ADD impressions :one SET expires_at = :expires",
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":expires": {"N": str(int(slot.expires_at.timestamp()))},
                    },
                }
            }
            for slot in increment.counters
        )
        return items
