"""The training set, streamed from the S3 logs: one example per chosen ad, plus slot 1 of every decision.

For a time range, decisions are joined with their outcomes (``outcomes.logs.read_joined_decisions``, which
deduplicates and streams hour by hour). Each chosen ad becomes an *example*: the listener's features next to
the ad's (encoded by THE ``FeatureEncoder``), its label, and what the logging policy knew (propensity,
score, value, rank, time). Each decision also contributes its *slot-1 view* for off-policy evaluation:
every candidate (an index into a small table of distinct ads) with its value, the position of the ad the
policy put first, its propensity and its reward. Slot 1 is chosen from all candidates, so a new policy's
probability of the same choice needs nothing but the candidates' scores and the logging policy
(``decisions.policy``: its ``slot_probabilities``).

Only ads that were heard become examples (``examples_from``, by default): an ad is heard when its
impression arrived within the reward window; a chosen ad the app never played says nothing about clicks, and
a decision whose first ad was not heard gives no slot-1 view either (off-policy estimates are of the click
rate per heard first ad). ``DatasetStats.dropped_no_impression`` counts the chosen ads left out.

Erased listeners are left out whole: ``DatasetConfig.erased`` (the erasure ledger, read once per run) drops
their decision rows in the reader, counted in ``log_dropped_erased``.

Labels never leak: an outcome counts only if it occurred, and reached Track, within ``reward_window`` of its
decision, and a decision younger than the window at ``as_of`` (the end of the available logs, usually "now") is
left out, because its outcomes may still arrive; so its label is the same whenever a run reads it later.
Memory: chunks of ``chunk_rows`` examples as numpy arrays (int32 indices, about 70 bytes an example), and one
reward window of open decisions inside the reader, each encoded as soon as it is read (``_Pending``, ~1 KB at 20
candidates; never the parsed record itself).
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np

from adserve.core.vocabulary import EventType
from adserve.decisions.policy import POLICY_NAMES, logged_policy
from adserve.models.features import FeatureEncoder
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.logs import (
    LogKind,
    LogReader,
    Partition,
    ReadStats,
    hours,
    read_joined_decisions,
    truncate_to_hour,
)
from adserve.privacy.consent import ServingMode

Label = Literal["click", "complete"]
ExamplesFrom = Literal["impressions", "choices"]
"""Which chosen ads become examples: those whose impression arrived within the reward window (an ad the app
never played is not a non-click), or every chosen ad (the old rule, kept to measure what the first buys)."""
LABEL_EVENTS: Final[dict[str, EventType]] = {"click": EventType.CLICK, "complete": EventType.COMPLETE}
DEFAULT_CHUNK_ROWS: Final = 50_000
_ROUNDING: Final = 1.0 - 1e-9
"""A logged propensity within rounding of its policy's least (``slot_one_impossible``) is the policy's own."""


@dataclass(frozen=True)
class DatasetConfig:
    start: datetime
    end: datetime
    as_of: datetime
    """The end of the available logs (usually now): decisions later than as_of - reward_window are left out."""
    label: Label = "click"
    reward_window: timedelta = timedelta(hours=24)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    examples_from: ExamplesFrom = "impressions"
    erased: frozenset[str] = frozenset()
    """The erasure ledger's pseudonyms (adserve.privacy.erasure): their decisions are left out."""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the range ends before it starts")
        if self.reward_window <= timedelta(0):
            raise ValueError("the reward window must be positive")
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")

    @property
    def decisions_end(self) -> datetime:
        """The last decision time whose label is final: min(end, as_of - reward_window)."""
        return min(self.end, self.as_of - self.reward_window)


@dataclass
class DatasetStats:
    """What the build read and why rows were left out; `read` holds the log reader's own counts."""

    read: ReadStats = field(default_factory=ReadStats)
    decisions: int = 0
    decisions_too_young: int = 0
    decisions_outside_range: int = 0
    decisions_without_ads: int = 0
    decisions_explained: int = 0
    """Explain requests' records: their ads were never shown, so they are neither examples nor slot-1 views."""
    chosen_without_candidate: int = 0
    examples: int = 0
    positives: int = 0
    dropped_no_impression: int = 0
    """Chosen ads with no impression within the reward window (never played): no example, no slot-1 view."""
    slot_one_trimmed: int = 0
    """Decisions whose logged candidate set was trimmed: no exact slot-1 probability, so no OPE for them."""
    slot_one_impossible: int = 0
    """Decisions whose first choice's propensity is below what their logged policy gives any of their candidates
    (``least_chosen_probability``): not logged by that policy (corrupt or foreign), so no OPE for them; one
    such weight can outweigh every other decision's."""

    def to_dict(self) -> dict[str, int]:
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "read"}
        read = {f"log_{f.name}": getattr(self.read, f.name) for f in fields(self.read)}
        return counts | read


