"""Exactly-once delivery counters, sharded so no DynamoDB item takes more than its write rate.

Record hands over the outcome events of one SQS batch that got past validation. They are grouped by
(campaign, UTC hour); each group becomes one DynamoDB transaction in the delivery table:

- one marker per event, ``seen#<decision>#<ad>#<event type>``, put only if absent (each in its own
  partition, so markers never contend), and
- one ``ADD`` of the group's totals to the shard's hour item and one to the shard's lifetime item.

A marker already present cancels the transaction; the store drops that event as a duplicate and retries the
rest, so a redelivered message or a replayed beacon is never counted twice, and a crash between "counted"
and "acknowledged" is harmless. The shard is chosen from the group's events, so concurrent batches of one
campaign spread over ``SHARDS`` partition keys; readers sum the shards (README.md#delivery has the sizing).
"""

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final, Protocol

from adserve.core.hours import utc_hour
from adserve.core.vocabulary import EventType

SHARDS: Final = 64
"""Counter shards per campaign: 5,000 single-event transactions/s stay under 32% of a partition's 1,000 WCU/s. At
most 100: a lifetime read is one BatchGetItem of a key per shard, which DynamoDB caps at 100 keys."""

MARKER_PREFIX: Final = "seen#"
MARKER_LIFETIME: Final = timedelta(days=14)
"""Longer than SQS keeps a message and than any tracking token lives: no duplicate can outlive its marker."""

MAX_EVENTS_PER_WRITE: Final = 25
"""Markers per transaction (plus the hour and lifetime items; DynamoDB allows 100 items). Smaller groups keep
each call short (a transaction's latency grows with its items) at 4 counter WCU per 25 events."""

HOUR_FORMAT: Final = "%Y-%m-%dT%H"

REQUEST_SHARDS: Final = 8
"""Shards of a placement's hourly request counter: one ADD per Record batch, far under a partition's rate."""

REQUEST_COUNT_LIFETIME: Final = timedelta(days=30)
"""Request counters feed the pacing step's traffic profile (the last 7 days); older ones expire."""


@dataclass(frozen=True)
class DeliveryTotals:
    """Counts of one campaign over some time; spend in integer micro-units of the campaign's currency."""

    impressions: int = 0
    clicks: int = 0
    completions: int = 0
    skips: int = 0
    spend_micros: int = 0

    def __add__(self, other: "DeliveryTotals") -> "DeliveryTotals":
        return DeliveryTotals(
            impressions=self.impressions + other.impressions,
            clicks=self.clicks + other.clicks,
            completions=self.completions + other.completions,
            skips=self.skips + other.skips,
            spend_micros=self.spend_micros + other.spend_micros,
        )

    @staticmethod
    def of(event_type: EventType, spend_micros: int = 0) -> "DeliveryTotals":
        """What one event adds; only an impression spends. Shared instances (they are frozen): Record asks per event."""
        if event_type is EventType.IMPRESSION:
            return _impression(spend_micros)
        return _NOT_SPENDING[event_type]


@lru_cache(maxsize=1024)
def _impression(spend_micros: int) -> DeliveryTotals:
    return DeliveryTotals(impressions=1, spend_micros=spend_micros)


_NOT_SPENDING: Final = {
    EventType.CLICK: DeliveryTotals(clicks=1),
    EventType.COMPLETE: DeliveryTotals(completions=1),
    EventType.SKIP: DeliveryTotals(skips=1),
}


@dataclass(slots=True)
class DeliveryEvent:
    """One outcome as delivery counts it: its identity (the marker) and what it adds to which hour.

    Never changed once built; not frozen only because Record builds one per outcome and a frozen dataclass's
    ``__init__`` costs ~3x a slotted one's (~0.5 us an event)."""

    marker_key: str
    campaign_id: str
    hour: datetime
    totals: DeliveryTotals


