"""The exposure feature: what Decide scores a candidate with is what training reads back from its record.

Decide counts nothing extra: the caps Query's counters give each capped candidate's exposure. The record
logs it per candidate (inline, or in a compact record's column), and the dataset reader encodes it with the
same ``candidate_features``, so each example's index row is the row the model scored at serving.
"""

from datetime import timedelta

import numpy as np
import pytest
from adserve.campaigns.frequency_caps import AdvertiserCaps, counter_key, session_key, window_bucket
from adserve.campaigns.model import Campaign
from adserve.core.vocabulary import EventType
from adserve.decisions.api import DecisionRequest
from adserve.models.features import DEFAULT_SPEC, token_index
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.events import OutcomeEvent
from adserve.training.dataset import DatasetConfig, Examples, SlotOne, TrainingDataset

from devstack.fakes import InMemoryCounters, InMemoryLogStore, RecordingDecisionLog
from tests.support.builders import NOW, campaign, decision_request
from tests.support.compact_records import compacted, snapshot_of
from tests.support.decision_service import in_memory_service
from tests.support.log_store import write_logs
from tests.support.privacy import pseudonym
from tests.support.record_messages import outcome

EXPOSURE = DEFAULT_SPEC.fields.index("exposure")
SLOT = DEFAULT_SPEC.fields.index("slot")
DAILY = [{"max": 9, "window": "day"}]


class RecordingScorer:
    """Varied scores from the rows, and every row it was asked to score."""

    version = "recording"

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def predict(self, indices: np.ndarray) -> np.ndarray:
        self.rows.append(indices.copy())
        return np.asarray((indices.sum(axis=1) % 97) / 970 + 0.01, dtype=np.float32)


def catalog() -> list[Campaign]:
    """Three capped campaigns heard 0, 2 and 6 times today (no counter for the first), one uncapped."""
    return [
        campaign(campaign_id="cmp-a", advertiser_id="adv-a", frequency_caps=DAILY),
        campaign(campaign_id="cmp-b", advertiser_id="adv-b", frequency_caps=DAILY, value_cpm=12.0),
        campaign(campaign_id="cmp-c", advertiser_id="adv-c", frequency_caps=DAILY, value_cpm=14.0),
        campaign(campaign_id="cmp-d", advertiser_id="adv-d", value_cpm=11.0),
    ]


def counters(campaigns: list[Campaign]) -> InMemoryCounters:
    caps = AdvertiserCaps(campaigns)
    heard = {"cmp-b": 2, "cmp-c": 6}
    counts = {
        counter_key(cap, c, window_bucket(cap.window, NOW, session_key(None, NOW))): heard[c.campaign_id]
        for c in campaigns
        if c.campaign_id in heard
        for cap in caps.caps_of(c)
    }
    return InMemoryCounters({pseudonym("listener-1"): counts})


def decide(request: DecisionRequest) -> tuple[DecisionRecord, np.ndarray]:
    campaigns = catalog()
    scorer, log = RecordingScorer(), RecordingDecisionLog()
    service = in_memory_service(*campaigns, counters=counters(campaigns), log=log, scorer=scorer)
    service.decide(request, "https://api.example.com")
    (record,) = log.records
    return record, scorer.rows[-1]


def read_back(record: DecisionRecord, compact: bool = False) -> tuple[Examples, SlotOne, TrainingDataset]:
    """The record (compacted, its snapshot written, when ``compact``) and an impression of each chosen ad through
    the logs, as Record writes them, then the training dataset reader."""
    store = InMemoryLogStore()
    if compact:
        snapshot = snapshot_of([record])
        store.put_if_absent(snapshot.key, snapshot.body)
        record = compacted(record, snapshot)
        assert record.candidates.exposures() == [0, 2, 6, None]  # type: ignore[union-attr]
    messages: list[OutcomeEvent | DecisionRecord] = [record]
    for choice in record.chosen:
        messages.append(
            outcome(
                decision_id=record.decision_id,
                ad_id=choice.ad_id,
                campaign_id=choice.ad_id.removesuffix("-ad-1"),
                event_type=EventType.IMPRESSION,
                occurred_at=record.decided_at + timedelta(minutes=1),
            )
        )
    write_logs(store, *messages)
    as_of = NOW + timedelta(days=3)
    dataset = TrainingDataset(store, DatasetConfig(start=NOW - timedelta(hours=1), end=as_of, as_of=as_of))
    chunks = list(dataset.chunks())
    spec = dataset.encoder.spec
    examples = Examples.concatenate([c.examples for c in chunks], spec.num_fields)
    slot = SlotOne.concatenate([c.slot_one for c in chunks], len(spec.listener_fields), len(spec.candidate_fields))
    return examples, slot, dataset