def _cat(arrays: Sequence[np.ndarray], dtype: Any, width: int | None = None) -> np.ndarray:
    if arrays:
        return np.concatenate(arrays).astype(dtype, copy=False)
    return np.empty((0,) if width is None else (0, width), dtype=dtype)


@dataclass(frozen=True)
class Examples:
    """One row per chosen ad; every array has the same length."""

    indices: np.ndarray  # (n, num_fields) int32
    labels: np.ndarray  # (n,) int8
    propensities: np.ndarray  # (n,) float32, the logged probability of the ad in its slot
    logged_scores: np.ndarray  # (n,) float32, the logging model's predicted CTR
    values: np.ndarray  # (n,) float32, CPM
    ranks: np.ndarray  # (n,) int16
    decided_at: np.ndarray  # (n,) float64, epoch seconds

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, mask: np.ndarray) -> "Examples":
        return Examples(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @classmethod
    def concatenate(cls, parts: Sequence["Examples"], num_fields: int) -> "Examples":
        dtypes = {
            "indices": np.int32,
            "labels": np.int8,
            "propensities": np.float32,
            "logged_scores": np.float32,
            "values": np.float32,
            "ranks": np.int16,
            "decided_at": np.float64,
        }
        return cls(
            **{
                name: _cat([getattr(p, name) for p in parts], dtype, num_fields if name == "indices" else None)
                for name, dtype in dtypes.items()
            }
        )


@dataclass(frozen=True)
class SlotOne:
    """Slot 1 of each decision: candidates as a ragged array (``offsets``) of rows of the ad table."""

    decided_at: np.ndarray  # (m,) float64
    policy_codes: np.ndarray  # (m,) int8, the logging policy (its index in ``decisions.policy.POLICY_NAMES``)
    policy_parameters: np.ndarray  # (m,) float64, its setting (epsilon, gamma)
    policy_optimism: np.ndarray  # (m,) float64, SquareCB's optimism (0: none)
    listener_rows: np.ndarray  # (m, num_listener_fields) int32
    offsets: np.ndarray  # (m + 1,) int64; decision i's candidates are [offsets[i], offsets[i+1])
    candidate_ads: np.ndarray  # (total,) int32, rows of TrainingDataset.ad_rows
    candidate_rows: np.ndarray  # (total, num_candidate_fields) int32, each candidate's encoded own values
    candidate_values: np.ndarray  # (total,) float64, like the values Decide ranks with
    logged_position: np.ndarray  # (m,) int32, the logged slot-1 ad's position among its candidates
    logged_propensity: np.ndarray  # (m,) float64: a float32 rounds a valid propensity under 1.4e-45 to 0
    rewards: np.ndarray  # (m,) int8
    contextual: np.ndarray  # (m,) bool, served in contextual mode (adserve.privacy.consent)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def select(self, mask: np.ndarray) -> "SlotOne":
        per_candidate = np.repeat(mask, self.counts)
        counts = self.counts[mask]
        return SlotOne(
            decided_at=self.decided_at[mask],
            policy_codes=self.policy_codes[mask],
            policy_parameters=self.policy_parameters[mask],
            policy_optimism=self.policy_optimism[mask],
            listener_rows=self.listener_rows[mask],
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            candidate_ads=self.candidate_ads[per_candidate],
            candidate_rows=self.candidate_rows[per_candidate],
            candidate_values=self.candidate_values[per_candidate],
            logged_position=self.logged_position[mask],
            logged_propensity=self.logged_propensity[mask],
            rewards=self.rewards[mask],
            contextual=self.contextual[mask],
        )

    @classmethod
    def concatenate(cls, parts: Sequence["SlotOne"], num_listener_fields: int, num_candidate_fields: int) -> "SlotOne":
        counts = _cat([p.counts for p in parts], np.int64)
        return cls(
            decided_at=_cat([p.decided_at for p in parts], np.float64),
            policy_codes=_cat([p.policy_codes for p in parts], np.int8),
            policy_parameters=_cat([p.policy_parameters for p in parts], np.float64),
            policy_optimism=_cat([p.policy_optimism for p in parts], np.float64),
            listener_rows=_cat([p.listener_rows for p in parts], np.int32, num_listener_fields),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            candidate_ads=_cat([p.candidate_ads for p in parts], np.int32),
            candidate_rows=_cat([p.candidate_rows for p in parts], np.int32, num_candidate_fields),
            candidate_values=_cat([p.candidate_values for p in parts], np.float64),
            logged_position=_cat([p.logged_position for p in parts], np.int32),
            logged_propensity=_cat([p.logged_propensity for p in parts], np.float64),
            rewards=_cat([p.rewards for p in parts], np.int8),
            contextual=_cat([p.contextual for p in parts], np.bool_),
        )

    def candidate_indices(self, ad_rows: np.ndarray) -> np.ndarray:
        """(total, num_fields) encoder rows of every candidate: its decision's listener row, its ad row, its own."""
        listener = np.repeat(self.listener_rows, self.counts, axis=0)
        return np.hstack([listener, ad_rows[self.candidate_ads], self.candidate_rows]).astype(np.int32, copy=False)


@dataclass(frozen=True)
class DatasetChunk:
    examples: Examples
    slot_one: SlotOne


class AdTable:
    """Distinct ads (by their feature values) seen in the logs, each encoded once."""

    def __init__(self, encoder: FeatureEncoder) -> None:
        self._encoder = encoder
        self._rows: dict[tuple[str | None, ...], int] = {}
        self._encoded: list[np.ndarray] = []

    def row_of(self, features: Mapping[str, str]) -> int:
        key = tuple(map(features.get, self._encoder.spec.ad_fields))  # None and "" may get a row each: same encoding
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._encoded)
            self._encoded.append(self._encoder.encode_ad(features))
        return row

    @property
    def rows(self) -> np.ndarray:
        """(distinct ads, num_ad_fields) int32."""
        if not self._encoded:
            return np.empty((0, len(self._encoder.spec.ad_fields)), dtype=np.int32)
        return np.stack(self._encoded).astype(np.int32)


