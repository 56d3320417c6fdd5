"""The training dataset from the logs: label window, no leakage, malformed lines, slot-1 view, chunking."""

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from adserve.core.vocabulary import EventType
from adserve.models.features import FeatureEncoder, candidate_features
from adserve.outcomes.logs import LogKind, Partition, count_rows_at_most, encode_object, log_row, read_joined
from adserve.privacy.consent import ServingMode
from adserve.training.dataset import DatasetConfig, Examples, SlotOne, TrainingDataset

from devstack.fakes import InMemoryLogStore
from tests.support.log_store import ListingLogStore, write_logs
from tests.support.privacy import pseudonym
from tests.support.record_messages import NOW, decision, outcome

AS_OF = NOW + timedelta(days=3)


def build(store: InMemoryLogStore, **overrides: object) -> tuple[Examples, SlotOne, TrainingDataset]:
    """Every chosen ad an example unless `examples_from` says otherwise: most tests here are about the join
    and its window, and write no impressions; the impressions rule has its own tests."""
    settings: dict[str, object] = {
        "start": NOW - timedelta(hours=1),
        "end": AS_OF,
        "as_of": AS_OF,
        "examples_from": "choices",
    } | overrides
    dataset = TrainingDataset(store, DatasetConfig(**settings))  # type: ignore[arg-type]
    encoder = dataset.encoder
    chunks = list(dataset.chunks())
    examples = Examples.concatenate([c.examples for c in chunks], encoder.spec.num_fields)
    slot = SlotOne.concatenate(
        [c.slot_one for c in chunks], len(encoder.spec.listener_fields), len(encoder.spec.candidate_fields)
    )
    return examples, slot, dataset


def test_an_outcome_later_than_the_reward_window_counts_as_no_click() -> None:
    # Given a click 1 h after its decision and another 24 h 20 min after its decision (same hour partition)
    store = InMemoryLogStore()
    slow_at = NOW - timedelta(minutes=25)
    write_logs(
        store,
        decision(decision_id="d-fast", ads=("a-ad-1",)),
        decision(decision_id="d-slow", decided_at=slow_at, ads=("b-ad-1",)),
        outcome(decision_id="d-fast", ad_id="a-ad-1", event_type=EventType.CLICK, occurred_at=NOW + timedelta(hours=1)),
        outcome(
            decision_id="d-slow",
            ad_id="b-ad-1",
            event_type=EventType.CLICK,
            occurred_at=slow_at + timedelta(hours=24.3),
        ),
    )
    # When the dataset is built with a 24 h window
    examples, _, dataset = build(store)
    # Then only the timely click is a positive, and the late one is counted
    assert sorted(zip(examples.decided_at.tolist(), examples.labels.tolist(), strict=True)) == [
        (slow_at.timestamp(), 0),
        (NOW.timestamp(), 1),
    ]
    assert dataset.stats.read.late_outcomes == 1
    assert dataset.stats.positives == 1


def test_a_click_reported_after_the_window_counts_as_none_whenever_the_run_reads_it() -> None:
    # Given a decision clicked 1 h after it by an app offline until 2 days later (its token still valid), and
    # another decision whose click arrived at once
    offline_at, online_at = NOW + timedelta(minutes=5), NOW + timedelta(minutes=10)
    store = InMemoryLogStore()
    write_logs(
        store,
        decision(decision_id="d-offline", decided_at=offline_at),
        decision(decision_id="d-online", decided_at=online_at),
        outcome(decision_id="d-online", event_type=EventType.CLICK, occurred_at=online_at + timedelta(hours=1)),
    )
    late = outcome(
        decision_id="d-offline",
        event_type=EventType.CLICK,
        occurred_at=offline_at + timedelta(hours=1),
        received_at=offline_at + timedelta(days=2),
    )
    # When a run reads the logs at the window's end, and another once the late click is logged
    window_end = online_at + timedelta(hours=24)
    before, _, _ = build(store, end=window_end, as_of=window_end)
    write_logs(store, late, name="reported-late")
    after, _, dataset = build(store, end=window_end, as_of=AS_OF)
    # Then both label the decisions alike, the late click counted but not joined
    for examples in (before, after):
        labels = dict(zip(examples.decided_at.tolist(), examples.labels.tolist(), strict=True))
        assert labels == {offline_at.timestamp(): 0, online_at.timestamp(): 1}
    assert (dataset.stats.read.reported_late_outcomes, dataset.stats.read.late_outcomes) == (1, 0)


