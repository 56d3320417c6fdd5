"""The slot feature: training rows carry the slot their ad was heard in, serving scores every candidate in slot 1.

So a second ad's lower click rate is learned as the second slot's, not as the ad's, and the policy (and each
slot's off-policy estimate) ranks ads by how they would do first in the break.
"""

from datetime import timedelta

import numpy as np
from adserve.core.vocabulary import EventType
from adserve.models.features import DEFAULT_SPEC, SERVING_SLOT, token_index
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.events import OutcomeEvent
from adserve.training.dataset import DatasetConfig, Examples, SlotOne, TrainingDataset
from adserve.training.simulation import World

from devstack.fakes import InMemoryLogStore, RecordingDecisionLog
from devstack.simulated_logs import TrafficConfig, simulate_traffic
from tests.support.builders import NOW, campaign, decision_request
from tests.support.decision_service import in_memory_service
from tests.support.log_store import write_logs
from tests.support.record_messages import decision, outcome

SLOT = DEFAULT_SPEC.fields.index("slot")


def slot_token(slot: str) -> int:
    return token_index("slot", slot, DEFAULT_SPEC.hash_bits)


def read(*messages: OutcomeEvent | DecisionRecord) -> tuple[Examples, SlotOne, TrainingDataset]:
    store = InMemoryLogStore()
    write_logs(store, *messages)
    as_of = NOW + timedelta(days=3)
    dataset = TrainingDataset(store, DatasetConfig(start=NOW - timedelta(hours=1), end=as_of, as_of=as_of))
    spec = dataset.encoder.spec
    chunks = list(dataset.chunks())
    return (
        Examples.concatenate([c.examples for c in chunks], spec.num_fields),
        SlotOne.concatenate([c.slot_one for c in chunks], len(spec.listener_fields), len(spec.candidate_fields)),
        dataset,
    )


def test_each_example_carries_the_slot_it_was_served_in_and_the_slot_one_view_scores_every_candidate_in_slot_1() -> (
    None
):
    # Given a hand-built log: a break of three ads, each heard, the second clicked
    record = decision(ads=("a-ad-1", "b-ad-1", "c-ad-1", "d-ad-1"))
    record = record.model_copy(update={"chosen": record.chosen[:3]})
    heard = [
        outcome(decision_id="d-1", ad_id=ad, campaign_id=ad[0], event_type=EventType.IMPRESSION)
        for ad in ("a-ad-1", "b-ad-1", "c-ad-1")
    ]
    click = outcome(decision_id="d-1", ad_id="b-ad-1", campaign_id="b", event_type=EventType.CLICK)
    # When the training reader reads it
    examples, slot, dataset = read(record, *heard, click)
    # Then the examples are the three ads, each in the slot it was served in, and only the rest of the row alike
    assert examples.ranks.tolist() == [1, 2, 3]
    assert examples.indices[:, SLOT].tolist() == [slot_token("1"), slot_token("2"), slot_token("3")]
    assert examples.labels.tolist() == [0, 1, 0]
    ad_ids = [c.ad_id for c in record.inline_candidates]
    candidates = slot.candidate_indices(dataset.ad_rows)
    for example, ad in zip(examples.indices, ("a-ad-1", "b-ad-1", "c-ad-1"), strict=True):
        served = candidates[ad_ids.index(ad)]
        assert np.array_equal(np.delete(example, SLOT), np.delete(served, SLOT))
    # And slot 1's view (off-policy evaluation) scores every candidate in slot 1, as Decide does
    assert candidates[:, SLOT].tolist() == [slot_token(str(SERVING_SLOT))] * 4


def test_decide_scores_every_candidate_in_slot_1_whatever_slot_it_fills() -> None:
    class RecordingScorer:
        version = "recording"
        rows: list[np.ndarray] = []

        def predict(self, indices: np.ndarray) -> np.ndarray:
            self.rows.append(indices.copy())
            return np.asarray(np.arange(len(indices)) / 100 + 0.01, dtype=np.float32)

    scorer, log = RecordingScorer(), RecordingDecisionLog()
    campaigns = [campaign(campaign_id=f"cmp-{n}", advertiser_id=f"adv-{n}") for n in range(4)]
    service = in_memory_service(*campaigns, log=log, scorer=scorer)
    response = service.decide(decision_request(max_ads=3), "https://api.example.com")
    assert [ad.rank for ad in response.ads] == [1, 2, 3]
    (scored,) = scorer.rows
    assert scored[:, SLOT].tolist() == [slot_token("1")] * 4


def test_an_examined_world_lowers_later_slots_clicks_and_is_off_by_default() -> None:
    world = World(5, examination=(1.0, 0.5))
    assert [world.examined(rank) for rank in (1, 2, 3)] == [1.0, 0.5, 0.5]
    assert [World(5).examined(rank) for rank in (1, 2, 3)] == [1.0, 1.0, 1.0]
    # Simulated traffic clicks slot 2 half as often for the same ads' slot-1 CTR
    truth = simulate_traffic(InMemoryLogStore(), world, TrafficConfig(decisions=2_000, candidates=6, max_ads=2, seed=4))
    first, second = truth.by_rank[1], truth.by_rank[2]
    assert second.true_ctr_here == 0.5 * second.true_ctr_first
    assert first.true_ctr_here == first.true_ctr_first