@dataclass(slots=True)
class _Chosen:
    ad_id: str
    rank: int
    propensity: float
    score: float
    value: float
    ad_row: int
    candidate_row: np.ndarray  # (num_candidate_fields,) its own values, in the slot it was served at


@dataclass(slots=True)
class _Pending:
    """What the join holds of a decision while its reward window is open: encoded, no feature dicts."""

    decided_at: float
    policy_code: int
    policy_parameter: float
    policy_optimism: float
    contextual: bool
    listener_row: np.ndarray  # (num_listener_fields,) int32
    chosen: list[_Chosen]
    candidate_rows: np.ndarray | None  # ad-table rows of every candidate; None when no slot-1 view
    candidate_own_rows: np.ndarray | None  # (candidates, num_candidate_fields) int32, with the slot-1 view
    candidate_values: np.ndarray | None
    slot_one_position: int


@dataclass
class _ChunkBuffer:
    """Python lists of one chunk, turned into numpy arrays by `flush`."""

    listener_rows: list[np.ndarray] = field(default_factory=list)
    ad_rows: list[int] = field(default_factory=list)
    candidate_rows: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    decided_at: list[float] = field(default_factory=list)
    slot_time: list[float] = field(default_factory=list)
    slot_policy_code: list[int] = field(default_factory=list)
    slot_policy_parameter: list[float] = field(default_factory=list)
    slot_policy_optimism: list[float] = field(default_factory=list)
    slot_listener: list[np.ndarray] = field(default_factory=list)
    slot_ads: list[np.ndarray] = field(default_factory=list)
    slot_candidate_rows: list[np.ndarray] = field(default_factory=list)
    slot_values: list[np.ndarray] = field(default_factory=list)
    slot_position: list[int] = field(default_factory=list)
    slot_propensity: list[float] = field(default_factory=list)
    slot_reward: list[int] = field(default_factory=list)
    slot_contextual: list[bool] = field(default_factory=list)

    def flush(self, ad_table: np.ndarray, n_listener: int, n_candidate: int) -> DatasetChunk:
        listeners = np.array(self.listener_rows, dtype=np.int32).reshape(-1, n_listener)
        ads = ad_table[np.asarray(self.ad_rows, dtype=np.int64)]
        own = np.array(self.candidate_rows, dtype=np.int32).reshape(len(self.candidate_rows), n_candidate)
        examples = Examples(
            indices=np.hstack([listeners, ads, own]).astype(np.int32, copy=False),
            labels=np.asarray(self.labels, dtype=np.int8),
            propensities=np.asarray(self.propensities, dtype=np.float32),
            logged_scores=np.asarray(self.scores, dtype=np.float32),
            values=np.asarray(self.values, dtype=np.float32),
            ranks=np.asarray(self.ranks, dtype=np.int16),
            decided_at=np.asarray(self.decided_at, dtype=np.float64),
        )
        counts = np.fromiter((len(rows) for rows in self.slot_ads), dtype=np.int64, count=len(self.slot_ads))
        slot_one = SlotOne(
            decided_at=np.asarray(self.slot_time, dtype=np.float64),
            policy_codes=np.asarray(self.slot_policy_code, dtype=np.int8),
            policy_parameters=np.asarray(self.slot_policy_parameter, dtype=np.float64),
            policy_optimism=np.asarray(self.slot_policy_optimism, dtype=np.float64),
            listener_rows=np.array(self.slot_listener, dtype=np.int32).reshape(-1, n_listener),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            candidate_ads=_cat(self.slot_ads, np.int32),
            candidate_rows=_cat(self.slot_candidate_rows, np.int32, n_candidate),
            candidate_values=_cat(self.slot_values, np.float64),
            logged_position=np.asarray(self.slot_position, dtype=np.int32),
            logged_propensity=np.asarray(self.slot_propensity, dtype=np.float64),
            rewards=np.asarray(self.slot_reward, dtype=np.int8),
            contextual=np.asarray(self.slot_contextual, dtype=np.bool_),
        )
        return DatasetChunk(examples, slot_one)


