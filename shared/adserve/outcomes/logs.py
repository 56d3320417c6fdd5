"""Training logs in S3: where rows go, how they are encoded, and how a time range is read back.

Layout: ``logs/decisions/dt=YYYY-MM-DD/hour=HH/<object>.jsonl.gz`` and ``logs/outcomes/...``, partitioned by
the row's own time (``decided_at`` / ``occurred_at``, UTC). Record writes one gzip JSON Lines object per
(SQS batch, kind, partition); its name is a hash of the sorted SQS message ids of its rows followed by how many
rows it holds (``<hash>-<rows>rows.jsonl.gz``), and its bytes are deterministic, so a batch redelivered whole
overwrites its own objects instead of adding copies. The row count in the name lets a reader bound how many rows
a range holds by listing alone (``count_rows_at_most``: Retrain's schedule asks before it reads a window).

Duplicates are removed by the reader, not the writer. A batch redelivered with a different composition
(some records failed, SQS regrouped them) writes objects with new names, and a beacon fired twice is two
messages; so a row may exist physically more than once. Every reader (the ``adserve logs`` replay tool and
the trainer) drops copies by the row's identity: ``decision_id`` for decisions, ``(decision_id, ad_id,
event_type)`` for outcomes. Writers stay simple and never lose a row; the cost is a dedupe set in readers.

Outcome rows carry nothing about the listener: they join their decision by (decision_id, ad_id), and a decision
row carries the listener's keyed pseudonym (``listener_hash``) only when it consented to measurement.

Erased listeners (adserve.privacy.erasure) are dropped by the readers too: given the erasure ledger's
pseudonyms (``erased``), a decision row whose ``listener_hash`` is among them is skipped and counted in
``ReadStats.dropped_erased``, and its outcomes join nothing.

Compact decision rows (schema 2) are returned with their ad features joined back from their catalog snapshot
(adserve.outcomes.catalog_snapshots), read once per version per call: past the reader every decision is the
schema-1 record of the same decision. A row whose snapshot does not hold its ads, or does not hash to its
name, is skipped and counted in ``ReadStats.unresolved_catalog``.

Reading streams: partitions hour by hour, one object (at most one SQS batch of rows) in memory at a time.
Dedupe remembers identities for ``dedupe_horizon`` behind the partition being read, and the join keeps
decisions open for ``attribution_window``; memory is bounded by those windows, not by the range read.
"""

import gzip
import hashlib
import io
import json
import re
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from adserve.core.hours import HOUR, utc_hour
from adserve.core.vocabulary import EventType
from adserve.outcomes.catalog_snapshots import UNREADABLE_GZIP, CatalogSnapshots, CorruptSnapshotError
from adserve.outcomes.decision_records import DecisionRecord, UnresolvedRecordError
from adserve.outcomes.events import MAX_CLOCK_SKEW, MAX_EVENT_AGE, OutcomeEvent
from adserve.privacy.consent import ServingMode

LOG_ROOT: Final = "logs"
OBJECT_SUFFIX: Final = ".jsonl.gz"
_ROWS_IN_NAME: Final = re.compile(r"-(\d+)rows\.jsonl\.gz$")
DECISION_DEDUPE_HORIZON: Final = timedelta(hours=48)
"""Copies of a decision row are filed in one hour, its ``decided_at``'s: this is a margin."""
OUTCOME_DEDUPE_HORIZON: Final = MAX_EVENT_AGE + MAX_CLOCK_SKEW + HOUR
"""How far apart the hours copies of an outcome are filed in may be: at the times it was reported (a beacon fired
again a day later), all within its token's life and the clock skew Track allows, plus an hour, as partitions are
whole hours (copies 7 days 4 minutes apart may lie 7 days and an hour apart in partitions). The reader holds
about 100 bytes per outcome read within it."""
DEFAULT_ATTRIBUTION_WINDOW: Final = timedelta(hours=24)
"""Outcomes later than this after their decision are not joined (the default tracking-token lifetime)."""


class LogKind(StrEnum):
    DECISIONS = "decisions"
    OUTCOMES = "outcomes"


