"""The slate policies (epsilon-greedy, SquareCB): distributions, one ad per advertiser, exact propensities."""

import math
import random
from collections import Counter

import numpy as np
import pytest
from adserve.decisions.policy import (
    FEW_CANDIDATES,
    EpsilonGreedy,
    ExplorationPolicy,
    SquareCB,
    _array_slate,
    _listed_slate,
    _pairwise_sum,
    choose_slate,
    exploration_policy,
    growing_gamma,
    logged_policy,
    relative_uncertainty,
)
from adserve.outcomes.decision_records import LoggedPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

POLICIES = [EpsilonGreedy(0.2), SquareCB(10.0), SquareCB(0.0)]
IDS = ["epsilon_greedy", "squarecb", "squarecb_uniform"]


def test_epsilon_greedy_slot_distribution_sums_to_one_and_favours_the_best() -> None:
    values = np.array([0.1, 0.5, 0.3])
    probabilities = EpsilonGreedy(0.3).slot_probabilities(values, np.ones(3, dtype=bool))
    assert probabilities.tolist() == pytest.approx([0.1, 0.8, 0.1])


def test_squarecb_explores_by_the_relative_value_gap() -> None:
    # Best 0.5; gaps (0.5 - 0.1) / 0.5 = 0.8 and (0.5 - 0.3) / 0.5 = 0.4; K = 3, gamma = 10
    values = np.array([0.1, 0.5, 0.3])
    probabilities = SquareCB(10.0).slot_probabilities(values, np.ones(3, dtype=bool))
    low, close = 1 / (3 + 10 * 0.8), 1 / (3 + 10 * 0.4)
    assert probabilities.tolist() == pytest.approx([low, 1 - low - close, close])
    # Scaling every value (another currency, another CTR level) changes nothing
    scaled = SquareCB(10.0).slot_probabilities(values * 37.0, np.ones(3, dtype=bool))
    assert scaled.tolist() == pytest.approx(probabilities.tolist())


def test_squarecb_explores_less_as_gamma_grows_and_is_uniform_at_zero() -> None:
    values = np.array([0.1, 0.5, 0.3, 0.45])
    available = np.ones(4, dtype=bool)
    assert SquareCB(0.0).slot_probabilities(values, available).tolist() == pytest.approx([0.25] * 4)
    greedy_share = [SquareCB(gamma).slot_probabilities(values, available)[1] for gamma in (1.0, 10.0, 100.0, 1e4)]
    assert greedy_share == sorted(greedy_share)
    assert greedy_share[-1] > 0.99


def test_growing_gamma_is_uniform_for_a_model_of_no_data_and_grows_as_the_square_root_of_the_data() -> None:
    assert growing_gamma(2.0, 0) == 0.0  # the bootstrap: SquareCB(0) is uniform
    assert growing_gamma(2.0, 10_000) == pytest.approx(200.0)
    assert growing_gamma(2.0, 40_000) == pytest.approx(2 * growing_gamma(2.0, 10_000))
    with pytest.raises(ValueError, match="negative"):
        growing_gamma(-1.0, 10)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_unavailable_candidates_get_no_probability(policy: ExplorationPolicy) -> None:
    probabilities = policy.slot_probabilities(np.array([0.9, 0.5, 0.3]), np.array([False, True, True]))
    assert probabilities[0] == 0.0
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[1] >= probabilities[2] > 0.0


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=40),
    spreads=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=40, max_size=40),
    policy=st.sampled_from(
        [
            EpsilonGreedy(0.0),
            EpsilonGreedy(0.05),
            EpsilonGreedy(1.0),
            SquareCB(0.0),
            SquareCB(25.0),
            SquareCB(1e6),
            SquareCB(50.0, optimism=2.0),
        ]
    ),
)
def test_no_first_slot_choice_is_less_likely_than_the_policys_least_chosen_probability(
    values: list[float], spreads: list[float], policy: ExplorationPolicy
) -> None:
    """What the trainer holds a logged first choice's propensity to (``DatasetStats.slot_one_impossible``)."""
    expected = np.array(values)
    available = np.ones(len(values), dtype=bool)
    probabilities = policy.slot_probabilities(expected, available, np.array(spreads[: len(values)]))
    chosen = probabilities[probabilities > 0.0]
    assert chosen.min() >= policy.least_chosen_probability(len(values)) * (1.0 - 1e-9)