def test_a_wider_window_turns_the_late_click_into_a_positive() -> None:
    store = InMemoryLogStore()
    write_logs(
        store,
        decision(decision_id="d-slow", ads=("b-ad-1",)),
        outcome(
            decision_id="d-slow", ad_id="b-ad-1", event_type=EventType.CLICK, occurred_at=NOW + timedelta(hours=25)
        ),
    )
    examples, _, _ = build(store, reward_window=timedelta(hours=30))
    assert examples.labels.tolist() == [1]


def test_decisions_younger_than_the_window_are_left_out() -> None:
    # Given a decision 2 h before the end of the logs, whose click may still come
    store = InMemoryLogStore()
    young_at = AS_OF - timedelta(hours=2)
    write_logs(
        store,
        decision(decision_id="d-old", ads=("a-ad-1",)),
        decision(decision_id="d-young", decided_at=young_at, ads=("a-ad-1",)),
        outcome(decision_id="d-young", ad_id="a-ad-1", event_type=EventType.CLICK, occurred_at=young_at),
    )
    # When built as of AS_OF
    examples, slot, dataset = build(store)
    # Then only the old decision is in it
    assert len(examples) == 1
    assert len(slot) == 1
    assert examples.decided_at.tolist() == [NOW.timestamp()]
    assert dataset.config.decisions_end == AS_OF - timedelta(hours=24)


def test_the_label_can_be_completion() -> None:
    store = InMemoryLogStore()
    write_logs(
        store,
        decision(decision_id="d-1", ads=("a-ad-1", "b-ad-1")),
        outcome(decision_id="d-1", ad_id="a-ad-1", event_type=EventType.CLICK),
        outcome(decision_id="d-1", ad_id="b-ad-1", event_type=EventType.COMPLETE),
    )
    clicks, _, _ = build(store)
    completes, _, _ = build(store, label="complete")
    assert clicks.labels.tolist() == [1, 0]
    assert completes.labels.tolist() == [0, 1]


def test_malformed_lines_are_counted_and_skipped() -> None:
    # Given a decisions object and an outcomes object each holding a broken line among good ones
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-1"), outcome(decision_id="d-1", event_type=EventType.CLICK))
    good_decision = log_row(decision(decision_id="d-2")).line
    store.objects[Partition.of(LogKind.DECISIONS, NOW).object_key(["extra-1", "extra-2"])] = encode_object(
        ["{not json", good_decision]
    )
    store.objects[Partition.of(LogKind.OUTCOMES, NOW).object_key(["extra"])] = encode_object(['{"kind": "outcome"}'])
    # When the dataset is built
    examples, _, dataset = build(store)
    # Then the good rows are there and both bad lines are counted
    assert len(examples) == 2
    assert dataset.stats.read.malformed_lines == 2
    assert dataset.stats.to_dict()["log_malformed_lines"] == 2


def test_slot_one_keeps_every_candidate_and_the_logged_choice() -> None:
    store = InMemoryLogStore()
    record = decision(decision_id="d-1", ads=("a-ad-1", "b-ad-1", "c-ad-1"))
    record = record.model_copy(update={"chosen": record.chosen[1:2]})  # the policy put b first, alone
    record = record.model_copy(update={"chosen": [record.chosen[0].model_copy(update={"rank": 1})]})
    write_logs(store, record, outcome(decision_id="d-1", ad_id="b-ad-1", event_type=EventType.CLICK))
    examples, slot, dataset = build(store)
    encoder = FeatureEncoder()
    assert len(slot) == 1
    assert slot.counts.tolist() == [3]
    assert slot.logged_position.tolist() == [1]
    assert slot.rewards.tolist() == [1]
    assert slot.logged_propensity.tolist() == pytest.approx([0.9])
    # The candidate rows are exactly what the encoder makes of listener + ad features
    candidates = [c.features for c in record.inline_candidates]
    expected = encoder.encode_rows([record.listener_features] * 3, candidates, [candidate_features(None)] * 3)
    assert np.array_equal(slot.candidate_indices(dataset.ad_rows), expected)
    assert np.array_equal(examples.indices[0], expected[1])