@dataclass(frozen=True, order=True)
class Partition:
    kind: LogKind
    hour: datetime
    """The partition's hour: UTC, minutes and below zero."""

    @classmethod
    def of(cls, kind: LogKind, moment: datetime) -> "Partition":
        return _partition(kind, truncate_to_hour(moment))

    @property
    def prefix(self) -> str:
        return f"{LOG_ROOT}/{self.kind.value}/dt={self.hour:%Y-%m-%d}/hour={self.hour:%H}/"

    def object_key(self, message_ids: Sequence[str]) -> str:
        """Deterministic in the set of SQS messages whose rows (one each) the object holds; names their count."""
        digest = hashlib.sha256("\n".join(sorted(message_ids)).encode()).hexdigest()[:32]
        return f"{self.prefix}{digest}-{len(message_ids)}rows{OBJECT_SUFFIX}"


@lru_cache(maxsize=256)
def _partition(kind: LogKind, hour: datetime) -> Partition:
    """Shared instances (they are frozen): Record asks for one per row."""
    return Partition(kind, hour)


def truncate_to_hour(moment: datetime) -> datetime:
    return utc_hour(moment)


def hours(start: datetime, end: datetime) -> Iterator[datetime]:
    """Every hour from start's to end's, both included."""
    hour, last = truncate_to_hour(start), truncate_to_hour(end)
    while hour <= last:
        yield hour
        hour += timedelta(hours=1)


class LoggedOutcome(BaseModel):
    """An outcome event as logged: without its listener pseudonym and session (the decision row has what may be
    kept); rows written before pseudonyms had a ``listener_hash``, which reading ignores."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["outcome"] = "outcome"
    event_id: str
    event_type: EventType
    decision_id: str
    ad_id: str
    campaign_id: str
    advertiser_id: str
    occurred_at: AwareDatetime
    received_at: AwareDatetime

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.decision_id, self.ad_id, self.event_type.value)


NOT_LOGGED: Final[set[str]] = {"listener", "session"}
"""An outcome event's fields its log row leaves out: the event without them is its ``LoggedOutcome``'s JSON (the
fields in the same order), serialized straight from the event instead of through a copy."""


class LogRow(NamedTuple):
    """A named tuple, not a frozen dataclass: Record builds one per message, and a frozen dataclass's ``__init__``
    costs about twice a named tuple's."""

    partition: Partition
    line: str


_DECISION_JSON: Final = DecisionRecord.__pydantic_serializer__.to_json
_OUTCOME_JSON: Final = OutcomeEvent.__pydantic_serializer__.to_json


def log_row(message: DecisionRecord | OutcomeEvent) -> LogRow:
    """The partition and JSON line a queue message is logged as.

    ``model_dump_json``'s bytes, from the models' serializers directly: its wrapper cost Record ~0.8 us a row.
    """
    if isinstance(message, DecisionRecord):
        return LogRow(Partition.of(LogKind.DECISIONS, message.decided_at), _DECISION_JSON(message).decode())
    return LogRow(
        Partition.of(LogKind.OUTCOMES, message.occurred_at), _OUTCOME_JSON(message, exclude=NOT_LOGGED).decode()
    )


_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
"""What ``gzip.GzipFile(mtime=0)`` writes first at level 9: magic, deflate, no flags, mtime 0, best compression,
unknown OS."""