@pytest.mark.parametrize("policy", [EpsilonGreedy(0.0), SquareCB(1e12)], ids=["epsilon_0", "squarecb_huge_gamma"])
def test_without_exploration_the_slate_is_sorted_by_expected_value(policy: ExplorationPolicy) -> None:
    values = np.array([0.2, 0.9, 0.5, 0.7])
    slate = choose_slate(values, ["a", "b", "c", "d"], 3, policy, rng=random.Random(1))
    assert [choice.index for choice in slate] == [1, 3, 2]
    assert [choice.rank for choice in slate] == [1, 2, 3]
    assert all(choice.propensity == pytest.approx(1.0) for choice in slate)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_a_slate_never_holds_two_ads_of_one_advertiser(policy: ExplorationPolicy) -> None:
    values = np.array([0.9, 0.8, 0.7, 0.1])
    rng = random.Random(7)
    for _ in range(200):
        slate = choose_slate(values, ["a", "a", "b", "b"], 4, policy, rng=rng)
        assert len(slate) == 2
        assert {["a", "a", "b", "b"][choice.index] for choice in slate} == {"a", "b"}


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_propensities_match_the_empirical_choice_frequencies_per_rank_with_ties(policy: ExplorationPolicy) -> None:
    # Given values with ties (at the top and below it) and two ads of one advertiser
    values = np.array([0.6, 0.1, 0.6, 0.3, 0.3, 0.2])
    advertisers = ["a", "b", "c", "d", "d", "e"]
    rng = random.Random(42)
    draws = 20_000
    # When many slates of three are drawn, counting each (rank, ad given the ads above) and its propensity
    seen: Counter[tuple[int, tuple[int, ...], int]] = Counter()
    above_seen: Counter[tuple[int, tuple[int, ...]]] = Counter()
    reported: dict[tuple[int, tuple[int, ...], int], float] = {}
    for _ in range(draws):
        above: tuple[int, ...] = ()
        for choice in choose_slate(values, advertisers, 3, policy, rng):
            key = (choice.rank, above, choice.index)
            seen[key] += 1
            above_seen[choice.rank, above] += 1
            assert reported.setdefault(key, choice.propensity) == choice.propensity  # a function of the context
            above = (*above, choice.index)
    # Then in each context (rank, ads above) seen at least 400 times, every ad's empirical frequency is
    # within 4.5 binomial standard errors of its propensity, the policy's exact distribution there
    contexts = 0
    for (rank, above), n in above_seen.items():
        if n < 400:
            continue
        contexts += 1
        available = np.ones(len(values), dtype=bool)
        for index in above:
            available &= np.array(advertisers) != advertisers[index]
        exact = policy.slot_probabilities(values, available)
        assert exact.sum() == pytest.approx(1.0)
        for index, p in enumerate(exact.tolist()):
            count = seen[rank, above, index]
            if count:
                assert reported[rank, above, index] == pytest.approx(p, rel=1e-12)
            error = 4.5 * math.sqrt(p * (1 - p) / n)
            assert abs(count / n - p) <= error, (rank, above, index, p, count / n)
    assert contexts >= 3


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_second_slot_propensity_is_conditional_on_the_first(policy: ExplorationPolicy) -> None:
    values = np.array([0.9, 0.6, 0.3])
    rng = random.Random(3)
    for _ in range(500):
        first, second = choose_slate(values, ["a", "b", "c"], 2, policy, rng=rng)
        remaining = np.ones(3, dtype=bool)
        remaining[first.index] = False
        expected = policy.slot_probabilities(values, remaining)[second.index]
        assert second.propensity == pytest.approx(expected)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_an_empty_pool_gives_an_empty_slate(policy: ExplorationPolicy) -> None:
    assert choose_slate(np.zeros(0), [], 3, policy, rng=random.Random(0)) == []


class TopOfRange(random.Random):
    """A draw of u x total that rounds up to the total (here u itself is 1.0)."""

    def random(self) -> float:
        return 1.0


