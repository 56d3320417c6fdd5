"""Training logs of simulated traffic, written as Record writes them, with the truth kept on the side.

Listeners come from ``adserve.training.simulation.World`` (true click probabilities known), every decision is made by
the real serving policy (``decisions.policy.choose_slate``: the configured exploration policy over score x
value, one ad per advertiser, exact propensities) and logged as a ``DecisionRecord``; each chosen ad is played
with probability ``play_rate`` and, if played, gets an impression and, with its true probability, a click
(and with ``complete_rate`` a completion) some minutes later. An ad not played sends nothing. Tests and
benchmarks use it to check the dataset, the trainer and the off-policy estimators against the truth.

With ``consent_share``, each listener consents to personalisation with that probability and is served as
Decide serves it (``adserve.privacy.consent``: minors never personalised): a listener not personalised is
scored and logged with only ``CONTEXTUAL_FIELDS`` (the others reach the encoder as its unknown value), while
its clicks still come from the whole listener. That measures what consent costs the policy.

With ``audience`` and ``daily_cap`` (both off by default), listeners come back: each decision's listener is drawn
from a fixed audience, every campaign is capped per listener and day, and, as Decide does, each candidate's
exposure (today's count of its campaign's impressions for this listener; ``counter_state``) is scored and logged,
in personalised decisions only. In a ``World`` with ``fatigue`` the clicks fall with that count.
"""

import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from adserve.core.vocabulary import AgeBucket, EventType
from adserve.decisions.policy import EpsilonGreedy, ExplorationPolicy, choose_slate, relative_uncertainty
from adserve.models.features import CONTEXTUAL_FIELDS, FeatureEncoder, candidate_features
from adserve.outcomes.decision_records import DecisionRecord, LoggedCandidate, LoggedChoice
from adserve.outcomes.logs import LoggedOutcome, LogKind, Partition, encode_object
from adserve.privacy.consent import ConsentIn, ConsentRules, ServingMode
from adserve.training.simulation import World

START = datetime(2026, 11, 1, tzinfo=UTC)
ROWS_PER_OBJECT = 100  # one SQS batch of Record

LoggingScorer = Callable[[Sequence[Mapping[str, str]], Sequence[Mapping[str, str]]], np.ndarray]
"""(listener feature dicts, candidate dicts) -> predicted CTR of each pair: the logging policy's model. A candidate
dict is the ad's features and, with ``daily_cap``, its own values (``candidate_features``) beside them; a scorer
fills in what a plain ad lacks from ``candidate_features(None)`` (slot 1, nothing counted), as Decide scores it."""


class ObjectSink(Protocol):
    def put_object(self, key: str, body: bytes) -> None: ...


@dataclass(frozen=True)
class TrafficConfig:
    decisions: int = 5_000
    start: datetime = START
    span: timedelta = timedelta(hours=48)
    candidates: int = 10
    max_ads: int = 2
    exploration: ExplorationPolicy = field(default_factory=lambda: EpsilonGreedy(0.2))
    heard: Mapping[str, float] | None = None
    """For SquareCB's optimism: the impressions of each ad (by logged ``ad_id``) the logging model learned from, 0
    for an ad missing (``HeardAds``); None: none counted."""
    play_rate: float = 1.0
    """The chance the app plays a chosen ad (independent of the ad); below 1, some chosen ads are never heard."""
    outcome_delay: timedelta = timedelta(minutes=3)
    complete_rate: float = 0.5
    noise: float = 0.5
    """Without a scorer, the logging model is the true CTR x lognormal(0, noise): right on average only."""
    day_of_week: str | None = None
    """Every listener's day of week, as Decide stamps it from its clock; None draws one per listener."""
    value_cpm: float | None = None
    """Every advertiser's CPM (ranking by predicted CTR alone); None draws one per advertiser."""
    model_version: str = "simulated-logging"
    seed: int = 7
    keep_truth: bool = True
    """Remember every candidate row's true CTR (tests); benchmarks at millions of rows turn it off."""
    keep_stream: bool = False
    """Remember every decision's served listener, candidates and their true CTRs (``Truth.stream``), so another
    learner can be driven through the very same traffic."""
    consent_share: float | None = None
    """The share of listeners consenting to personalisation, served as Decide serves them; None: consent is not
    modelled and every listener is personalised (logs as they were before consent existed)."""
    audience: int | None = None
    """Draw every decision's listener from a fixed audience of this many (repeat listeners); None: a new one each."""
    daily_cap: int | None = None
    """Cap every campaign at this many impressions per listener and UTC day (needs ``audience``): candidates at
    the cap are withheld, the others scored and logged with their exposure. None: uncapped, nothing counted."""

    def __post_init__(self) -> None:
        if (self.audience is None) != (self.daily_cap is None):
            raise ValueError("audience and daily_cap go together: exposure needs listeners who come back")


