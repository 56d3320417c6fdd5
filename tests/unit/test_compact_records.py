"""Compact decision records: the catalog snapshot is written once per version, a failed put keeps records
inline, the readers join compact records back to exactly the inline ones, and training cannot tell them apart."""

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta

import numpy as np
import pytest
from adserve.campaigns.model import Campaign
from adserve.core.observability import MetricName, metrics
from adserve.core.vocabulary import EventType
from adserve.dal.decision_queue import MAX_MESSAGE_BYTES
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.policy import EpsilonGreedy
from adserve.decisions.prerank import DEFAULT_TOP_K
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.features import FeatureEncoder, exposure_value
from adserve.outcomes.catalog_snapshots import (
    CATALOG_PREFIX,
    CorruptSnapshotError,
    parse_snapshot,
    snapshot_file,
    snapshot_key,
)
from adserve.outcomes.decision_records import (
    CompactCandidates,
    DecisionRecord,
    LoggedPolicy,
    UnresolvedRecordError,
    exposure_column,
)
from adserve.outcomes.logs import ReadStats, log_row, read_decisions, read_joined
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.consent import ConsentRules
from adserve.training.dataset import DatasetConfig, Examples, SlotOne, TrainingDataset
from pydantic import ValidationError

from devstack.fakes import (
    ConstantScorer,
    InMemoryCampaigns,
    InMemoryCounters,
    InMemoryLogStore,
    InMemoryPacingStore,
    RecordingDecisionLog,
)
from tests.support.builders import NOW, campaign, decision_request
from tests.support.compact_records import compacted, snapshot_of
from tests.support.log_store import write_rows
from tests.support.privacy import PSEUDONYMS, pseudonym
from tests.support.record_messages import decision, outcome

SIGNER = TokenSigner(b"s" * 32)
BASE_URL = "https://api.example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def campaigns(count: int) -> list[Campaign]:
    return [
        campaign(campaign_id=f"c{i:04d}", advertiser_id=f"a{i % 40:03d}", value_cpm=1 + (i % 17)) for i in range(count)
    ]


def decider(
    source: InMemoryCampaigns,
    log: RecordingDecisionLog,
    archive: InMemoryLogStore | None,
    monotonic: Callable[[], float] = lambda: 0.0,
    prerank_top_k: int = DEFAULT_TOP_K,
) -> DecisionService:
    """A seeded service: two of them with the same seed make the same decisions, ids included."""
    encoder = FeatureEncoder()
    ids = random.Random(5)
    return DecisionService(
        catalog=CampaignCatalog(
            source,
            encoder,
            ttl_seconds=60,
            max_age_seconds=300,
            pacing=InMemoryPacingStore(),
            pacing_max_age=timedelta(minutes=5),
            clock=lambda: NOW,
            monotonic=monotonic,
            archive=archive,
        ),
        counters=InMemoryCounters(),
        scorer=lambda _listener: ConstantScorer(),
        decision_log=log,
        signer=lambda: SIGNER,
        pseudonyms=lambda: PSEUDONYMS,
        consent=ConsentRules("legacy"),
        encoder=encoder,
        policy=PolicySettings(
            exploration=EpsilonGreedy(0.3), token_ttl=timedelta(hours=1), prerank_top_k=prerank_top_k
        ),
        rng=random.Random(11),
        clock=lambda: NOW,
        new_decision_id=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)),
    )