def exposure_token(value: str) -> int:
    return token_index("exposure", value, DEFAULT_SPEC.hash_bits)


@pytest.mark.parametrize("compact", [False, True], ids=["inline record", "compact record"])
def test_training_reads_back_exactly_the_exposure_decide_scored(compact: bool) -> None:
    # Given a personalised decision over campaigns heard 0, 2 and 6 times today and an uncapped one
    record, scored = decide(decision_request(max_ads=3))
    by_ad = dict(zip([c.ad_id for c in record.inline_candidates], scored, strict=True))
    # Then Decide scored each with its bucket: counted 0, 2, 5+; the uncapped one unknown
    assert {ad: int(row[EXPOSURE]) for ad, row in by_ad.items()} == {
        "cmp-a-ad-1": exposure_token("0"),
        "cmp-b-ad-1": exposure_token("2"),
        "cmp-c-ad-1": exposure_token("5+"),
        "cmp-d-ad-1": exposure_token(""),
    }
    # And logged the counts per candidate
    assert [c.exposure for c in record.inline_candidates] == [0, 2, 6, None]
    # When the record (and its impressions) go through the logs and the training dataset reader
    examples, slot, dataset = read_back(record, compact)
    # Then every example is the very row Decide scored for that ad (exposure included) but for the slot it was
    # heard in, and the slot-1 view holds every candidate's row exactly as scored
    chosen = [choice.ad_id for choice in sorted(record.chosen, key=lambda c: c.rank)]
    assert len(examples) == len(chosen) == 3
    served = np.stack([by_ad[ad] for ad in chosen])
    assert np.array_equal(examples.indices[:, EXPOSURE], served[:, EXPOSURE])
    assert np.array_equal(np.delete(examples.indices, SLOT, axis=1), np.delete(served, SLOT, axis=1))
    assert examples.indices[:, SLOT].tolist() == [
        token_index("slot", str(r), DEFAULT_SPEC.hash_bits) for r in (1, 2, 3)
    ]
    assert np.array_equal(slot.candidate_indices(dataset.ad_rows), scored)


def test_a_contextual_decision_scores_and_trains_exposure_as_unknown() -> None:
    # Given a listener who refuses personalisation but allows capping (the counters are read for the caps)
    consent = {"personalise": False, "cap_frequency": True, "measure": True}
    record, scored = decide(decision_request(max_ads=3, consent=consent))
    # Then no exposure is scored nor logged
    assert record.mode == "contextual"
    assert record.cap_check == "ok"
    assert set(scored[:, EXPOSURE].tolist()) == {exposure_token("")}
    assert all(c.exposure is None for c in record.inline_candidates)
    # And training reads it back as the unknown value too, even from a record that (wrongly) carried counts
    tampered = record.model_copy(
        update={"candidates": [c.model_copy(update={"exposure": 3}) for c in record.inline_candidates]}
    )
    examples, slot, dataset = read_back(tampered)
    assert set(examples.indices[:, EXPOSURE].tolist()) == {exposure_token("")}
    assert np.array_equal(slot.candidate_indices(dataset.ad_rows), scored)


def test_decide_reads_the_counters_once_whatever_the_exposure_feature_needs() -> None:
    campaigns = catalog()
    reader = counters(campaigns)
    service = in_memory_service(*campaigns, counters=reader, scorer=RecordingScorer())
    service.decide(decision_request(max_ads=3), "https://api.example.com")
    assert reader.reads == 1
