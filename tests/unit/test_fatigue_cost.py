"""What exposure buys in a world whose listeners tire: the simulator's fatigue and returning listeners, and
the docs' table is the committed results file's."""

import copy
import json

import numpy as np
import pytest
from adserve.outcomes.logs import read_decisions
from adserve.training.simulation import World

from devstack import fatigue_cost
from devstack.fakes import InMemoryLogStore
from devstack.generated_tables import published_table
from devstack.simulated_logs import START, TrafficConfig, simulate_traffic

LISTENER = World(5).sample_listeners(1, np.random.default_rng(1))[0]


def test_fatigue_lowers_the_click_probability_with_each_earlier_impression_and_is_off_by_default() -> None:
    tired, fresh = World(5, fatigue=0.5), World(5)
    ad = tired.ads[0]
    counts = np.array([0, 1, 4])
    probabilities = tired.click_probabilities([LISTENER] * 3, [ad] * 3, counts)
    assert probabilities[0] > probabilities[1] > probabilities[2]
    logit = np.log(probabilities / (1 - probabilities))
    assert logit[0] - logit[2] == pytest.approx(2.0)
    # A world without fatigue (the default) ignores exposure, and is the world it was before the option
    assert (
        fresh.click_probabilities([LISTENER] * 3, [ad] * 3, counts).tolist()
        == [fresh.click_probability(LISTENER, ad)] * 3
    )
    assert fresh.click_probability(LISTENER, ad) == tired.click_probability(LISTENER, ad)


def test_returning_listeners_are_capped_per_day_and_their_counts_are_logged_per_candidate() -> None:
    # Given 5 listeners making 400 decisions over 16 ads, every campaign capped at 3 a day
    store = InMemoryLogStore()
    config = TrafficConfig(decisions=400, candidates=8, max_ads=1, seed=3, audience=5, daily_cap=3)
    simulate_traffic(store, World(5, fatigue=0.5), config)
    records = list(read_decisions(store, START, START + config.span + config.span))
    # Then each record logs today's count of each candidate, never at or above the cap, and counts grow
    counts = [c.exposure for r in records for c in r.inline_candidates]
    assert all(count is not None and 0 <= count < 3 for count in counts)
    assert max(c for c in counts if c is not None) == 2
    assert {r.cap_check for r in records} == {"ok"}


def test_audience_and_cap_go_together() -> None:
    with pytest.raises(ValueError, match="go together"):
        TrafficConfig(audience=10)


def test_the_table_is_the_committed_results() -> None:
    results = json.loads(fatigue_cost.RESULTS.read_text())
    assert published_table("fatigue-cost") == fatigue_cost.markdown(results), (
        "run python -m devstack.fatigue_cost --docs-only"
    )
    assert {row["variant"] for row in results["summary"]} == set(fatigue_cost.VARIANTS)


def test_a_table_edited_by_hand_is_caught() -> None:
    results = json.loads(fatigue_cost.RESULTS.read_text())
    edited = copy.deepcopy(results)
    edited["summary"][0]["greedy_click_rate"] += 0.01
    assert fatigue_cost.markdown(edited) != published_table("fatigue-cost")