CONSENTING = ConsentIn(personalise=True, cap_frequency=True, measure=True)
NOT_CONSENTING = ConsentIn(personalise=False, cap_frequency=True, measure=True)
"""Listeners who refuse only personalisation: still counted and measured, so only the model's view changes."""


def served_view(listener: Mapping[str, str], consents: bool) -> tuple[ServingMode, dict[str, str]]:
    """The mode Decide serves this listener in, and the listener features it scores and logs (as Decide does)."""
    age = listener.get("age_bucket")
    mode = ConsentRules().permissions(CONSENTING if consents else NOT_CONSENTING, AgeBucket(age) if age else None).mode
    if mode is ServingMode.CONTEXTUAL:
        return mode, {name: listener[name] for name in CONTEXTUAL_FIELDS if name in listener}
    return mode, dict(listener)


def consent_draws(share: float | None, n: int, stream: Sequence[int]) -> list[bool]:
    """Who consents, from a stream of its own (``stream`` seeds it): consent draws never shift the traffic's."""
    if share is None:
        return [True] * n
    consents: list[bool] = (np.random.default_rng([*stream, 11]).random(n) < share).tolist()
    return consents


@dataclass(frozen=True)
class StreamDecision:
    """One decision of the traffic as any policy sees it, with what only the simulator knows."""

    listener: Mapping[str, str]
    """The listener's features as Decide serves and logs them (only the contextual fields when not personalised)."""
    ads: tuple[Mapping[str, str], ...]
    """The candidates, in the order they were offered."""
    true_ctr: np.ndarray
    """Each candidate's true click probability for the whole listener."""


@dataclass
class RankTruth:
    """The ads chosen for one slot: their count, the sums of their scores (the logging model's CTR estimate, made
    for ``SERVING_SLOT``) and of their true CTRs in slot 1 and in this slot."""

    chosen: int = 0
    scores: float = 0.0
    true_ctr_first: float = 0.0
    true_ctr_here: float = 0.0


@dataclass
class Truth:
    """What only the simulator knows: the true CTR of every logged (listener, candidate) index row."""

    ctr_by_row: dict[bytes, float] = field(default_factory=dict)
    clicks: int = 0
    impressions: int = 0
    chosen: int = 0
    served_true_ctr: float = 0.0
    """The sum of the chosen ads' true CTRs in their slots (``World.examined``): over ``chosen``, the policy's
    expected click rate while logging."""
    by_rank: dict[int, RankTruth] = field(default_factory=dict)
    """Per slot: what the scorer estimated of the ads chosen for it, against their truth."""
    stream: list[StreamDecision] = field(default_factory=list)
    """Every decision in order, with ``TrafficConfig.keep_stream``. The traffic (listeners, candidates, which
    chosen ads are played) depends on the seed alone, never on the scorer or the policy."""

    def true_ctr(self, indices: np.ndarray) -> np.ndarray:
        return np.array([self.ctr_by_row[row.astype(np.int64).tobytes()] for row in indices], dtype=np.float64)