def test_the_snapshot_is_written_once_per_catalog_version_not_per_request() -> None:
    # Given a catalog refreshed every 60 s, an archive, and decisions over five refreshes of one catalog
    source, log, archive, clock = InMemoryCampaigns(campaigns(20)), RecordingDecisionLog(), InMemoryLogStore(), Clock()
    service = decider(source, log, archive, clock)
    for second in range(0, 300, 5):
        clock.now = float(second)
        service.decide(decision_request(max_ads=3), BASE_URL)
    # Then one put, and every record names the snapshot it wrote
    assert archive.puts == 1
    [key] = archive.objects
    versions = {record.catalog_version for record in log.records}
    assert [snapshot_key(version) for version in versions if version] == [key]
    assert {record.schema_version for record in log.records} == {2}
    # When the catalog changes, the next load writes the new version once and records name it
    source.campaigns.append(campaign(campaign_id="new", advertiser_id="b-new"))
    for second in range(300, 400, 5):
        clock.now = float(second)
        service.decide(decision_request(max_ads=3), BASE_URL)
    assert archive.puts == 2
    assert len(archive.objects) == 2
    assert snapshot_key(log.records[-1].catalog_version or "") in archive.objects
    assert log.records[-1].catalog_version not in versions


def test_environments_racing_write_a_snapshot_once_and_the_same_catalog_has_the_same_version() -> None:
    archive = InMemoryLogStore()
    first, second = RecordingDecisionLog(), RecordingDecisionLog()
    for log in (first, second):
        # campaigns listed in another order: the version is of the content
        decider(InMemoryCampaigns(campaigns(10)[::-1] if log is second else campaigns(10)), log, archive).decide(
            decision_request(), BASE_URL
        )
    assert len(archive.objects) == 1
    assert first.records[0].catalog_version == second.records[0].catalog_version


def test_a_failed_put_keeps_decisions_served_and_records_inline_until_a_later_load_writes_it() -> None:
    # Given an unreachable bucket at the first catalog load
    source, archive, clock = InMemoryCampaigns(campaigns(8)), InMemoryLogStore(available=False), Clock()
    log, reference = RecordingDecisionLog(), RecordingDecisionLog()
    service, inline = decider(source, log, archive, clock), decider(source, reference, None, clock)
    metrics.clear_metrics()
    served = [service.decide(decision_request(max_ads=2), BASE_URL) for _ in range(3)]
    assert metrics.metric_set[MetricName.CATALOG_SNAPSHOT_FAILURES]["Value"] == [1.0], "one failed put, one load"
    metrics.clear_metrics()
    unarchived = [inline.decide(decision_request(max_ads=2), BASE_URL) for _ in range(3)]
    # Then decisions are served, and their records carry every feature (the same as without an archive)
    assert served == unarchived
    assert all(response.ads for response in served)
    assert [r.model_dump_json() for r in log.records] == [r.model_dump_json() for r in reference.records]
    assert {record.schema_version for record in log.records} == {1}
    assert all(c.features for record in log.records for c in record.inline_candidates)
    assert archive.objects == {}
    # When the bucket is back, the next catalog load writes the snapshot and records become compact
    archive.available = True
    clock.now = 61.0
    service.decide(decision_request(), BASE_URL)
    assert list(archive.objects) == [snapshot_key(log.records[-1].catalog_version or "")]
    assert archive.puts == 2


