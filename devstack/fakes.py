"""In-memory stand-ins for adserve's outbound ports, for unit tests and for benchmarks of our own code.

They implement the same Protocols as the DynamoDB and SQS adapters, so swapping them in needs no patching.
"""

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from adserve.campaigns.model import Campaign
from adserve.core.errors import (
    CapStoreUnavailableError,
    CounterStoreUnavailableError,
    DecisionLogUnavailableError,
    DeliveryStoreUnavailableError,
    InvalidModelPointerError,
    LogObjectMissingError,
    LogStoreUnavailableError,
    ModelNotFoundError,
    ModelStoreUnavailableError,
    OutcomeQueueUnavailableError,
    PointerChangedError,
)
from adserve.delivery.counting import DeliveryGroup, DeliveryTotals, GroupResult
from adserve.delivery.pacing import PacingState
from adserve.models.registry import UNREADABLE_POINTER, ActivePointer, StoredPointer
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.recording import ImpressionIncrement
from pydantic import ValidationError


@dataclass
class InMemoryCampaigns:
    campaigns: list[Campaign] = field(default_factory=list)

    def list_campaigns(self) -> list[Campaign]:
        return list(self.campaigns)


@dataclass
class InMemoryCounters:
    """Counters per listener; `available=False` behaves like an unreachable or throttling table."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    available: bool = True
    reads: int = 0

    def read_counters(self, listener: str, now: datetime) -> dict[str, int]:  # noqa: ARG002 (the port's signature)
        self.reads += 1
        if not self.available:
            raise CapStoreUnavailableError("table unreachable")
        return dict(self.counts.get(listener, {}))


@dataclass
class RecordingDecisionLog:
    records: list[DecisionRecord] = field(default_factory=list)
    fail: bool = False

    def publish(self, record: DecisionRecord) -> None:
        if self.fail:
            raise DecisionLogUnavailableError("queue unreachable")
        self.records.append(record)


@dataclass
class ConstantScorer:
    """Scores every ad the same, so the policy's choice rests on value alone."""

    score: float = 0.05
    version: str = "constant"

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.full(len(indices), self.score, dtype=np.float32)


@dataclass
class InMemoryOutcomeQueue:
    """The outcomes queue; `available=False` fails every call, `failing_ids` fails only those entries."""

    events: list[OutcomeEvent] = field(default_factory=list)
    available: bool = True
    failing_ids: set[str] = field(default_factory=set)
    batch_calls: list[int] = field(default_factory=list)

    def publish(self, event: OutcomeEvent) -> None:
        if not self.available:
            raise OutcomeQueueUnavailableError("queue unreachable")
        self.events.append(event)

    def publish_batch(self, events: Sequence[OutcomeEvent], in_time: Callable[[], bool] = lambda: True) -> list[str]:
        failed: list[str] = []
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            if not in_time():
                failed.extend(event.event_id for event in chunk)
                continue
            self.batch_calls.append(len(chunk))
            for event in chunk:
                if not self.available or event.event_id in self.failing_ids:
                    failed.append(event.event_id)
                else:
                    self.events.append(event)
        return failed


@dataclass
class InMemoryImpressionCounter:
    """Counters per listener and markers by their own key, like the FrequencyCaps table (a marker names no
    listener); also a Decide counter reader.

    `available=False` fails every write like an unreachable table; `failing_listeners` fails only theirs.
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)
    available: bool = True
    failing_listeners: set[str] = field(default_factory=set)
    writes: int = 0

    def count_once(self, increment: ImpressionIncrement) -> bool:
        self.writes += 1
        if not self.available or increment.listener in self.failing_listeners:
            raise CounterStoreUnavailableError("table unreachable")
        if increment.marker_key in self.markers:
            return False
        self.markers.add(increment.marker_key)
        counters = self.counts.setdefault(increment.listener, {})
        for slot in increment.counters:
            counters[slot.key] = counters.get(slot.key, 0) + 1
        return True

    def read_counters(self, listener: str, now: datetime) -> dict[str, int]:  # noqa: ARG002 (the port's signature)
        return dict(self.counts.get(listener, {}))


@dataclass
class InMemoryDeliveryCounter:
    """Delivery markers and per-(campaign, hour) totals, like the Delivery table with its shards summed.

    `available=False` fails every write like an unreachable table.
    """

    hours: dict[tuple[str, datetime], DeliveryTotals] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)
    request_counts: dict[tuple[str, datetime, int | None], int] = field(default_factory=dict)
    """Decisions per (placement, UTC hour, listener-local hour; None: counted before local hours were)."""
    available: bool = True
    writes: int = 0
    """``count_once`` calls, failed ones included."""

    def count_once(self, group: DeliveryGroup) -> GroupResult:
        self.writes += 1
        if not self.available:
            raise DeliveryStoreUnavailableError("table unreachable")
        duplicates = tuple(event.marker_key for event in group.events if event.marker_key in self.markers)
        fresh = group.without(set(duplicates)) if duplicates else group  # Record's bench times this fake: no copy
        counted = tuple(event.marker_key for event in fresh.events)
        self.markers.update(counted)
        key = (group.campaign_id, group.hour)
        self.hours[key] = self.hours.get(key, DeliveryTotals()) + fresh.totals
        return GroupResult(counted=counted, duplicates=duplicates)

    def hourly(self, campaign_id: str, first_hour: datetime, last_hour: datetime) -> dict[datetime, DeliveryTotals]:
        return {
            hour: totals
            for (campaign, hour), totals in self.hours.items()
            if campaign == campaign_id and first_hour <= hour <= last_hour
        }

    def lifetime(self, campaign_id: str) -> DeliveryTotals:
        return sum(
            (totals for (campaign, _), totals in self.hours.items() if campaign == campaign_id), DeliveryTotals()
        )

    def add_requests(self, counts: Mapping[tuple[str, datetime, int], int]) -> None:
        if not self.available:
            raise DeliveryStoreUnavailableError("table unreachable")
        for key, count in counts.items():
            self.request_counts[key] = self.request_counts.get(key, 0) + count

    def requests(
        self, placement: str, first_hour: datetime, last_hour: datetime
    ) -> dict[tuple[datetime, int | None], int]:
        return {
            (hour, local): count
            for (name, hour, local), count in self.request_counts.items()
            if name == placement and first_hour <= hour <= last_hour
        }


@dataclass
class InMemoryPacingStore:
    """The Pacing table: each campaign's last state."""

    states: dict[str, PacingState] = field(default_factory=dict)
    scans: int = 0
    gets: int = 0

    def put(self, state: PacingState) -> None:
        self.states[state.campaign_id] = state

    def get(self, campaign_id: str) -> PacingState | None:
        self.gets += 1
        return self.states.get(campaign_id)

    def list_states(self) -> dict[str, PacingState]:
        self.scans += 1
        return dict(self.states)