@dataclass
class TruthScorer:
    """A scorer (``predict(indices)``) that knows the true CTR: the oracle's model."""

    truth: Truth
    version: str = "oracle"

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return self.truth.true_ctr(indices).astype(np.float32)


def advertiser_values(world: World, seed: int, value_cpm: float | None = None) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    advertisers = sorted({ad["advertiser_id"] for ad in world.ads})
    if value_cpm is not None:
        return dict.fromkeys(advertisers, value_cpm)
    return {advertiser: round(float(rng.uniform(4.0, 20.0)), 2) for advertiser in advertisers}


class LogWriter:
    """Buffers JSON lines per partition and writes one gzip object per ROWS_PER_OBJECT rows."""

    def __init__(self, sink: ObjectSink, name: str) -> None:
        """``name`` sets the object keys apart from those of other writers into the same sink."""
        self._sink = sink
        self._name = name
        self._lines: dict[Partition, list[str]] = defaultdict(list)
        self._objects = 0

    def add(self, kind: LogKind, moment: datetime, line: str) -> None:
        partition = Partition.of(kind, moment)
        lines = self._lines[partition]
        lines.append(line)
        if len(lines) >= ROWS_PER_OBJECT:
            self._write(partition)

    def _write(self, partition: Partition) -> None:
        lines = self._lines.pop(partition)
        self._objects += 1
        rows = [f"{self._name}-{self._objects}-{row}" for row in range(len(lines))]  # a "message" per row, as Record
        self._sink.put_object(partition.object_key(rows), encode_object(lines))

    def close(self) -> None:
        for partition in list(self._lines):
            self._write(partition)


def simulate_traffic(
    sink: ObjectSink,
    world: World,
    config: TrafficConfig = TrafficConfig(),
    scorer: LoggingScorer | None = None,
    encoder: FeatureEncoder | None = None,
) -> Truth:
    """Write `config.decisions` logged decisions and their outcomes to `sink`; the truth behind them."""
    encoder = encoder or FeatureEncoder()
    rng = np.random.default_rng(config.seed)
    policy_rng = random.Random(config.seed)
    values = advertiser_values(world, config.seed, config.value_cpm)
    truth = Truth()
    writer = LogWriter(sink, f"sim-{config.seed}")
    offsets = np.sort(rng.uniform(0.0, config.span.total_seconds(), size=config.decisions))
    if config.audience is not None:
        _audience_traffic(
            writer,
            world,
            config,
            scorer=scorer,
            encoder=encoder,
            rng=rng,
            policy_rng=policy_rng,
            values=values,
            truth=truth,
            offsets=offsets,
        )
        writer.close()
        return truth
    batch = 2_000
    for lo in range(0, config.decisions, batch):
        n = min(batch, config.decisions - lo)
        listeners = world.sample_listeners(n, rng)
        if config.day_of_week is not None:
            listeners = [listener | {"day_of_week": config.day_of_week} for listener in listeners]
        served = [
            served_view(listener, consents)
            if config.consent_share is not None
            else (ServingMode.PERSONALISED, listener)
            for listener, consents in zip(
                listeners, consent_draws(config.consent_share, n, (config.seed, lo)), strict=True
            )
        ]
        chosen_ads = [_candidates(world, listener, config.candidates, rng) for listener in listeners]
        flat_listeners = [listener for listener, ads in zip(listeners, chosen_ads, strict=True) for _ in ads]
        flat_served = [features for (_, features), ads in zip(served, chosen_ads, strict=True) for _ in ads]
        flat_ads = [world.ads[i] for ads in chosen_ads for i in ads]
        ends = np.cumsum([len(ads) for ads in chosen_ads]).tolist()
        true = world.click_probabilities(flat_listeners, flat_ads)
        scores = scorer(flat_served, flat_ads) if scorer else true * rng.lognormal(0.0, config.noise, true.shape)
        if config.keep_truth:
            rows = encoder.encode_rows(flat_served, flat_ads, [candidate_features(None)] * len(flat_ads))
            for row, ctr in zip(rows, true, strict=True):
                truth.ctr_by_row[row.tobytes()] = float(ctr)
        for i in range(n):
            span = slice(ends[i] - len(chosen_ads[i]), ends[i])
            if not chosen_ads[i]:  # a break no world ad plays: Decide serves nothing and logs no choice
                continue
            decided_at = config.start + timedelta(seconds=float(offsets[lo + i]))
            ads = [world.ads[j] for j in chosen_ads[i]]
            if config.keep_stream:
                truth.stream.append(StreamDecision(served[i][1], tuple(ads), true[span].copy()))
            _decide(
                writer,
                config,
                policy_rng,
                rng,
                truth,
                decision_id=f"sim-{config.seed}-{lo + i}",
                decided_at=decided_at,
                listener=served[i][1],
                mode=served[i][0],
                ads=ads,
                scores=scores[span],
                true=true[span],
                values=values,
                examined=world.examined,
            )
    writer.close()
    return truth