def test_a_contextual_decision_trains_on_its_contextual_fields_and_is_marked_for_evaluation() -> None:
    # Given a personalised decision and a contextual one, logged as Decide logs them
    store = InMemoryLogStore()
    personalised = decision(decision_id="d-p")
    contextual = decision(decision_id="d-c").model_copy(
        update={"mode": ServingMode.CONTEXTUAL, "listener_hash": None, "listener_features": {"country": "SE"}}
    )
    write_logs(store, personalised, contextual)
    examples, slot, _ = build(store)
    # Then off-policy evaluation can tell them apart, and the contextual row's device is the unknown value
    assert slot.contextual.tolist() == [False, True]
    encoder = FeatureEncoder()
    device = encoder.spec.listener_fields.index("device")
    assert examples.indices[1, device] == encoder.encode_listener({})[device]
    assert examples.indices[0, device] != examples.indices[1, device]


def test_trimmed_candidate_sets_train_but_are_not_used_off_policy() -> None:
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-1").model_copy(update={"candidates_dropped": 4}))
    examples, slot, dataset = build(store)
    assert (len(examples), len(slot), dataset.stats.slot_one_trimmed) == (1, 0, 1)


def test_chunks_are_bounded_and_concatenate_to_the_whole() -> None:
    store = InMemoryLogStore()
    write_logs(store, *(decision(decision_id=f"d-{i}", decided_at=NOW + timedelta(minutes=i)) for i in range(25)))
    dataset = TrainingDataset(
        store, DatasetConfig(NOW - timedelta(hours=1), AS_OF, AS_OF, chunk_rows=10, examples_from="choices")
    )
    sizes = [len(chunk.examples) for chunk in dataset.chunks()]
    assert sizes == [10, 10, 5]
    whole, _, _ = build(store)
    assert len(whole) == 25
    assert np.all(np.diff(whole.decided_at) > 0)


def test_an_empty_range_gives_nothing() -> None:
    examples, slot, dataset = build(InMemoryLogStore())
    assert (len(examples), len(slot), dataset.stats.decisions) == (0, 0, 0)
    assert examples.indices.shape == (0, FeatureEncoder().spec.num_fields)


def test_prefetching_reads_each_object_once_and_gives_the_same_dataset() -> None:
    from dataclasses import dataclass, field

    from adserve.training.prefetch import PrefetchingReader

    @dataclass
    class CountingStore(InMemoryLogStore):
        reads: list[str] = field(default_factory=list)

        def read_object(self, key: str) -> bytes:
            self.reads.append(key)
            return super().read_object(key)

    store = CountingStore()
    write_logs(store, *(decision(decision_id=f"d-{i}", decided_at=NOW + timedelta(hours=i)) for i in range(5)))
    clicks = (
        outcome(decision_id=f"d-{i}", event_type=EventType.CLICK, occurred_at=NOW + timedelta(hours=i, minutes=5))
        for i in range(0, 5, 2)
    )
    write_logs(store, *clicks, name="o")
    plain, _, _ = build(store)
    store.reads.clear()
    with PrefetchingReader(store, workers=3) as reader:
        prefetched, _, _ = build(reader)  # type: ignore[arg-type]
    assert np.array_equal(plain.indices, prefetched.indices)
    assert prefetched.labels.tolist() == plain.labels.tolist() == [1, 0, 1, 0, 1]
    assert sorted(store.reads) == sorted(set(store.reads))
    # and counting the window's decisions by listing (the retrain schedule's check) fetches no object
    store.reads.clear()
    with PrefetchingReader(store, workers=3) as reader:
        assert count_rows_at_most(reader, LogKind.DECISIONS, NOW, NOW + timedelta(hours=5)) == 5
    assert store.reads == []


def test_the_retrain_schedule_counts_rows_by_listing_without_prefetching_the_window() -> None:
    from adserve.training.prefetch import PrefetchingReader, without_prefetch

    # Given five hours of decisions, each hour with objects named with their row count and one named before names
    # carried it (an older release's)
    store = ListingLogStore()
    for hour in range(5):
        decided = NOW + timedelta(hours=hour)
        write_logs(store, *(decision(decision_id=f"d-{hour}-{i}", decided_at=decided) for i in range(3)))
        write_logs(store, decision(decision_id=f"d-{hour}-old", decided_at=decided), name="other")
        [counted_one] = [key for key in store.objects if "-1rows" in key]
        store.objects[counted_one.replace("-1rows", "")] = store.objects.pop(counted_one)
    # When the schedule counts the window through the prefetching reader Retrain reads with
    with PrefetchingReader(store, workers=3) as reader:
        assert count_rows_at_most(without_prefetch(reader), LogKind.DECISIONS, NOW, NOW + timedelta(hours=5)) == 20
    # Then it read only the five objects that do not name their count, none of their neighbours
    assert len(store.read) == 5
    assert all("rows" not in key for key in store.read)


