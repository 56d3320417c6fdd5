"""The demo's truth for its simulated listeners: every listener's true click probability of every ad, computed in
one vectorised call up front (``devstack.demo.true_ctr_by_ad``), is exactly what one call per shown ad gave; and
the offline phases' draws, made for all listeners at once (``draw_each``), are the ones a ``rng.choice`` per
listener made; and the Bayes AUC of a span counts exactly the decisions made since its start."""

from datetime import UTC, datetime

import numpy as np
import pytest
from adserve.decisions.policy import EpsilonGreedy, ExplorationPolicy, SquareCB

from devstack.demo import DemoConfig, LoggedTruth, as_served, draw_each, fresh_listeners, true_ctr_by_ad


def test_the_vectorised_truth_equals_the_truth_of_each_pair() -> None:
    world = DemoConfig().world()
    listeners = fresh_listeners(world, 200, np.random.default_rng(11))
    ads_by_id = {as_served(ad)["ad_id"]: ad for ad in world.ads}
    truth = true_ctr_by_ad(world, listeners, ads_by_id)
    assert len(truth) == len(listeners)
    for listener, by_ad in zip(listeners, truth, strict=True):
        assert list(by_ad) == list(ads_by_id)
        assert by_ad == {ad_id: world.click_probability(listener, ad) for ad_id, ad in ads_by_id.items()}


@pytest.mark.parametrize("policy", [EpsilonGreedy(0.4), EpsilonGreedy(1.0), EpsilonGreedy(0.0), SquareCB(200.0)])
def test_drawing_every_row_at_once_draws_what_a_choice_per_row_draws(policy: ExplorationPolicy) -> None:
    scores = np.random.default_rng(3).random((2_000, 16)) ** 3
    available = np.ones(16, dtype=bool)
    probabilities = np.array([policy.slot_probabilities(row, available) for row in scores])
    one_by_one, at_once = np.random.default_rng(5), np.random.default_rng(5)
    chosen = [int(one_by_one.choice(16, p=row)) for row in probabilities]
    assert draw_each(probabilities, at_once).tolist() == chosen
    assert at_once.random() == one_by_one.random()  # the generator is left where the loop left it


def test_the_bayes_auc_of_a_span_counts_the_decisions_made_since_its_start() -> None:
    logged = LoggedTruth()
    start = datetime(2026, 12, 4, 1, tzinfo=UTC)
    for second, (true_prob, clicked) in enumerate([(0.9, False), (0.1, True), (0.2, False), (0.8, True), (0.3, False)]):
        logged.add(start.timestamp() - 2 + second, true_prob, clicked)
    # Before the start the truth ranks every pair wrong; from it on, every pair right.
    assert logged.bayes_auc_since(start) == 1.0
    assert logged.bayes_auc_since(datetime.fromtimestamp(start.timestamp() - 2, UTC)) == pytest.approx(2 / 6, abs=1e-6)
    assert logged.bayes_auc_since(datetime.fromtimestamp(start.timestamp() + 2, UTC)) is None  # no click left