def _candidates(world: World, listener: Mapping[str, str], k: int, rng: np.random.Generator) -> list[int]:
    """Up to ``k`` distinct ads drawn at random from those the listener's placement plays, as Decide's targeting
    would offer them."""
    playable = world.playable(listener["placement"])
    return [int(i) for i in rng.choice(playable, size=min(k, len(playable)), replace=False)]


def _audience_traffic(
    writer: LogWriter,
    world: World,
    config: TrafficConfig,
    *,
    scorer: LoggingScorer | None,
    encoder: FeatureEncoder,
    rng: np.random.Generator,
    policy_rng: random.Random,
    values: Mapping[str, float],
    truth: Truth,
    offsets: np.ndarray,
) -> None:
    """``simulate_traffic`` with listeners who come back: one decision at a time, as each changes the exposures."""
    audience_size, cap = config.audience or 0, config.daily_cap or 0
    audience = world.sample_listeners(audience_size, rng)
    if config.day_of_week is not None:
        audience = [listener | {"day_of_week": config.day_of_week} for listener in audience]
    consents = consent_draws(config.consent_share, audience_size, (config.seed,))
    served_as = [
        served_view(listener, consent) if config.consent_share is not None else (ServingMode.PERSONALISED, listener)
        for listener, consent in zip(audience, consents, strict=True)
    ]
    heard: dict[tuple[int, str, str], int] = defaultdict(int)
    for number, offset in enumerate(offsets.tolist()):
        who = int(rng.integers(audience_size))
        decided_at = config.start + timedelta(seconds=offset)
        day = decided_at.date().isoformat()
        drawn = [world.ads[j] for j in _candidates(world, audience[who], config.candidates, rng)]
        counts = [heard[(who, ad["campaign_id"], day)] for ad in drawn]
        ads = [ad for ad, count in zip(drawn, counts, strict=True) if count < cap]
        counts = [count for count in counts if count < cap]
        if not ads:
            continue
        mode, listener = served_as[who]
        logged: list[int | None] = list(counts) if mode is ServingMode.PERSONALISED else [None] * len(ads)
        candidates = [ad | candidate_features(count) for ad, count in zip(ads, logged, strict=True)]
        true = world.click_probabilities([audience[who]] * len(ads), ads, np.array(counts))
        served = [listener] * len(ads)
        scores = scorer(served, candidates) if scorer else true * rng.lognormal(0.0, config.noise, true.shape)
        if config.keep_truth:
            for row, ctr in zip(encoder.encode_rows(served, candidates, candidates), true, strict=True):
                truth.ctr_by_row[row.tobytes()] = float(ctr)
        if config.keep_stream:
            truth.stream.append(StreamDecision(listener, tuple(candidates), true.copy()))
        played = _decide(
            writer,
            config,
            policy_rng,
            rng,
            truth,
            decision_id=f"sim-{config.seed}-{number}",
            decided_at=decided_at,
            listener=listener,
            mode=mode,
            ads=ads,
            scores=np.asarray(scores),
            true=true,
            values=values,
            exposures=logged,
            examined=world.examined,
        )
        for index in played:
            heard[(who, ads[index]["campaign_id"], day)] += 1