def test_a_window_under_an_hour_within_one_clock_hour_still_emits_the_decisions() -> None:
    # Given a decision at 13:30 and its click at 13:35, a 20-minute window and logs ending at 13:35:
    # end + window (13:55) is still in the decision's hour
    store = InMemoryLogStore()
    write_logs(
        store,
        decision(decision_id="d-1"),
        outcome(decision_id="d-1", event_type=EventType.CLICK, occurred_at=NOW + timedelta(minutes=5)),
    )
    window = timedelta(minutes=20)
    end = NOW + timedelta(minutes=5)
    # When the dataset is built
    examples, _, _ = build(store, start=NOW - timedelta(minutes=10), end=end, as_of=end + window, reward_window=window)
    # Then the decision is there, clicked
    assert examples.labels.tolist() == [1]


def test_only_chosen_ads_heard_within_the_reward_window_become_examples() -> None:
    # Given, with a 2 h reward window:
    #   d-1 chose a (impression + click) and b (never played: nothing came back)
    #   d-2 chose c (impression, no click)
    #   d-3 chose a, whose impression and click arrived 3 h later (outside the window), and c (impression)
    store = InMemoryLogStore()
    later = NOW + timedelta(hours=3)
    write_logs(
        store,
        decision(decision_id="d-1", ads=("a-ad-1", "b-ad-1")),
        decision(decision_id="d-2", ads=("c-ad-1",)),
        decision(decision_id="d-3", ads=("a-ad-1", "c-ad-1")),
        outcome(decision_id="d-1", ad_id="a-ad-1", event_type=EventType.IMPRESSION),
        outcome(decision_id="d-1", ad_id="a-ad-1", event_type=EventType.CLICK),
        outcome(decision_id="d-2", ad_id="c-ad-1", event_type=EventType.IMPRESSION),
        outcome(decision_id="d-3", ad_id="a-ad-1", event_type=EventType.IMPRESSION, occurred_at=later),
        outcome(decision_id="d-3", ad_id="a-ad-1", event_type=EventType.CLICK, occurred_at=later),
        outcome(decision_id="d-3", ad_id="c-ad-1", event_type=EventType.IMPRESSION),
    )
    window = {"reward_window": timedelta(hours=2)}
    # When the dataset is built from impressions (the default)
    heard, slot, dataset = build(store, examples_from="impressions", **window)
    # Then d-1's a (clicked), d-2's c and d-3's c are the examples; b and d-3's late a are dropped and counted
    encoder = FeatureEncoder()
    ad_of = {tuple(encoder.encode_ad({"ad_id": f"{ad}-ad-1"}).tolist()): ad for ad in "abc"}
    ad_columns = slice(
        len(encoder.spec.listener_fields), len(encoder.spec.listener_fields) + len(encoder.spec.ad_fields)
    )
    ads = [ad_of[tuple(row)] for row in heard.indices[:, ad_columns].tolist()]
    assert list(zip(ads, heard.labels.tolist(), strict=True)) == [("a", 1), ("c", 0), ("c", 0)]
    assert heard.ranks.tolist() == [1, 1, 2]
    assert (dataset.stats.dropped_no_impression, dataset.stats.examples, dataset.stats.positives) == (2, 3, 1)
    assert dataset.stats.to_dict()["dropped_no_impression"] == 2
    # And only decisions whose first ad was heard give a slot-1 view (d-3's first ad was not)
    assert slot.rewards.tolist() == [1, 0]
    # When every chosen ad is an example (the old rule), the unplayed b and the late a are non-clicks
    chosen, chosen_slot, chosen_dataset = build(store, examples_from="choices", **window)
    assert chosen.labels.tolist() == [1, 0, 0, 0, 0]
    assert chosen_slot.rewards.tolist() == [1, 0, 0]
    assert chosen_dataset.stats.dropped_no_impression == 0