def test_the_reader_joins_compact_records_to_exactly_the_inline_ones_and_training_sees_no_difference() -> None:
    # Given the same 40 decisions logged by a Decide with an archive (compact) and one without (inline)
    compact_log, inline_log = RecordingDecisionLog(), RecordingDecisionLog()
    compact_store, inline_store = InMemoryLogStore(), InMemoryLogStore()
    catalog = campaigns(30)
    compact_service = decider(InMemoryCampaigns(catalog), compact_log, compact_store)
    inline_service = decider(InMemoryCampaigns(catalog), inline_log, None)
    for index in range(40):
        request = decision_request(
            max_ads=3, listener={"id": f"listener-{index % 6}", "country": "SE", "device": "mobile"}
        )
        assert compact_service.decide(request, BASE_URL) == inline_service.decide(request, BASE_URL)
    assert {r.schema_version for r in compact_log.records} == {2}
    assert {r.schema_version for r in inline_log.records} == {1}
    # and the same outcomes: an impression for each chosen ad, a click for every third
    outcomes = [
        outcome(
            decision_id=record.decision_id,
            ad_id=choice.ad_id,
            event_type=event,
            occurred_at=NOW + timedelta(minutes=5),
            listener=record.listener_hash,
        )
        for number, record in enumerate(inline_log.records)
        for choice in record.chosen
        for event in ((EventType.IMPRESSION, EventType.CLICK) if number % 3 == 0 else (EventType.IMPRESSION,))
    ]
    for store, records in ((compact_store, compact_log.records), (inline_store, inline_log.records)):
        write_rows(store, [log_row(record) for record in records] + [log_row(event) for event in outcomes])
    # Then read back, compact records are the inline ones byte for byte, joined rows too
    start, end = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    compact_read = [r.model_dump_json() for r in read_decisions(compact_store, start, end)]
    assert compact_read == [r.model_dump_json() for r in read_decisions(inline_store, start, end)]
    assert compact_read == [r.model_dump_json() for r in inline_log.records]
    compact_joined = list(read_joined(compact_store, start, end))
    assert compact_joined == list(read_joined(inline_store, start, end))
    assert sum(row.click for row in compact_joined) > 0
    # and the trainer builds equal arrays from both
    compact_examples, compact_slot = dataset(compact_store)
    inline_examples, inline_slot = dataset(inline_store)
    assert len(inline_examples) > 0
    for name in (f.name for f in fields(Examples)):
        assert np.array_equal(getattr(compact_examples, name), getattr(inline_examples, name)), name
    for name in (f.name for f in fields(SlotOne)):
        assert np.array_equal(getattr(compact_slot, name), getattr(inline_slot, name)), name


def dataset(store: InMemoryLogStore) -> tuple[Examples, SlotOne]:
    built = TrainingDataset(
        store, DatasetConfig(start=NOW - timedelta(hours=1), end=NOW, as_of=NOW + timedelta(days=2))
    )
    chunks = list(built.chunks())
    spec = built.encoder.spec
    assert built.stats.read.unresolved_catalog == 0
    return (
        Examples.concatenate([c.examples for c in chunks], spec.num_fields),
        SlotOne.concatenate([c.slot_one for c in chunks], len(spec.listener_fields), len(spec.candidate_fields)),
    )


def test_a_propensity_too_small_for_a_float32_reaches_the_estimators_as_logged() -> None:
    # Given a decision whose chosen ad's propensity is valid (above 0) but under float32's smallest value, as a
    # policy exploring at 1e-45 logs it over 2 candidates
    logged = decision(ads=("cmp-1-ad-1", "cmp-2-ad-1"), decided_at=NOW - timedelta(minutes=30))
    logged = logged.model_copy(update={"policy": LoggedPolicy(epsilon=2e-46)})
    chosen = logged.chosen[0].model_copy(update={"propensity": 1e-46})
    record = DecisionRecord.model_validate_json(logged.model_copy(update={"chosen": [chosen]}).model_dump_json())
    heard = outcome(
        decision_id=record.decision_id, ad_id=chosen.ad_id, event_type=EventType.IMPRESSION, occurred_at=NOW
    )
    store = InMemoryLogStore()
    write_rows(store, [log_row(record), log_row(heard)])
    # When the trainer reads it, the slot-one propensity is the logged one, not 0 (an infinite weight)
    _, slot = dataset(store)
    assert slot.logged_propensity.tolist() == [1e-46]