def encode_object(lines: Iterable[str]) -> bytes:
    """gzip JSON Lines with a zero mtime, so the same rows always give the same bytes.

    The bytes ``gzip.GzipFile(mtime=0)`` writes (header, level-9 raw deflate, CRC-32 and size), built in one
    call each instead of through a file object, which cost Record ~80 us an object.
    """
    data = "\n".join([*lines, ""]).encode()
    trailer = struct.pack("<LL", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return _GZIP_HEADER + zlib.compress(data, 9, -zlib.MAX_WBITS) + trailer


def decode_object(body: bytes) -> Iterator[str]:
    """The non-empty lines of a gzip JSON Lines object; raises OSError/EOFError when it is not gzip.

    An object of no bytes is not gzip either (Record writes at least a header, ``encode_object``), yet gzip reads it
    as no member at all: it is refused here, so the readers count it unreadable instead of read.
    """
    if not body:
        raise EOFError("an object of 0 bytes is not gzip")
    with gzip.GzipFile(fileobj=io.BytesIO(body), mode="rb") as decompressed:
        for raw in decompressed:
            line = raw.strip()
            if line:
                yield line.decode("utf-8", errors="replace")


class LogReader(Protocol):
    def list_keys(self, prefix: str) -> Iterable[str]: ...

    def read_object(self, key: str) -> bytes: ...


@dataclass
class ReadStats:
    rows: int = 0
    duplicates_dropped: int = 0
    malformed_lines: int = 0
    unreadable_objects: int = 0
    objects: int = 0
    late_outcomes: int = 0
    """Outcomes read (in a partition of the join) that occurred more than the attribution window after
    their decision: not joined. Outcomes in later partitions are never read, so never counted."""
    reported_late_outcomes: int = 0
    """Outcome rows read that occurred within the window but reached Track after it (an app offline, a retried
    batch): not joined, as a run at the window's end could not have read them. Each copy read counts (a beacon
    fired again a day later, its first copy joined). Many of them: widen the window."""
    dropped_erased: int = 0
    """Decision rows of erased listeners (their ``listener_hash`` is in the ledger): read, not returned."""
    unresolved_catalog: int = 0
    """Compact decision rows whose catalog snapshot is corrupt or lacks one of their ads: not returned."""


class _SeenIdentities:
    """Identities seen in the last `horizon` of partitions, as 16-byte digests, oldest hours evicted: one set to
    look a digest up in, and each hour's digests to evict it by."""

    def __init__(self, horizon: timedelta) -> None:
        self._horizon = horizon
        self._seen: set[bytes] = set()
        self._by_hour: OrderedDict[datetime, list[bytes]] = OrderedDict()

    def first_time(self, hour: datetime, identity: tuple[str, ...]) -> bool:
        """False for a copy of an identity seen in *hour* or the horizon before it (hours come in order)."""
        while self._by_hour and next(iter(self._by_hour)) < hour - self._horizon:
            _, evicted = self._by_hour.popitem(last=False)
            self._seen.difference_update(evicted)
        digest = hashlib.blake2b("\x1f".join(identity).encode(), digest_size=16).digest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        self._by_hour.setdefault(hour, []).append(digest)
        return True


def _lines(store: LogReader, partition: Partition, stats: ReadStats) -> Iterator[str]:
    for key in sorted(store.list_keys(partition.prefix)):
        if not key.endswith(OBJECT_SUFFIX):
            continue
        stats.objects += 1
        try:
            lines = list(decode_object(store.read_object(key)))
        except UNREADABLE_GZIP:
            stats.unreadable_objects += 1
            continue
        yield from lines


def count_rows_at_most(store: LogReader, kind: LogKind, start: datetime, end: datetime) -> int:
    """At most how many rows of one kind the hours [start, end] hold, from the objects' names (one LIST per hour).

    Objects named before names carried their count are read and their lines counted. An upper bound of what a
    reader returns: copies of a row, malformed lines and erased listeners' rows are counted, and whole hours are.
    """
    total = 0
    for hour in hours(start, end):
        for key in store.list_keys(Partition(kind, hour).prefix):
            if not key.endswith(OBJECT_SUFFIX):
                continue
            named = _ROWS_IN_NAME.search(key)
            if named is not None:
                total += int(named.group(1))
                continue
            try:
                total += sum(1 for _ in decode_object(store.read_object(key)))
            except UNREADABLE_GZIP:
                continue
    return total


_Row = TypeVar("_Row")


def read_decisions(
    store: LogReader,
    start: datetime,
    end: datetime,
    stats: ReadStats | None = None,
    dedupe_horizon: timedelta = DECISION_DEDUPE_HORIZON,
    *,
    erased: Set[str] = frozenset(),
) -> Iterator[DecisionRecord]:
    """Each logged decision of the hours [start, end] once, hour by hour, but those of `erased` listeners;
    compact rows with their features joined back (schema 1)."""
    stats = stats if stats is not None else ReadStats()
    records = _read_once(
        store,
        LogKind.DECISIONS,
        parse=DecisionRecord.model_validate_json,
        identity=_decision_identity,
        start=start,
        end=end,
        stats=stats,
        dedupe_horizon=dedupe_horizon,
    )
    kept = _without_erased(records, erased, stats) if erased else records
    return _with_features(kept, CatalogSnapshots(store.read_object), stats)


def _with_features(
    records: Iterator[DecisionRecord], snapshots: CatalogSnapshots, stats: ReadStats
) -> Iterator[DecisionRecord]:
    for record in records:
        if record.catalog_version is None:
            yield record
            continue
        try:
            yield record.with_features(snapshots.ads(record.catalog_version))
        except (CorruptSnapshotError, UnresolvedRecordError):
            stats.unresolved_catalog += 1


def _without_erased(records: Iterator[DecisionRecord], erased: Set[str], stats: ReadStats) -> Iterator[DecisionRecord]:
    for record in records:
        if record.listener_hash is not None and record.listener_hash in erased:
            stats.dropped_erased += 1
        else:
            yield record


def read_outcomes(
    store: LogReader,
    start: datetime,
    end: datetime,
    stats: ReadStats | None = None,
    dedupe_horizon: timedelta = OUTCOME_DEDUPE_HORIZON,
) -> Iterator[LoggedOutcome]:
    """Each logged outcome of the hours [start, end] once, by (decision_id, ad_id, event_type)."""
    return _read_once(
        store,
        LogKind.OUTCOMES,
        parse=LoggedOutcome.model_validate_json,
        identity=_outcome_identity,
        start=start,
        end=end,
        stats=stats,
        dedupe_horizon=dedupe_horizon,
    )


def _decision_identity(record: DecisionRecord) -> tuple[str, ...]:
    return (record.decision_id,)


def _outcome_identity(outcome: LoggedOutcome) -> tuple[str, ...]:
    return outcome.identity


def _read_once(
    store: LogReader,
    kind: LogKind,
    *,
    parse: Callable[[str], _Row],
    identity: Callable[[_Row], tuple[str, ...]],
    start: datetime,
    end: datetime,
    stats: ReadStats | None,
    dedupe_horizon: timedelta,
) -> Iterator[_Row]:
    """The rows of one kind, hour by hour; malformed lines counted and skipped, copies of a row dropped."""
    stats = stats if stats is not None else ReadStats()
    seen = _SeenIdentities(dedupe_horizon)
    for hour in hours(start, end):
        for line in _lines(store, Partition(kind, hour), stats):
            try:
                row = parse(line)
            except ValidationError:
                stats.malformed_lines += 1
                continue
            if seen.first_time(hour, identity(row)):
                stats.rows += 1
                yield row
            else:
                stats.duplicates_dropped += 1


class JoinedAd(BaseModel):
    """One chosen ad of a decision with what happened to it: the trainer's example (DSJSON-like)."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    decided_at: datetime
    model_version: str
    placement: str
    mode: ServingMode = ServingMode.PERSONALISED
    listener_hash: str | None
    listener_features: dict[str, str]
    ad_id: str
    campaign_id: str
    advertiser_id: str
    ad_features: dict[str, str]
    value_cpm: float
    rank: int
    score: float
    propensity: float
    exposure: int | None = None
    """How often the listener had heard the campaign (the decision record's ``exposure``); None: not counted."""
    impression: bool = False
    click: bool = False
    complete: bool = False
    skip: bool = False


Kept = TypeVar("Kept")


@dataclass
class JoinedDecision(Generic[Kept]):
    """A logged decision with the outcome types each of its ads received within the attribution window.

    `kept` is what the reader chose to hold of the record while its window is open (the record itself, or a
    compact form of it: a reader holds one window of decisions, which at scale is most of its memory).
    """

    kept: Kept
    decided_at: datetime
    hour: datetime
    events: dict[str, set[EventType]] = field(default_factory=dict)


def _whole(record: DecisionRecord) -> DecisionRecord:
    return record


def read_joined(
    store: LogReader,
    start: datetime,
    end: datetime,
    stats: ReadStats | None = None,
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    *,
    erased: Set[str] = frozenset(),
) -> Iterator[JoinedAd]:
    """Each chosen ad of the decisions of [start, end] with the outcomes that followed within the window."""
    for joined in read_joined_decisions(store, start, end, stats, attribution_window, keep=_whole, erased=erased):
        yield from _joined(joined)


EARLY_OUTCOMES: Final = timedelta(hours=1)
"""How far before its decision's hour an outcome may be filed and still join it. An event's ``occurred_at`` is
the app's clock; Track moves one earlier than its decision up to it (``tracking._occurred_at``), but events of
decisions whose ids did not say when (version 4, before version-7 ids), and logs written before, may lie
seconds to minutes earlier, and one filed in the hour before its decision's was read before that decision was
open, and lost."""


def read_joined_decisions(
    store: LogReader,
    start: datetime,
    end: datetime,
    stats: ReadStats | None = None,
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    *,
    keep: Callable[[DecisionRecord], Kept],
    erased: Set[str] = frozenset(),
) -> Iterator[JoinedDecision[Kept]]:
    """Each decision of the hours [start, end] with the outcomes that occurred within the window after it.

    Outcomes are read from ``EARLY_OUTCOMES`` before `start` up to `attribution_window` past `end`, and a
    decision is open from ``EARLY_OUTCOMES`` before its hour. It is emitted once every outcome partition it can
    be joined with has been read, so only the decisions of one window are held open.
    An outcome later than the window (by its `occurred_at`) is not joined and counts in `late_outcomes`; one
    received later than the window (by Track's `received_at`) neither, and counts in `reported_late_outcomes`: it
    was not in the logs when a run at the window's end read them, so a decision's outcomes are the same whenever
    it is read after its window (a label that depended on the run's time would teach that recent ads are clicked
    less). What reaches S3 later than Track took it is the margin this leaves: a queue backlog (outcomes reported
    in the window's last minutes), and records redriven from the dead-letter queue, which keep the time Track took
    them.
    The decisions of `erased` listeners are dropped (``ReadStats.dropped_erased``); their outcomes join nothing.
    Duplicate outcome rows set a flag that is already set, so the join needs no outcome dedupe set.
    """
    stats = stats if stats is not None else ReadStats()
    open_decisions: OrderedDict[str, JoinedDecision[Kept]] = OrderedDict()
    decisions = read_decisions(store, start, end, stats, dedupe_horizon=attribution_window, erased=erased)
    pending = next(decisions, None)
    # up to the window past the last moment of end's hour: every decision of that hour is emitted, its later ones too
    last_decided = truncate_to_hour(end) + HOUR - timedelta(microseconds=1)
    for hour in hours(start - EARLY_OUTCOMES, last_decided + attribution_window):
        while pending is not None and truncate_to_hour(pending.decided_at) <= hour + EARLY_OUTCOMES:
            open_decisions[pending.decision_id] = JoinedDecision(
                keep(pending), pending.decided_at, truncate_to_hour(pending.decided_at)
            )
            pending = next(decisions, None)
        for line in _lines(store, Partition(LogKind.OUTCOMES, hour), stats):
            try:
                outcome = LoggedOutcome.model_validate_json(line)
            except ValidationError:
                stats.malformed_lines += 1
                continue
            opened = open_decisions.get(outcome.decision_id)
            if opened is None:
                continue
            if outcome.occurred_at - opened.decided_at > attribution_window:
                stats.late_outcomes += 1
                continue
            if outcome.received_at - opened.decided_at > attribution_window:
                stats.reported_late_outcomes += 1
                continue
            opened.events.setdefault(outcome.ad_id, set()).add(outcome.event_type)
        while open_decisions and next(iter(open_decisions.values())).hour + attribution_window <= hour:
            _, closed = open_decisions.popitem(last=False)
            yield closed
    # Every outcome partition up to end + the window has been read, so whatever is still open is complete
    # (with a window under an hour, end + window can share end's hour and close nothing above).
    while open_decisions:
        _, closed = open_decisions.popitem(last=False)
        yield closed


def _joined(opened: JoinedDecision[DecisionRecord]) -> Iterator[JoinedAd]:
    """The chosen ads of a served decision; an explain request's ads were never shown, so none of them."""
    record = opened.kept
    if record.explain:
        return
    candidates = {candidate.ad_id: candidate for candidate in record.inline_candidates}
    for choice in sorted(record.chosen, key=lambda chosen: chosen.rank):
        candidate = candidates.get(choice.ad_id)
        events = opened.events.get(choice.ad_id, set())
        yield JoinedAd(
            decision_id=record.decision_id,
            decided_at=record.decided_at,
            model_version=record.model_version,
            placement=record.placement,
            mode=record.mode,
            listener_hash=record.listener_hash,
            listener_features=record.listener_features,
            ad_id=choice.ad_id,
            campaign_id=candidate.campaign_id if candidate else "",
            advertiser_id=candidate.advertiser_id if candidate else "",
            ad_features=candidate.features if candidate else {},
            value_cpm=candidate.value_cpm if candidate else 0.0,
            rank=choice.rank,
            score=choice.score,
            propensity=choice.propensity,
            exposure=candidate.exposure if candidate else None,
            impression=EventType.IMPRESSION in events,
            click=EventType.CLICK in events,
            complete=EventType.COMPLETE in events,
            skip=EventType.SKIP in events,
        )


def json_line(row: BaseModel) -> str:
    """A row as one compact JSON line (what the replay tool prints)."""
    return json.dumps(row.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