def test_an_explain_requests_decision_is_skipped_and_counted() -> None:
    # Given a served decision and an explain request's, each with an impression and a click reported
    # (an explain response has no tracking URLs; the events stand for a forged or mistaken report)
    store = InMemoryLogStore()
    explained = decision(decision_id="d-explain", ads=("b-ad-1",)).model_copy(update={"explain": True})
    write_logs(
        store,
        decision(decision_id="d-1", ads=("a-ad-1",)),
        explained,
        *(
            outcome(decision_id=d, ad_id=ad, event_type=t)
            for d, ad in (("d-1", "a-ad-1"), ("d-explain", "b-ad-1"))
            for t in (EventType.IMPRESSION, EventType.CLICK)
        ),
    )
    # When the dataset is built, by either rule
    for examples_from in ("impressions", "choices"):
        examples, slot, dataset = build(store, examples_from=examples_from)
        # Then only the served decision is an example and a slot-1 view; the explain one is counted apart
        assert len(examples) == 1
        assert len(slot) == 1
        assert (dataset.stats.decisions, dataset.stats.decisions_explained) == (1, 1)
    # And the joined log (what models made elsewhere train on) leaves it out too
    assert [row.decision_id for row in read_joined(store, NOW, NOW)] == ["d-1"]


@pytest.mark.parametrize("window", [timedelta(minutes=30), timedelta(minutes=90), timedelta(hours=1)], ids=str)
def test_the_join_reads_the_outcomes_of_the_last_decisions_of_ends_hour(window: timedelta) -> None:
    # Given a decision at the end of an hour and its click just within the window, in the next hour's partition
    decided = NOW.replace(minute=59, second=59)
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-late", decided_at=decided))
    click = outcome(
        decision_id="d-late", event_type=EventType.CLICK, occurred_at=decided + window - timedelta(seconds=1)
    )
    write_logs(store, click, name="o")
    # When the join is read for that hour, ending at its start ("the hours [start, end]")
    hour = NOW.replace(minute=0)
    [row] = read_joined(store, hour, hour, attribution_window=window)
    # Then the decision comes with its click
    assert (row.decision_id, row.click) == ("d-late", True)


def test_an_erased_listeners_decisions_are_left_out_and_counted() -> None:
    # Given two listeners' clicked decisions and one without a pseudonym (no measurement consent)
    erased, kept = pseudonym("listener-erased"), pseudonym("listener-kept")
    store = InMemoryLogStore()
    write_logs(
        store,
        decision(decision_id="d-erased", ads=("a-ad-1",)).model_copy(update={"listener_hash": erased}),
        decision(decision_id="d-kept", ads=("a-ad-1",)).model_copy(update={"listener_hash": kept}),
        decision(decision_id="d-anonymous", ads=("a-ad-1",)).model_copy(update={"listener_hash": None}),
        *(
            outcome(decision_id=decision_id, ad_id="a-ad-1", event_type=EventType.CLICK)
            for decision_id in ("d-erased", "d-kept", "d-anonymous")
        ),
    )
    # When the dataset is built with the erasure ledger's pseudonyms
    examples, slot, dataset = build(store, erased=frozenset({erased, pseudonym("listener-never-seen")}))
    # Then the erased listener's decision is neither an example nor a slot-1 view, and its click joins nothing
    assert len(examples) == len(slot) == 2
    assert examples.labels.tolist() == [1, 1]
    assert dataset.stats.to_dict()["log_dropped_erased"] == 1
    assert dataset.stats.decisions == 2
    # and without the ledger the same logs give all three
    assert len(build(store)[0]) == 3


@pytest.mark.parametrize(
    "policy",
    [
        {"name": "epsilon_greedy", "epsilon": 1.5},
        {"name": "epsilon_greedy", "epsilon": -0.1},
        {"name": "squarecb", "gamma": -1.0},
        {"name": "squarecb", "gamma": "NaN"},
        {"name": "squarecb", "gamma": "Infinity"},
    ],
)
def test_a_logged_policy_out_of_its_bounds_is_a_malformed_line_not_a_failed_build(policy: dict[str, Any]) -> None:
    # Given a good decision and one whose logged policy no exploration policy can be built from
    store = InMemoryLogStore()
    write_logs(store, decision(decision_id="d-1"))
    line = json.loads(log_row(decision(decision_id="d-2")).line)
    line["policy"] = policy
    store.objects[Partition.of(LogKind.DECISIONS, NOW).object_key(["bad-policy"])] = encode_object([json.dumps(line)])
    # When the dataset is built, the bad line is counted and skipped, and the good decision is kept
    examples, _, dataset = build(store)
    assert len(examples) == 1
    assert dataset.stats.read.malformed_lines == 1