@dataclass(frozen=True)
class DeliveryGroup:
    """Events of one campaign and hour written in one transaction to one shard."""

    campaign_id: str
    hour: datetime
    shard: int
    events: tuple[DeliveryEvent, ...]
    marker_expires_at: datetime

    @property
    def totals(self) -> DeliveryTotals:
        """Summed field by field in one pass: one object per group, not one per event (Record sums every group
        it writes)."""
        impressions = clicks = completions = skips = spend_micros = 0
        for event in self.events:
            totals = event.totals
            impressions += totals.impressions
            clicks += totals.clicks
            completions += totals.completions
            skips += totals.skips
            spend_micros += totals.spend_micros
        return DeliveryTotals(impressions, clicks, completions, skips, spend_micros)

    def without(self, marker_keys: set[str]) -> "DeliveryGroup":
        """The group minus events found to be duplicates."""
        kept = tuple(event for event in self.events if event.marker_key not in marker_keys)
        return DeliveryGroup(self.campaign_id, self.hour, self.shard, kept, self.marker_expires_at)


@dataclass(frozen=True)
class GroupResult:
    counted: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()


RequestKey = tuple[str, datetime, int]
"""(placement, UTC hour, listener-local hour of day) of a decision: the traffic a campaign targeting hours of the
day can get is the decisions at those local hours (``adserve.delivery.pacing_step.profile_of``)."""


def local_hour_of(features: Mapping[str, str], utc_hour: datetime) -> int:
    """The listener-local hour a decision was targeted at (its logged ``hour_of_day``, what targeting read: the
    app's local hour, else the UTC one); the UTC hour for a record without a valid one."""
    logged = features.get("hour_of_day", "")
    return int(logged) if logged.isdigit() and int(logged) < 24 else utc_hour.hour


class DeliveryCounter(Protocol):
    def count_once(self, group: DeliveryGroup) -> GroupResult:
        """Count the group's events not counted before; raises DeliveryStoreUnavailableError."""
        ...

    def add_requests(self, counts: Mapping[RequestKey, int]) -> None:
        """Add decisions per (placement, UTC hour, listener-local hour), at least once; raises
        DeliveryStoreUnavailableError."""
        ...


class RequestReader(Protocol):
    def requests(
        self, placement: str, first_hour: datetime, last_hour: datetime
    ) -> dict[tuple[datetime, int | None], int]:
        """Decisions of one placement per (UTC hour in [first_hour, last_hour], listener-local hour of day), summed
        over the shards; decisions counted before the local hour was, under None (a local hour unknown)."""
        ...


class DeliveryReader(Protocol):
    def hourly(self, campaign_id: str, first_hour: datetime, last_hour: datetime) -> dict[datetime, DeliveryTotals]:
        """Totals per hour with any delivery in [first_hour, last_hour], summed over every shard."""
        ...

    def lifetime(self, campaign_id: str) -> DeliveryTotals:
        """Totals since the campaign began, summed over every shard."""
        ...


def marker_key(decision_id: str, ad_id: str, event_type: EventType) -> str:
    return f"{MARKER_PREFIX}{decision_id}#{ad_id}#{event_type}"  # a StrEnum formats as its value


def hour_of(moment: datetime) -> datetime:
    return utc_hour(moment)


def shard_of(key: str) -> int:
    """A stable shard in [0, SHARDS) from a key (not Python's salted hash: every process must agree)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SHARDS


def delivery_groups(events: Iterable[DeliveryEvent], marker_expires_at: datetime) -> list[DeliveryGroup]:
    """Events grouped by (campaign, hour) into transactions of at most MAX_EVENTS_PER_WRITE.

    A repeat of an identity within the batch is dropped here (a transaction may not touch one item twice).
    Each group's shard comes from its first marker, so batches spread over the shards.
    """
    seen: set[str] = set()
    by_key: dict[tuple[str, datetime], list[DeliveryEvent]] = {}
    for event in events:
        if event.marker_key in seen:
            continue
        seen.add(event.marker_key)
        by_key.setdefault((event.campaign_id, event.hour), []).append(event)
    groups: list[DeliveryGroup] = []
    for (campaign_id, hour), members in sorted(by_key.items()):
        for chunk in _chunks(members, MAX_EVENTS_PER_WRITE):
            groups.append(
                DeliveryGroup(campaign_id, hour, shard_of(chunk[0].marker_key), tuple(chunk), marker_expires_at)
            )
    return groups


def _chunks(items: list[DeliveryEvent], size: int) -> Iterator[list[DeliveryEvent]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class DeliveryTally:
    """What Record's delivery step did in one batch, for its metrics."""

    counted: int = 0
    duplicates: int = 0
    unknown_campaign: int = 0
    failed_markers: set[str] = field(default_factory=set)
