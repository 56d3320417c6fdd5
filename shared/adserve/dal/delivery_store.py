"""Delivery counters in the Delivery table: exactly-once transactional writes, shard-summing reads.

Items (``pk``, ``sk``):

- ``campaign#<id>#<shard>``, ``hour#<YYYY-MM-DDTHH>``: one shard's counts of one UTC hour;
- ``campaign#<id>#<shard>``, ``lifetime``: one shard's counts since the campaign began;
- ``seen#<decision>#<ad>#<event type>``, ``seen``: an event's marker, expiring after MARKER_LIFETIME;
- ``requests#<placement>#<shard>``, ``hour#<YYYY-MM-DDTHH>``: decisions of one placement in one UTC hour
  (the pacing step's traffic profile), expiring after REQUEST_COUNT_LIFETIME;
- ``deleted#<id>``, ``campaign``: a deleted campaign's last document, its currency and when it was deleted, kept
  as long as its lifetime counters, so its report can still be read (and a campaign created again under its id
  keeps its currency).
"""

import random
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from adserve.campaigns.model import Campaign
from adserve.core.errors import DeliveryStoreUnavailableError
from adserve.dal.campaign_store import CURRENCY_ATTRIBUTE, DOCUMENT_ATTRIBUTE, KEEPS_CURRENCY, currency_values
from adserve.dal.transactions import (
    CONFLICT,
    DUPLICATE,
    ForeignItem,
    TransactionalWriter,
    cancellation_reasons,
    conflict_backoff,
    describe,
)
from adserve.delivery.counting import (
    HOUR_FORMAT,
    REQUEST_COUNT_LIFETIME,
    REQUEST_SHARDS,
    SHARDS,
    DeliveryGroup,
    DeliveryTotals,
    GroupResult,
    RequestKey,
)
from adserve.delivery.report import DeletedCampaign, deleted_in_another_currency

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

TABLE = "delivery table"
"""This table in words, in errors."""
HOUR_PREFIX = "hour#"
LIFETIME_KEY = "lifetime"
MARKER_SORT_KEY = "seen"
DELETED_SORT_KEY = "campaign"
COUNTS = tuple(field.name for field in fields(DeliveryTotals))
"""A counter item's attributes: DeliveryTotals' fields, in their order."""


def counter_key(campaign_id: str, shard: int) -> str:
    return f"campaign#{campaign_id}#{shard:02d}"


def _deleted(item: "Mapping[str, Any]") -> DeletedCampaign | None:
    """A deleted campaign's item read back; None if this release cannot read it."""
    try:
        campaign = Campaign.model_validate_json(item[DOCUMENT_ATTRIBUTE]["S"])
        return DeletedCampaign(campaign, datetime.fromisoformat(item["deleted_at"]["S"]))
    except (KeyError, ValueError):  # a refused document is a ValidationError, a ValueError
        return None


def _deleted_currency(item: "Mapping[str, Any] | None") -> str | None:
    """The currency of a deleted campaign's item: its attribute, else its document's; None if neither reads."""
    if item is None:
        return None
    if CURRENCY_ATTRIBUTE in item:
        return str(item[CURRENCY_ATTRIBUTE]["S"])
    deleted = _deleted(item)
    return None if deleted is None else deleted.campaign.currency


def hour_key(hour: datetime) -> str:
    return f"{HOUR_PREFIX}{hour.strftime(HOUR_FORMAT)}"


def requests_key(placement: str, shard: int) -> str:
    return f"requests#{placement}#{shard}"


def deleted_key(campaign_id: str) -> dict[str, "AttributeValueTypeDef"]:
    return {"pk": {"S": f"deleted#{campaign_id}"}, "sk": {"S": DELETED_SORT_KEY}}


def _hour_of_key(sort_key: str) -> datetime:
    return datetime.strptime(sort_key.removeprefix(HOUR_PREFIX) + "+0000", HOUR_FORMAT + "%z")