def test_a_draw_rounded_up_to_the_total_takes_the_last_candidate_with_a_probability() -> None:
    # Given three candidates, the third by the first one's advertiser, and draws at the very top of the range
    values = np.array([3.0, 2.0, 1.0])
    # When the slate is filled
    choices = choose_slate(values, ["x", "y", "x"], 3, EpsilonGreedy(1.0), TopOfRange())
    # Then each slot takes the last candidate still available, never one past it or an unavailable one
    assert [(choice.index, choice.rank) for choice in choices] == [(2, 1), (1, 2)]
    assert [choice.propensity for choice in choices] == [1 / 3, 1.0]


def test_settings_outside_their_range_are_refused() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(1.5)
    with pytest.raises(ValueError, match="gamma"):
        SquareCB(-1.0)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_the_logged_policy_rebuilds_the_same_policy(policy: ExplorationPolicy) -> None:
    logged = LoggedPolicy.model_validate_json(policy.logged().model_dump_json())
    assert logged_policy(logged) == policy
    assert exploration_policy(policy.name, policy.parameter) == policy


def test_a_logged_policy_without_its_parameter_is_invalid() -> None:
    with pytest.raises(ValueError, match="gamma"):
        LoggedPolicy(name="squarecb", epsilon=0.1)


VALUES = st.sampled_from([0.0, 0.5, 0.25, 1e-3]) | st.floats(0.0, 1.0) | st.floats(0.0, 50.0)
"""Expected values with ties (each sampled value recurs), zeros and a CPM's range."""

POLICY_STRATEGY = st.one_of(
    st.floats(0.0, 1.0).map(EpsilonGreedy),
    st.builds(SquareCB, st.floats(0.0, 1e4), st.sampled_from([0.0, 0.5, 3.0])),
)


@settings(max_examples=400, deadline=None)
@given(
    candidates=st.lists(
        st.tuples(VALUES, st.integers(0, 6), st.sampled_from([0.0, 1.0, 30.0, 5_000.0])),
        min_size=1,
        max_size=FEW_CANDIDATES,
    ),
    policy=POLICY_STRATEGY,
    slots=st.integers(1, 5),
    seed=st.integers(0, 2**32),
    top_of_range=st.booleans(),
)
def test_a_few_candidates_on_lists_get_the_very_choices_and_propensities_of_the_arrays(
    candidates: list[tuple[float, int, float]],
    policy: ExplorationPolicy,
    slots: int,
    seed: int,
    top_of_range: bool,
) -> None:
    # Given a few candidates (advertisers shared, some ads never heard) and one stream of draws for each path
    values = np.array([value for value, _, _ in candidates])
    advertisers = [advertiser for _, advertiser, _ in candidates]
    heard = np.array([impressions for _, _, impressions in candidates])
    uncertainty = relative_uncertainty(np.clip(values, 0.0, 1.0), heard)

    def draws() -> random.Random:
        return TopOfRange() if top_of_range else random.Random(seed)

    # When the slate is chosen on numpy arrays and on Python lists
    array_trace: list[np.ndarray] = []
    listed_trace: list[np.ndarray] = []
    on_arrays = _array_slate(values, advertisers, slots, policy, draws(), uncertainty=uncertainty, trace=array_trace)
    on_lists = _listed_slate(
        values.tolist(), advertisers, slots, policy, draws(), uncertainty=uncertainty.tolist(), trace=listed_trace
    )
    # Then the choices, their propensities and every slot's distribution are the same to the bit
    assert on_lists == on_arrays
    assert [trace.tobytes() for trace in listed_trace] == [trace.tobytes() for trace in array_trace]
    # And Decide's entry point takes the lists for these few candidates, with the same result
    assert choose_slate(values, advertisers, slots, policy, draws(), uncertainty=uncertainty) == on_arrays


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES | st.floats(-1e6, 1e6), max_size=128))
def test_the_pairwise_sum_is_numpys_to_the_bit(values: list[float]) -> None:
    assert _pairwise_sum(values).hex() == float(np.array(values, dtype=np.float64).sum()).hex()


def test_the_pairwise_sum_refuses_what_numpy_sums_by_halves() -> None:
    with pytest.raises(ValueError, match="128"):
        _pairwise_sum([1.0] * 129)