class TrainingDataset:
    """Streams `DatasetChunk`s for one `DatasetConfig`; `stats` and `ad_rows` fill in as it goes."""

    def __init__(self, store: LogReader, config: DatasetConfig, encoder: FeatureEncoder | None = None) -> None:
        self.store = store
        self.config = config
        self.encoder = encoder or FeatureEncoder()
        self.stats = DatasetStats()
        self.ads = AdTable(self.encoder)

    @property
    def ad_rows(self) -> np.ndarray:
        return self.ads.rows

    def observed_span(self) -> tuple[datetime, datetime] | None:
        """The part of [start, decisions_end] that holds decisions, to the hour (one LIST per empty hour);
        None when no hour does: a long range whose logs begin late (a new deployment) then reads no outcome
        partitions of its empty hours."""
        config = self.config
        last = config.decisions_end
        if last < config.start:
            return None
        first_hour = next((hour for hour in hours(config.start, last) if self._has_decisions(hour)), None)
        if first_hour is None:
            return None
        last_hour = next(hour for hour in reversed(list(hours(first_hour, last))) if self._has_decisions(hour))
        return max(config.start, first_hour), min(last, last_hour + timedelta(hours=1))

    def _has_decisions(self, hour: datetime) -> bool:
        return (
            next(iter(self.store.list_keys(Partition(LogKind.DECISIONS, truncate_to_hour(hour)).prefix)), None)
            is not None
        )

    def chunks(self, span: tuple[datetime, datetime] | None = None) -> Iterator[DatasetChunk]:
        """The examples in order of decision time; `span` (e.g. `observed_span()`) narrows the hours read."""
        config = self.config
        first, last = span or (config.start, config.decisions_end)
        if last < first:
            return
        joined = read_joined_decisions(
            self.store, first, last, self.stats.read, config.reward_window, keep=self._compact, erased=config.erased
        )
        buffer = _ChunkBuffer()
        n_listener, n_candidate = len(self.encoder.spec.listener_fields), len(self.encoder.spec.candidate_fields)
        for decision in joined:
            if decision.kept is not None:
                self._add(decision.kept, decision.events, buffer)
            if len(buffer.labels) >= config.chunk_rows:
                yield buffer.flush(self.ad_rows, n_listener, n_candidate)
                buffer = _ChunkBuffer()
        if buffer.labels:
            yield buffer.flush(self.ad_rows, n_listener, n_candidate)

    def _admit(self, decided_at: datetime) -> bool:
        """The reader works in whole hours; this applies the range and the label cutoff to the minute."""
        if decided_at < self.config.start or decided_at > self.config.end:
            self.stats.decisions_outside_range += 1
            return False
        if decided_at > self.config.decisions_end:
            self.stats.decisions_too_young += 1
            return False
        return True

    def _compact(self, record: DecisionRecord) -> _Pending | None:
        """Encode a decision as soon as it is read, so an open reward window costs ~1 KB a decision."""
        stats = self.stats
        if record.explain:
            stats.decisions_explained += 1
            return None
        if not self._admit(record.decided_at):
            return None
        if not record.chosen:
            stats.decisions_without_ads += 1
            return None
        candidates = record.inline_candidates
        positions = {candidate.ad_id: position for position, candidate in enumerate(candidates)}
        rows = [self.ads.row_of(candidate.features) for candidate in candidates]
        exposures = self._exposures(record)
        own = self.encoder.candidate_rows(exposures).astype(np.int32)
        chosen: list[_Chosen] = []
        slot_one_position = -1
        for choice in sorted(record.chosen, key=lambda c: c.rank):
            position = positions.get(choice.ad_id)
            if position is None:
                stats.chosen_without_candidate += 1
                continue
            if choice.rank == 1:
                slot_one_position = position
            candidate = candidates[position]
            chosen.append(
                _Chosen(
                    choice.ad_id,
                    choice.rank,
                    choice.propensity,
                    choice.score,
                    candidate.value_cpm,
                    rows[position],
                    self.encoder.candidate_rows([exposures[position]], choice.rank)[0],
                )
            )
        stats.decisions += 1
        policy = logged_policy(record.policy)
        slot_one = slot_one_position >= 0
        if slot_one and record.candidates_dropped:
            stats.slot_one_trimmed += 1
            slot_one = False
        if slot_one and chosen[0].propensity < policy.least_chosen_probability(len(candidates)) * _ROUNDING:
            stats.slot_one_impossible += 1
            slot_one = False
        return _Pending(
            decided_at=record.decided_at.timestamp(),
            policy_code=POLICY_NAMES.index(policy.name),
            policy_parameter=policy.parameter,
            policy_optimism=record.policy.optimism or 0.0,
            contextual=record.mode is ServingMode.CONTEXTUAL,
            listener_row=self.encoder.encode_listener(record.listener_features).astype(np.int32),
            chosen=chosen,
            candidate_rows=np.asarray(rows, dtype=np.int32) if slot_one else None,
            candidate_own_rows=own if slot_one else None,
            candidate_values=np.fromiter((c.value_cpm for c in candidates), np.float64) if slot_one else None,
            slot_one_position=slot_one_position,
        )

    @staticmethod
    def _exposures(record: DecisionRecord) -> list[int | None]:
        """Each candidate's logged exposure, for ``FeatureEncoder.candidate_rows`` as Decide used it. A contextual
        record's is the unknown value whatever it holds, as Decide never counts for a contextual decision.

        With it, an example (a chosen ad) is encoded in the slot it was served at (its rank) and the slot-1
        view's candidates in slot 1, where Decide scores every candidate (``SERVING_SLOT``)."""
        if record.mode is ServingMode.CONTEXTUAL:
            return [None] * len(record.inline_candidates)
        return [c.exposure for c in record.inline_candidates]

    def _add(self, pending: _Pending, events: Mapping[str, set[EventType]], buffer: _ChunkBuffer) -> None:
        label_event = LABEL_EVENTS[self.config.label]
        heard_only = self.config.examples_from == "impressions"
        for choice in pending.chosen:
            outcomes = events.get(choice.ad_id, set())
            if heard_only and EventType.IMPRESSION not in outcomes:
                self.stats.dropped_no_impression += 1
                continue
            label = int(label_event in outcomes)
            buffer.listener_rows.append(pending.listener_row)
            buffer.ad_rows.append(choice.ad_row)
            buffer.candidate_rows.append(choice.candidate_row)
            buffer.labels.append(label)
            buffer.propensities.append(choice.propensity)
            buffer.scores.append(choice.score)
            buffer.values.append(choice.value)
            buffer.ranks.append(choice.rank)
            buffer.decided_at.append(pending.decided_at)
            self.stats.examples += 1
            self.stats.positives += label
            if (
                choice.rank == 1
                and pending.candidate_rows is not None
                and pending.candidate_own_rows is not None
                and pending.candidate_values is not None
            ):
                buffer.slot_time.append(pending.decided_at)
                buffer.slot_policy_code.append(pending.policy_code)
                buffer.slot_policy_parameter.append(pending.policy_parameter)
                buffer.slot_policy_optimism.append(pending.policy_optimism)
                buffer.slot_listener.append(pending.listener_row)
                buffer.slot_ads.append(pending.candidate_rows)
                buffer.slot_candidate_rows.append(pending.candidate_own_rows)
                buffer.slot_values.append(pending.candidate_values)
                buffer.slot_position.append(pending.slot_one_position)
                buffer.slot_propensity.append(choice.propensity)
                buffer.slot_reward.append(label)
                buffer.slot_contextual.append(pending.contextual)