@dataclass
class InMemoryLogStore:
    """A bucket: `available=False` fails every put, `failing_prefixes` fails puts of keys under them."""

    objects: dict[str, bytes] = field(default_factory=dict)
    available: bool = True
    failing_prefixes: set[str] = field(default_factory=set)
    puts: int = 0

    def put_object(self, key: str, body: bytes) -> None:
        self.puts += 1
        if not self.available or any(key.startswith(prefix) for prefix in self.failing_prefixes):
            raise LogStoreUnavailableError("bucket unreachable")
        self.objects[key] = body

    def put_if_absent(self, key: str, body: bytes) -> None:
        self.puts += 1
        if not self.available or any(key.startswith(prefix) for prefix in self.failing_prefixes):
            raise LogStoreUnavailableError("bucket unreachable")
        self.objects.setdefault(key, body)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return iter(sorted(key for key in self.objects if key.startswith(prefix)))

    def read_object(self, key: str) -> bytes:
        if key not in self.objects:
            raise LogObjectMissingError(f"no object {key}")
        return self.objects[key]


@dataclass
class InMemoryModelStore:
    """The models bucket: files per version and the pointer's raw bytes (so tests can write a malformed one).

    `available=False` fails every call like an unreachable bucket; `downloads` lists the versions fetched.
    `publish` stores the files as they are: tests put broken models on purpose, the S3 store verifies.
    """

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pointer_document: bytes | None = None
    available: bool = True
    downloads: list[str] = field(default_factory=list)

    def _check_available(self) -> None:
        if not self.available:
            raise ModelStoreUnavailableError("bucket unreachable")

    def publish(self, model_dir: Path) -> str:
        self._check_available()
        version = str(json.loads((model_dir / "manifest.json").read_text())["version"])
        self.files[version] = {path.name: path.read_bytes() for path in model_dir.iterdir() if path.is_file()}
        return version

    def download(self, version: str, target_dir: Path) -> Path:
        self._check_available()
        self.downloads.append(version)
        if version not in self.files:
            raise ModelNotFoundError(f"model {version} is not published")
        for name in ("model.onnx", "manifest.json"):
            if name not in self.files[version]:
                raise ModelNotFoundError(f"model {version} has no {name} in the models bucket")
        folder = target_dir / version
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in self.files[version].items():
            (folder / name).write_bytes(body)
        return folder

    def manifest_bytes(self, version: str) -> bytes:
        self._check_available()
        manifest = self.files.get(version, {}).get("manifest.json")
        if manifest is None:
            raise ModelNotFoundError(f"model {version} has no manifest.json in the models bucket")
        return manifest

    def versions(self) -> list[str]:
        self._check_available()
        return sorted(self.files)

    def read_pointer(self) -> ActivePointer | None:
        self._check_available()
        if self.pointer_document is None:
            return None
        try:
            return ActivePointer.model_validate_json(self.pointer_document)
        except ValidationError as error:
            raise InvalidModelPointerError(f"not a pointer: {error.error_count()} errors") from error

    def write_pointer(self, pointer: ActivePointer, *, replacing: StoredPointer) -> None:
        current: StoredPointer
        try:
            current = self.read_pointer()
        except InvalidModelPointerError:
            current = UNREADABLE_POINTER
        if current != replacing:
            raise PointerChangedError(f"the pointer is {current}, not the {replacing} to replace")
        self.pointer_document = pointer.model_dump_json().encode()
