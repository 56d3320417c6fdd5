"""The epsilon-greedy slate policy: distributions, one ad per advertiser, exact propensities."""

import random
from collections import Counter

import numpy as np
import pytest
from adserve.decisions.policy import choose_slate, slot_probabilities


def test_slot_distribution_sums_to_one_and_favours_the_best() -> None:
    values = np.array([0.1, 0.5, 0.3])
    probabilities = slot_probabilities(values, np.ones(3, dtype=bool), epsilon=0.3)
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities.tolist() == pytest.approx([0.1, 0.8, 0.1])


def test_unavailable_candidates_get_no_probability() -> None:
    probabilities = slot_probabilities(np.array([0.9, 0.5, 0.3]), np.array([False, True, True]), epsilon=0.2)
    assert probabilities.tolist() == pytest.approx([0.0, 0.9, 0.1])


def test_without_exploration_the_slate_is_sorted_by_expected_value() -> None:
    values = np.array([0.2, 0.9, 0.5, 0.7])
    slate = choose_slate(values, ["a", "b", "c", "d"], 3, epsilon=0.0, rng=random.Random(1))
    assert [choice.index for choice in slate] == [1, 3, 2]
    assert [choice.rank for choice in slate] == [1, 2, 3]
    assert all(choice.propensity == 1.0 for choice in slate)


def test_a_slate_never_holds_two_ads_of_one_advertiser() -> None:
    values = np.array([0.9, 0.8, 0.7, 0.1])
    rng = random.Random(7)
    for _ in range(200):
        slate = choose_slate(values, ["a", "a", "b", "b"], 4, epsilon=0.5, rng=rng)
        assert len(slate) == 2
        assert {["a", "a", "b", "b"][choice.index] for choice in slate} == {"a", "b"}


def test_propensities_match_the_observed_choice_frequencies() -> None:
    values = np.array([0.1, 0.6, 0.3, 0.2])
    advertisers = ["a", "b", "c", "d"]
    rng = random.Random(42)
    draws = 20_000
    first_slot: Counter[int] = Counter()
    logged: dict[int, float] = {}
    for _ in range(draws):
        first = choose_slate(values, advertisers, 2, epsilon=0.2, rng=rng)[0]
        first_slot[first.index] += 1
        logged[first.index] = first.propensity
    assert sum(logged.values()) == pytest.approx(1.0)
    for index, propensity in logged.items():
        assert first_slot[index] / draws == pytest.approx(propensity, abs=0.015)


def test_second_slot_propensity_is_conditional_on_the_first() -> None:
    values = np.array([0.9, 0.6, 0.3])
    rng = random.Random(3)
    for _ in range(500):
        first, second = choose_slate(values, ["a", "b", "c"], 2, epsilon=0.3, rng=rng)
        remaining = np.ones(3, dtype=bool)
        remaining[first.index] = False
        expected = slot_probabilities(values, remaining, 0.3)[second.index]
        assert second.propensity == pytest.approx(expected)


def test_an_empty_pool_gives_an_empty_slate() -> None:
    assert choose_slate(np.zeros(0), [], 3, epsilon=0.1, rng=random.Random(0)) == []


def test_epsilon_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        choose_slate(np.ones(2), ["a", "b"], 1, epsilon=1.5, rng=random.Random(0))