def _decide(
    writer: LogWriter,
    config: TrafficConfig,
    policy_rng: random.Random,
    rng: np.random.Generator,
    truth: Truth,
    *,
    decision_id: str,
    decided_at: datetime,
    listener: Mapping[str, str],
    mode: ServingMode,
    ads: Sequence[Mapping[str, str]],
    scores: np.ndarray,
    true: np.ndarray,
    values: Mapping[str, float],
    exposures: Sequence[int | None] | None = None,
    examined: Callable[[int], float],
) -> list[int]:
    """Choose, log and play one decision; the positions (in ``ads``) of the chosen ads that were played."""
    value_array = np.array([values[ad["advertiser_id"]] for ad in ads], dtype=np.float64)
    heard = config.heard
    choices = choose_slate(
        scores.astype(np.float64) * value_array,
        [ad["advertiser_id"] for ad in ads],
        config.max_ads,
        config.exploration,
        policy_rng,
        uncertainty=None
        if heard is None
        else relative_uncertainty(scores.astype(np.float64), np.array([heard.get(ad["ad_id"], 0.0) for ad in ads])),
    )
    record = DecisionRecord(
        decision_id=decision_id,
        decided_at=decided_at,
        model_version=config.model_version,
        policy=config.exploration.logged(),
        mode=mode,
        listener_hash=f"h{decision_id}",
        listener_features=dict(listener),
        placement=listener["placement"],
        max_ads=config.max_ads,
        cap_check="not_needed" if exposures is None else "ok",
        candidates=[
            LoggedCandidate(
                ad_id=ad["ad_id"],
                campaign_id=ad["campaign_id"],
                advertiser_id=ad["advertiser_id"],
                features=dict(ad),
                score=float(score),
                value_cpm=float(value),
                exposure=exposure,
            )
            for ad, score, value, exposure in zip(ads, scores, value_array, exposures or [None] * len(ads), strict=True)
        ],
        chosen=[
            LoggedChoice(
                ad_id=ads[c.index]["ad_id"], rank=c.rank, score=float(scores[c.index]), propensity=c.propensity
            )
            for c in choices
        ],
    )
    writer.add(LogKind.DECISIONS, decided_at, record.model_dump_json())
    occurred_at = decided_at + config.outcome_delay
    played = []
    for choice in choices:
        ad = ads[choice.index]
        click_probability = float(true[choice.index]) * examined(choice.rank)
        truth.served_true_ctr += click_probability
        truth.chosen += 1
        slot = truth.by_rank.setdefault(choice.rank, RankTruth())
        slot.chosen += 1
        slot.scores += float(scores[choice.index])
        slot.true_ctr_first += float(true[choice.index])
        slot.true_ctr_here += click_probability
        if config.play_rate < 1.0 and rng.random() >= config.play_rate:
            continue
        played.append(choice.index)
        events = [EventType.IMPRESSION]
        if rng.random() < click_probability:
            events.append(EventType.CLICK)
            truth.clicks += 1
        if rng.random() < config.complete_rate:
            events.append(EventType.COMPLETE)
        truth.impressions += 1
        for event_type in events:
            outcome = LoggedOutcome(
                event_id=f"{decision_id}-{ad['ad_id']}-{event_type.value}",
                event_type=event_type,
                decision_id=decision_id,
                ad_id=ad["ad_id"],
                campaign_id=ad["campaign_id"],
                advertiser_id=ad["advertiser_id"],
                listener_hash=record.listener_hash,
                occurred_at=occurred_at,
                received_at=occurred_at,
            )
            writer.add(LogKind.OUTCOMES, occurred_at, outcome.model_dump_json())
    return played
