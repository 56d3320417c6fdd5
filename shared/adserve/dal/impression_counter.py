"""Exactly-once impression counting in the FrequencyCaps table: one transaction per impression.

The transaction puts the impression's dedupe marker only if it is absent and adds one to each counter
slot, so a redelivered impression cancels as a whole and concurrent impressions never lose an update.

The counters are in the listener's partition (its keyed pseudonym); the marker is not. It is an item of its
own, partition key ``seen#<decision>#<ad>#<event type>`` and sort key ``seen`` (``MARKER_SORT_KEY``), holding
nothing but its expiry: in the listener's partition it tied the pseudonym to a decision id, which the training
logs' decision rows also carry, so every decision row of a listener who refused measurement (rows without a
``listener_hash``) could be joined back to its pseudonym for the marker's lifetime. A transaction may span
partitions, so the marker still guards the counters atomically. A marker key cannot name a listener's
partition: pseudonyms are hex, and the raw ids of older partitions cannot hold ``#`` (``Identifier``).

Markers written before this layout stay in listener partitions until their TTL (``MARKER_LIFETIME``); Decide's
Query skips them by the counters' ``cap#`` key prefix, and erasure deletes them with the partition. An
impression counted before the upgrade and redelivered after it finds no marker in the new place and is counted
once more: an over-count only blocks the listener a little earlier, it never serves past a cap.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from adserve.campaigns.frequency_caps import CounterSlot
from adserve.core.errors import CounterStoreUnavailableError
from adserve.dal.transactions import (
    CONFLICT,
    DUPLICATE,
    TransactionalWriter,
    cancellation_reasons,
    cancelled_items,
    conflict_backoff,
    describe,
)
from adserve.outcomes.recording import ImpressionIncrement

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


MARKER_SORT_KEY: Final = "seen"
"""The sort key (``counter_key``) of every marker item, alone in its partition ``seen#<decision>#<ad>#<event type>``."""


class DynamoImpressionCounter(TransactionalWriter):
    def count_once(self, increment: ImpressionIncrement) -> bool:
        """True when counted now, False when the marker shows it was counted before.

        A counter past its expiry is still stored until TTL deletes it (days later), and Decide already reads it
        as absent: adding to it would bring its old count back, and a lifetime or reused-session cap would block
        a listener it had just let through. So each counter is added to only while it has not expired, and one
        found expired (its condition cancels the transaction) is written afresh at 1, only while it still is.
        A sliding window's expiry only moves forward: an impression counted after one received later (a batch
        redelivered, or redriven from the dead-letter queue) adds to the counter and keeps its later expiry. The
        cancelled transaction returns each failed counter as stored, which says which write it needs.
        A cancellation by a concurrent transaction on the same items (TransactionConflict) is retried with
        jittered backoff; any other failure raises CounterStoreUnavailableError.
        """
        modes: dict[int, _Mode] = {}  # by counter, what a cancellation showed it to be; else _FORWARD
        for attempt in range(self._conflict_attempts):
            try:
                self._client.transact_write_items(TransactItems=self._transaction(increment, modes))
                return True
            except ClientError as error:
                reasons = cancellation_reasons(error)
                if reasons and reasons[0] == DUPLICATE:
                    return False
                # A counter's condition failed: it had expired, an impression received later had slid its expiry
                # further, or it changed again since: each is written as it was found
                stored = cancelled_items(error)
                changed = {index - 1 for index, reason in enumerate(reasons) if index and reason == DUPLICATE}
                for index in changed:
                    modes[index] = _mode_of(stored[index + 1], increment.counters[index], increment.counted_at)
                if changed:
                    continue
                if CONFLICT not in reasons:
                    raise CounterStoreUnavailableError(describe(error)) from error
            except BotoCoreError as error:
                raise CounterStoreUnavailableError(str(error)) from error
            self._sleep(conflict_backoff(attempt))
        raise CounterStoreUnavailableError(f"transaction conflicts persisted over {self._conflict_attempts} attempts")

    def _transaction(
        self, increment: ImpressionIncrement, modes: Mapping[int, "_Mode"]
    ) -> "list[TransactWriteItemTypeDef]":
        listener: AttributeValueTypeDef = {"S": increment.listener}
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    # Its own partition: nothing about the listener (see the module docstring)
                    "Item": {
                        "listener_id": {"S": increment.marker_key},
                        "counter_key": {"S": MARKER_SORT_KEY},
                        "expires_at": {"N": str(int(increment.marker_expires_at.timestamp()))},
                    },
                    "ConditionExpression": "attribute_not_exists(counter_key)",
                }
            }
        ]
        # Sliding windows (session, lifetime) move their expiry forward with each impression; calendar
        # windows compute the same expiry for every impression of the window.
        counted_at: AttributeValueTypeDef = {"N": str(int(increment.counted_at.timestamp()))}
        items.extend(
            self._counter_update(listener, slot, modes.get(index, _FORWARD), counted_at)
            for index, slot in enumerate(increment.counters)
        )
        return items

    def _counter_update(
        self, listener: "AttributeValueTypeDef", slot: CounterSlot, mode: "_Mode", counted_at: "AttributeValueTypeDef"
    ) -> "TransactWriteItemTypeDef":
        values: dict[str, AttributeValueTypeDef] = {
            ":one": {"N": "1"},
            ":expires": {"N": str(int(slot.expires_at.timestamp()))},
            ":counted_at": counted_at,
        }
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"listener_id": listener, "counter_key": {"S": slot.key}},
                "UpdateExpression": mode.update,
                "ConditionExpression": mode.condition,
                "ExpressionAttributeValues": {name: values[name] for name in mode.values},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }


@dataclass(frozen=True)
class _Mode:
    """How one counter is written: its update, under the condition that the counter is still as it was found."""

    update: str
    condition: str
    values: tuple[str, ...] = field(init=False)
    """The expression values the two name, found once: DynamoDB refuses a value no expression names."""

    def __post_init__(self) -> None:
        named = tuple(name for name in (":one", ":expires", ":counted_at") if name in self.update + self.condition)
        object.__setattr__(self, "values", named)


_FORWARD: Final = _Mode(
    "ADD impressions :one SET expires_at = :expires",
    "attribute_not_exists(expires_at) OR (expires_at > :counted_at AND expires_at <= :expires)",
)
"""A counter live (or absent) at the impression's moment, expiring no later than this impression makes it: one more,
and the expiry moved to this impression's."""
_KEEP: Final = _Mode("ADD impressions :one", "expires_at > :expires")
"""A live counter a sliding window's impression received later (counted first, by another Record) already made expire
after this one would: one more, its expiry kept. Written back, this impression's would end the window early."""
_RESTART: Final = _Mode("SET impressions = :one, expires_at = :expires", "expires_at <= :counted_at")
"""A counter that had expired by the impression's moment, as Decide reads it: it starts again at this impression."""


def _mode_of(stored: Mapping[str, Any] | None, slot: CounterSlot, counted_at: datetime) -> _Mode:
    """The write a counter needs, as its failed condition found it stored: expired by the impression's moment, then
    restarted; expiring after this impression would make it, then kept; else (gone meanwhile) moved forward."""
    expires = None if stored is None else stored.get("expires_at", {}).get("N")
    if expires is None:
        return _FORWARD
    if float(expires) <= int(counted_at.timestamp()):
        return _RESTART
    return _KEEP if float(expires) > int(slot.expires_at.timestamp()) else _FORWARD