@pytest.mark.parametrize(("propensity", "evaluated"), [(1e-30, False), (0.1 / 2, True)])
def test_a_first_choice_less_likely_than_its_policy_allows_is_not_evaluated_but_still_trains(
    propensity: float, evaluated: bool
) -> None:
    # Given a decision logged by epsilon-greedy at 0.1 over 2 candidates (no choice below 0.05) whose first
    # choice's propensity says otherwise (a corrupt or foreign record), or says exactly the least
    logged = decision(ads=("cmp-1-ad-1", "cmp-2-ad-1"), decided_at=NOW - timedelta(minutes=30))
    chosen = logged.chosen[0].model_copy(update={"propensity": propensity})
    record = logged.model_copy(update={"chosen": [chosen]})
    heard = outcome(
        decision_id=record.decision_id, ad_id=chosen.ad_id, event_type=EventType.IMPRESSION, occurred_at=NOW
    )
    store = InMemoryLogStore()
    write_rows(store, [log_row(record), log_row(heard)])
    # When the trainer reads it
    built = TrainingDataset(
        store, DatasetConfig(start=NOW - timedelta(hours=1), end=NOW, as_of=NOW + timedelta(days=2))
    )
    chunks = list(built.chunks())
    # Then the impossible one is an example but no slot-1 view (its weight would outweigh every other decision)
    assert sum(len(chunk.examples) for chunk in chunks) == 1
    assert sum(len(chunk.slot_one.logged_propensity) for chunk in chunks) == int(evaluated)
    assert built.stats.slot_one_impossible == int(not evaluated)


def test_old_inline_records_still_read_and_train_next_to_compact_ones() -> None:
    old = decision(decision_id="d-old", ads=("cmp-1-ad-1", "cmp-2-ad-1"))
    new = compacted(decision(decision_id="d-new", ads=("cmp-1-ad-1", "cmp-3-ad-1")))
    store = InMemoryLogStore()
    snapshot = snapshot_of([decision(ads=("cmp-1-ad-1", "cmp-3-ad-1"))])
    store.put_if_absent(snapshot.key, snapshot.body)
    clicks = [outcome(decision_id=d, event_type=EventType.CLICK, occurred_at=NOW) for d in ("d-old", "d-new")]
    write_rows(store, [log_row(old), log_row(new), *(log_row(click) for click in clicks)])
    start, end = NOW - timedelta(hours=1), NOW
    assert [r.decision_id for r in read_decisions(store, start, end)] == ["d-old", "d-new"]
    built = TrainingDataset(
        store, DatasetConfig(start=start, end=end, as_of=NOW + timedelta(days=2), examples_from="choices")
    )
    examples = Examples.concatenate([c.examples for c in built.chunks()], built.encoder.spec.num_fields)
    assert examples.labels.tolist() == [1, 0, 1, 0], "the click on cmp-1-ad-1 of each decision"
    assert built.stats.decisions == 2


def test_a_schema_1_record_dumps_exactly_as_records_did_before_schema_2() -> None:
    record = decision()
    document = json.loads(record.model_dump_json())
    assert "schema_version" not in document
    assert "catalog_version" not in document
    assert isinstance(document["candidates"], list)


def test_a_record_that_mixes_the_shapes_is_invalid() -> None:
    compact = json.loads(compacted(decision()).model_dump_json())
    for broken in (
        {**compact, "schema_version": 1},
        {**compact, "catalog_version": None},
        {**json.loads(decision().model_dump_json()), "schema_version": 2, "catalog_version": "x" * 64},
        {**compact, "candidates": {**compact["candidates"], "score": []}},
    ):
        with pytest.raises(ValueError, match=r"schema 2|differ in length"):
            DecisionRecord.model_validate(broken)


def test_a_compact_record_needs_its_snapshot_before_its_candidates_are_read() -> None:
    with pytest.raises(UnresolvedRecordError):
        _ = compacted(decision()).inline_candidates
    with pytest.raises(UnresolvedRecordError, match="not in catalog"):
        compacted(decision()).with_features({})


