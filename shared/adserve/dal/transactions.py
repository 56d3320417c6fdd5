"""What a cancelled DynamoDB transaction says, read the same way by every transactional writer."""

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from adserve.dal.json_clients import DynamoDBJsonClient

CONFLICT = "TransactionConflict"
DUPLICATE = "ConditionalCheckFailed"
NO_REASON = "None"
"""The reason of an item that did not cause a cancellation."""


@dataclass(frozen=True)
class ForeignItem:
    """An item of another table that a store's transaction carries (a write, or a check it holds to), and what its
    failures mean: the store knows which item failed, not what the item is."""

    item: Any
    """A TransactWriteItems item (``TransactWriteItemTypeDef``); a check's with
    ``ReturnValuesOnConditionCheckFailure: ALL_OLD``."""
    table: str
    """The other table, in words, for an error that could be either table's."""
    unavailable: Callable[[str], Exception]
    """Its failure other than its condition's (its table throttled, say), from DynamoDB's reason code."""
    refusal: Callable[[Mapping[str, Any] | None], Exception] | None = None
    """Its condition's failure, handed the item as it was then (None if DynamoDB returned none)."""


def cancellation_reasons(error: ClientError) -> list[str]:
    """One code per item of a cancelled transaction ("None" for items that did not cause it); [] otherwise."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    reasons = error.response.get("CancellationReasons", [])
    return [str(reason.get("Code", NO_REASON)) for reason in reasons]


def cancelled_items(error: ClientError) -> list[dict[str, Any] | None]:
    """Per item of a cancelled transaction, the item as stored when its condition failed (asked for with
    ``ReturnValuesOnConditionCheckFailure: ALL_OLD``); None where DynamoDB returned none."""
    reasons: list[Mapping[str, Any]] = list(error.response.get("CancellationReasons", []))
    return [dict(item) if isinstance(item := reason.get("Item"), Mapping) else None for reason in reasons]


def describe(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}"


def conflict_backoff(attempt: int) -> float:
    """Full jitter: concurrent writers on the same items spread out instead of colliding again."""
    return random.uniform(0, 0.025 * 2**attempt)


class TransactionalWriter:
    """A writer of TransactWriteItems on one table, retrying TransactionConflicts up to a bound."""

    DEFAULT_CONFLICT_ATTEMPTS = 5

    def __init__(
        self,
        client: DynamoDBJsonClient,
        table_name: str,
        *,
        conflict_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._conflict_attempts = conflict_attempts or self.DEFAULT_CONFLICT_ATTEMPTS
        self._sleep = sleep