class DynamoDeliveryStore(TransactionalWriter):
    DEFAULT_CONFLICT_ATTEMPTS = 8  # many writers share a shard: conflicts are likelier

    def count_once(self, group: DeliveryGroup) -> GroupResult:
        """Count the group's new events in one transaction; markers found present are dropped as duplicates.

        A duplicate cancels the transaction naming its marker: the rest is retried at once (at most once per
        event). A TransactionConflict (a concurrent writer on the same shard) is retried with jittered backoff.
        """
        duplicates: list[str] = []
        conflicts = 0
        while group.events:
            try:
                self._client.transact_write_items(TransactItems=self._transaction(group))
                return GroupResult(
                    counted=tuple(event.marker_key for event in group.events), duplicates=tuple(duplicates)
                )
            except ClientError as error:
                reasons = cancellation_reasons(error)
                found = {
                    event.marker_key
                    for event, reason in zip(group.events, reasons, strict=False)
                    if reason == DUPLICATE
                }
                if found:
                    duplicates.extend(event.marker_key for event in group.events if event.marker_key in found)
                    group = group.without(found)
                    continue
                if CONFLICT not in reasons:
                    raise DeliveryStoreUnavailableError(f"{TABLE}: {describe(error)}") from error
            except BotoCoreError as error:
                raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error
            conflicts += 1
            if conflicts >= self._conflict_attempts:
                raise DeliveryStoreUnavailableError(
                    f"transaction conflicts persisted over {self._conflict_attempts} attempts"
                )
            self._sleep(conflict_backoff(conflicts))
        return GroupResult(duplicates=tuple(duplicates))

    def hourly(self, campaign_id: str, first_hour: datetime, last_hour: datetime) -> dict[datetime, DeliveryTotals]:
        """One strongly consistent Query per shard over the hour range, summed per hour.

        Strongly consistent (twice the read units of an eventual read): the pacing step reads the lifetime first
        and these hours after it, and counts on them to hold every count of today the lifetime held
        (``adserve.delivery.pacing.today_since_checkpoint``); a replica behind the lifetime's would not, and the
        shortfall would last until the campaign's next exact read. Summed as integers per sort key and parsed
        once per hour at the end: a day's exact read is up to 1,536 items."""
        sums: dict[str, list[int]] = {}
        first, last = hour_key(first_hour), hour_key(last_hour)
        try:
            for shard in range(SHARDS):
                pages = self._client.query_pages(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                    ExpressionAttributeValues={
                        ":pk": {"S": counter_key(campaign_id, shard)},
                        ":first": {"S": first},
                        ":last": {"S": last},
                    },
                    ConsistentRead=True,
                )
                for page in pages:
                    for item in page["Items"]:
                        sort_key = item["sk"]["S"]
                        counts = sums.get(sort_key)
                        if counts is None:
                            counts = sums[sort_key] = [0] * len(COUNTS)
                        _add_counts(counts, item)
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error
        return {_hour_of_key(sort_key): DeliveryTotals(*counts) for sort_key, counts in sums.items()}

    def lifetime(self, campaign_id: str) -> DeliveryTotals:
        """The shards' lifetime items in one BatchGetItem (64 keys), summed."""
        keys: list[Mapping[str, AttributeValueTypeDef]] = [
            {"pk": {"S": counter_key(campaign_id, shard)}, "sk": {"S": LIFETIME_KEY}} for shard in range(SHARDS)
        ]
        counts = [0] * len(COUNTS)
        try:
            request: dict[str, Mapping[str, object]] = {self._table: {"Keys": keys}}
            while request:
                response = self._client.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
                for item in response.get("Responses", {}).get(self._table, []):
                    _add_counts(counts, item)
                request = dict(response.get("UnprocessedKeys", {}))
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error
        return DeliveryTotals(*counts)

    def keeping(self, deleted: DeletedCampaign) -> ForeignItem:
        """The Put of a deleted campaign's last document (replacing an earlier deletion's), for the campaign store's
        delete to make in its own transaction. Its currency is an attribute too, for ``keeps_currency_of``."""
        campaign = deleted.campaign
        item = deleted_key(campaign.campaign_id) | {
            DOCUMENT_ATTRIBUTE: {"S": campaign.model_dump_json()},
            CURRENCY_ATTRIBUTE: {"S": campaign.currency},
            "deleted_at": {"S": deleted.deleted_at.isoformat()},
        }
        return ForeignItem({"Put": {"TableName": self._table, "Item": item}}, TABLE, DeliveryStoreUnavailableError)

    def keeps_currency_of(self, campaign: Campaign) -> ForeignItem:
        """A check, for the campaign store's create, that no campaign deleted under the id was in another currency
        (one kept before the currency attribute is judged by its document, as the store judges its items)."""
        check = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": deleted_key(campaign.campaign_id),
                "ConditionExpression": KEEPS_CURRENCY,
                "ExpressionAttributeNames": {"#currency": CURRENCY_ATTRIBUTE, "#document": DOCUMENT_ATTRIBUTE},
                "ExpressionAttributeValues": currency_values(campaign.currency),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        return ForeignItem(
            check,
            TABLE,
            DeliveryStoreUnavailableError,
            refusal=lambda item: deleted_in_another_currency(campaign, _deleted_currency(item)),
        )

    def deleted_campaign(self, campaign_id: str) -> DeletedCampaign | None:
        """The document kept at the campaign's last deletion; None if none was kept or this release cannot read
        it (as the campaign store leaves out a document it refuses)."""
        try:
            item = self._client.get_item(TableName=self._table, Key=deleted_key(campaign_id)).get("Item")
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error
        return None if item is None else _deleted(item)

    def add_requests(self, counts: Mapping[RequestKey, int]) -> None:
        """One ADD per (placement, UTC hour) on a random shard, of the total and of each listener-local hour's count
        (``local_<HH>``; ADD reaches top-level attributes only). At least once, not exactly once: a redelivered
        batch counts its decisions again, which only blurs the traffic's shape (README.md#pacing)."""
        shard = random.randrange(REQUEST_SHARDS)
        by_hour: dict[tuple[str, datetime], dict[int, int]] = {}
        for (placement, hour, local), count in counts.items():
            locals_ = by_hour.setdefault((placement, hour), {})
            locals_[local] = locals_.get(local, 0) + count
        try:
            for (placement, hour), locals_ in sorted(by_hour.items()):
                expires = int((hour + REQUEST_COUNT_LIFETIME).timestamp())
                values = {f":{_local_attribute(local)}": {"N": str(count)} for local, count in locals_.items()}
                adds = ", ".join(f"{_local_attribute(local)} :{_local_attribute(local)}" for local in sorted(locals_))
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": requests_key(placement, shard)}, "sk": {"S": hour_key(hour)}},
                    UpdateExpression=f"ADD requests :count, {adds} SET expires_at = :expires",
                    ExpressionAttributeValues={
                        ":count": {"N": str(sum(locals_.values()))},
                        ":expires": {"N": str(expires)},
                        **values,
                    },
                )
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error

    def requests(
        self, placement: str, first_hour: datetime, last_hour: datetime
    ) -> dict[tuple[datetime, int | None], int]:
        """One Query per request shard over the hour range, summed per (hour, local hour): what an item's total
        holds beyond its local hours' counts (counted before they were) under None, a local hour unknown."""
        hours: dict[tuple[datetime, int | None], int] = {}
        try:
            for shard in range(REQUEST_SHARDS):
                pages = self._client.query_pages(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                    ExpressionAttributeValues={
                        ":pk": {"S": requests_key(placement, shard)},
                        ":first": {"S": hour_key(first_hour.astimezone(UTC))},
                        ":last": {"S": hour_key(last_hour.astimezone(UTC))},
                    },
                )
                for page in pages:
                    for item in page["Items"]:
                        hour = _hour_of_key(item["sk"]["S"])
                        unplaced = int(item["requests"]["N"])
                        for local in range(24):
                            counted = item.get(_local_attribute(local))
                            if counted is not None:
                                hours[hour, local] = hours.get((hour, local), 0) + int(counted["N"])
                                unplaced -= int(counted["N"])
                        if unplaced > 0:
                            hours[hour, None] = hours.get((hour, None), 0) + unplaced
        except (BotoCoreError, ClientError) as error:
            raise DeliveryStoreUnavailableError(f"{TABLE}: {error}") from error
        return hours

    def _transaction(self, group: DeliveryGroup) -> "list[TransactWriteItemTypeDef]":
        expires = {"N": str(int(group.marker_expires_at.timestamp()))}
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {"pk": {"S": event.marker_key}, "sk": {"S": MARKER_SORT_KEY}, "expires_at": expires},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for event in group.events
        ]
        totals = group.totals
        values = {f":{name}": {"N": str(getattr(totals, name))} for name in COUNTS}
        update = "ADD " + ", ".join(f"{name} :{name}" for name in COUNTS)
        shard = counter_key(group.campaign_id, group.shard)
        items.extend(
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"pk": {"S": shard}, "sk": {"S": sort_key}},
                    "UpdateExpression": update,
                    "ExpressionAttributeValues": values,
                }
            }
            for sort_key in (hour_key(group.hour), LIFETIME_KEY)
        )
        return items


def _local_attribute(local: int) -> str:
    """The attribute of a request item counting the decisions at listener-local hour *local*."""
    return f"local_{local:02d}"


def _add_counts(counts: list[int], item: "Mapping[str, AttributeValueTypeDef]") -> None:
    """Add a counter item's counts to *counts* (in COUNTS' order, DeliveryTotals' fields' own)."""
    for position, name in enumerate(COUNTS):
        value = item.get(name)
        if value is not None:
            counts[position] += int(value["N"])