def test_a_corrupt_or_incomplete_snapshot_skips_its_records_and_counts_them() -> None:
    record = decision(ads=("cmp-1-ad-1", "cmp-2-ad-1"))
    store = InMemoryLogStore()
    snapshot = snapshot_of([record])
    store.objects[snapshot.key] = snapshot.body[:-4]  # truncated gzip
    partial = snapshot_of([decision(ads=("cmp-1-ad-1",))])
    store.objects[partial.key] = partial.body
    write_rows(store, [log_row(compacted(record)), log_row(compacted(replace_id(record, "d-2"), partial))])
    stats = ReadStats()
    assert list(read_decisions(store, NOW - timedelta(hours=1), NOW, stats)) == []
    assert stats.unresolved_catalog == 2
    with pytest.raises(CorruptSnapshotError):
        parse_snapshot(snapshot.version, snapshot.body[:-4])
    with pytest.raises(CorruptSnapshotError, match="hash"):
        parse_snapshot(partial.version, snapshot.body)
    damaged = bytearray(snapshot.body)
    damaged[10] ^= 0xFF  # the deflate stream right after gzip's header: zlib.error, not an OSError
    with pytest.raises(CorruptSnapshotError, match="not gzip"):
        parse_snapshot(snapshot.version, bytes(damaged))


def test_a_missing_snapshot_skips_its_records_and_counts_them_and_the_others_are_read() -> None:
    # Given a compact record whose snapshot is not in the bucket (deleted, or lost in a copy) and one whose is
    orphan, kept = decision(ads=("cmp-1-ad-1",)), replace_id(decision(ads=("cmp-2-ad-1",)), "d-2")
    store = InMemoryLogStore()
    present = snapshot_of([kept])
    store.objects[present.key] = present.body
    write_rows(store, [log_row(compacted(orphan)), log_row(compacted(kept, present))])
    # When the logs are read
    stats = ReadStats()
    read = list(read_decisions(store, NOW - timedelta(hours=1), NOW, stats))
    # Then the orphan is skipped and counted, as a corrupt snapshot's rows are, and the rest is read
    assert [record.decision_id for record in read] == ["d-2"]
    assert stats.unresolved_catalog == 1


def replace_id(record: DecisionRecord, decision_id: str) -> DecisionRecord:
    return record.model_copy(update={"decision_id": decision_id})


def test_an_erased_listeners_compact_records_are_dropped_like_inline_ones() -> None:
    kept, erased = decision(decision_id="d-kept"), decision(decision_id="d-erased")
    erased = erased.model_copy(update={"listener_hash": pseudonym("listener-erased")})
    store = InMemoryLogStore()
    snapshot = snapshot_of([kept])
    store.put_if_absent(snapshot.key, snapshot.body)
    write_rows(store, [log_row(compacted(kept)), log_row(compacted(erased))])
    stats = ReadStats()
    read = list(read_decisions(store, NOW - timedelta(hours=1), NOW, stats, erased={pseudonym("listener-erased")}))
    assert [r.decision_id for r in read] == ["d-kept"]
    assert (stats.dropped_erased, stats.unresolved_catalog) == (1, 0)


def test_snapshot_bytes_and_version_are_of_the_content_and_keep_the_features_order() -> None:
    ads = [
        ("b", {"campaign_id": "c", "advertiser_id": "a", "features": {"z": "1", "a": "2"}}),
        ("a", {"campaign_id": "c", "advertiser_id": "a", "features": {"ad_id": "a"}}),
    ]
    forward, backward = snapshot_file(ads), snapshot_file(ads[::-1])
    assert forward is not None
    assert forward == backward
    assert forward.key == f"{CATALOG_PREFIX}{forward.version}.json.gz"
    parsed = parse_snapshot(forward.version, forward.body)
    assert list(parsed) == ["a", "b"]
    assert list(parsed["b"]["features"]) == ["z", "a"]
    assert snapshot_file([*ads, ("a", {**ads[1][1], "features": {"ad_id": "other"}})]) is None


def test_explain_mode_logs_a_compact_explain_record() -> None:
    log, archive = RecordingDecisionLog(), InMemoryLogStore()
    response = decider(InMemoryCampaigns(campaigns(5)), log, archive).decide(decision_request(explain=True), BASE_URL)
    assert response.explanation is not None
    [record] = log.records
    assert record.explain
    assert record.schema_version == 2
    [snapshot] = archive.objects.values()
    assert isinstance(record.candidates, CompactCandidates)
    assert len(record.candidates) == 5
    resolved = record.with_features(parse_snapshot(record.catalog_version or "", snapshot))
    assert [c.campaign_id for c in resolved.inline_candidates] == [f"c{i:04d}" for i in range(5)]


@pytest.mark.parametrize("size", [1_000, 5_000])
def test_a_compact_record_fits_the_queue_untrimmed_up_to_5000_candidates(size: int) -> None:
    # Given a Decide whose every ad is eligible and scored (PRERANK_TOP_K at the size), with a snapshot written
    log, archive = RecordingDecisionLog(), InMemoryLogStore()
    service = decider(InMemoryCampaigns(campaigns(size)), log, archive, prerank_top_k=size)
    service.decide(decision_request(max_ads=3), BASE_URL)
    [record] = log.records
    assert isinstance(record.candidates, CompactCandidates)
    assert len(record.candidates) == size
    body = record.to_json_within(MAX_MESSAGE_BYTES)
    assert DecisionRecord.model_validate_json(body).candidates_dropped == 0
    if size == 1_000:
        assert len(body.encode()) < 0.25 * 256 * 1024


def test_a_compact_record_over_the_limit_keeps_the_chosen_and_best_candidates() -> None:
    log, archive = RecordingDecisionLog(), InMemoryLogStore()
    decider(InMemoryCampaigns(campaigns(300)), log, archive).decide(decision_request(max_ads=3), BASE_URL)
    [record] = log.records
    body = record.to_json_within(5_000)
    trimmed = DecisionRecord.model_validate_json(body)
    assert len(body.encode()) <= 5_000
    assert trimmed.schema_version == 2
    assert trimmed.candidates_dropped == 300 - len(trimmed.candidates) > 0
    assert isinstance(trimmed.candidates, CompactCandidates)
    assert {choice.ad_id for choice in record.chosen} <= set(trimmed.candidates.ad_id)
    ads = parse_snapshot(record.catalog_version or "", next(iter(archive.objects.values())))
    resolved = trimmed.with_features(ads).inline_candidates
    assert [c.ad_id for c in resolved] == trimmed.candidates.ad_id
    assert isinstance(record.candidates, CompactCandidates)
    dropped = set(record.candidates.ad_id) - set(trimmed.candidates.ad_id)
    chosen = {choice.ad_id for choice in record.chosen}
    best_dropped = max(s for a, s in zip(record.candidates.ad_id, record.candidates.score, strict=True) if a in dropped)
    assert all(c.score >= best_dropped for c in resolved if c.ad_id not in chosen)


def test_the_exposure_column_is_one_character_a_candidate_and_reads_back_as_counted() -> None:
    exposures = [None, 0, 1, 9, 10, 35, 400, None]
    column = exposure_column(exposures)
    assert column == ".019azz."
    candidates = CompactCandidates(
        ad_id=[f"ad-{i}" for i in range(8)],
        score=[0.1] * 8,
        value_cpm=[1.0] * 8,
        serve_probability=[1.0] * 8,
        exposure=column,
    )
    # Past 35 the count is cut, never the feature: every count from 5 is the bucket "5+".
    assert candidates.exposures() == [None, 0, 1, 9, 10, 35, 35, None]
    assert [exposure_value(e) for e in candidates.exposures()] == [exposure_value(e) for e in exposures]
    assert candidates.subset([7, 3]).exposures() == [None, 9]
    assert exposure_column([None, None]) is None
    with pytest.raises(ValidationError):
        CompactCandidates(ad_id=["a"], score=[0.1], value_cpm=[1.0], serve_probability=[1.0], exposure="-")
