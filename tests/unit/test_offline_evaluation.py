"""Offline evaluation: the estimators on a case computed by hand, calibration, and the promotion rule."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from adserve.decisions.policy import POLICY_NAMES, EpsilonGreedy, ExplorationPolicy, SquareCB, exploration_policy
from adserve.models.ctr_model import unseen_from
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.training.dataset import DatasetConfig, Examples, SlotOne, TrainingDataset
from adserve.training.evaluation import (
    Evaluation,
    Fold,
    HoldoutMetrics,
    PolicyEstimate,
    PromotionRule,
    doubly_robust,
    evaluate,
    expected_calibration_error,
    heard_by_candidate,
    ips,
    judge,
    prevailing_setting,
    render,
    slot_one_terms,
    snips,
    standard_errors,
    unseen_by,
)
from adserve.training.simulation import World

from devstack.fakes import InMemoryLogStore
from devstack.simulated_logs import START, TrafficConfig, simulate_traffic


def two_decisions() -> tuple[SlotOne, np.ndarray]:
    """Decision A: 2 candidates, the logger showed #0 (propensity 0.5), clicked. Decision B: 3 candidates,
    the logger showed #1 (propensity 0.25), no click. Scores double as the reward model's predictions."""
    slot = SlotOne(
        decided_at=np.array([1.0, 2.0]),
        policy_codes=np.array([0, 0], dtype=np.int8),
        policy_parameters=np.array([0.2, 0.3]),
        policy_optimism=np.zeros(2),
        listener_rows=np.zeros((2, 8), dtype=np.int32),
        offsets=np.array([0, 2, 5]),
        candidate_ads=np.arange(5, dtype=np.int32),
        candidate_rows=np.zeros((5, 1), dtype=np.int32),
        candidate_values=np.array([1.0, 1.0, 1.0, 2.0, 1.0]),
        logged_position=np.array([0, 1], dtype=np.int32),
        logged_propensity=np.array([0.5, 0.25], dtype=np.float32),
        rewards=np.array([1, 0], dtype=np.int8),
        contextual=np.array([False, True]),
    )
    return slot, np.array([0.3, 0.1, 0.1, 0.1, 0.4])


def test_ips_snips_and_dr_match_the_hand_computation() -> None:
    # Given the new policy's slot-1 distributions: A -> [0.9, 0.1] (greedy #0, eps 0.2 over 2),
    # B: expected values [0.1, 0.2, 0.4] -> greedy #2, eps 0.3 over 3 -> [0.1, 0.1, 0.8]
    slot, scores = two_decisions()
    # When the terms are computed
    terms = slot_one_terms(slot, scores, scores)
    # Then w = pi / mu = [0.9 / 0.5, 0.1 / 0.25] = [1.8, 0.4]
    assert terms.weights == pytest.approx([1.8, 0.4])
    assert ips(terms) == pytest.approx((1.8 * 1 + 0.4 * 0) / 2)  # 0.9
    assert snips(terms) == pytest.approx(1.8 / (1.8 + 0.4))
    # DR: A = 0.9*0.3 + 0.1*0.1 + 1.8*(1 - 0.3) = 1.54; B = 0.1*0.1 + 0.1*0.1 + 0.8*0.4 + 0.4*(0 - 0.1) = 0.30
    assert doubly_robust(terms) == pytest.approx((1.54 + 0.30) / 2)


def test_standard_errors_match_the_hand_computation() -> None:
    slot, scores = two_decisions()
    terms = slot_one_terms(slot, scores, scores)
    errors = standard_errors(terms)
    # IPS terms [1.8, 0]: sample sd 1.8 / sqrt(2), over sqrt(2) -> 0.9
    assert errors["ips"] == pytest.approx(0.9)
    # SNIPS 1.8 / 2.2: sqrt((1.8 * (1 - v))^2 + (0.4 * (0 - v))^2) / 2.2
    value = 1.8 / 2.2
    assert errors["snips"] == pytest.approx(np.sqrt((1.8 * (1 - value)) ** 2 + (0.4 * value) ** 2) / 2.2)
    # DR terms [1.54, 0.30]: sample sd |1.54 - 0.30| / sqrt(2), over sqrt(2) -> 0.62
    assert errors["dr"] == pytest.approx(0.62)
    estimate = PolicyEstimate.of("fm-x", terms)
    assert estimate.error("snips") == pytest.approx(round(errors["snips"], 6))
    assert "±" in render(
        Evaluation(
            new=HoldoutMetrics.of(np.array([1, 0]), np.array([0.3, 0.1])),
            new_policy=estimate,
            decisions=2,
            logging_observed=0.5,
        )
    )


def test_estimators_of_nothing_are_nan_not_errors() -> None:
    slot, scores = two_decisions()
    empty = slot.select(np.array([False, False]))
    terms = slot_one_terms(empty, scores[:0], scores[:0])
    assert all(np.isnan(f(terms)) for f in (ips, snips, doubly_robust))


def test_each_serving_mode_is_estimated_on_its_own_decisions() -> None:
    # Given decision A served personalised (w = 1.8, clicked) and B contextual (w = 0.4, no click)
    slot, scores = two_decisions()
    holdout = Examples(
        indices=np.zeros((2, 13), dtype=np.int32),
        labels=np.array([1, 0], dtype=np.int8),
        propensities=np.array([0.5, 0.25], dtype=np.float32),
        logged_scores=np.array([0.3, 0.1], dtype=np.float32),
        values=np.ones(2, dtype=np.float32),
        ranks=np.ones(2, dtype=np.int16),
        decided_at=np.array([1.0, 2.0]),
    )
    # When a model that scores every candidate as the hand computation does is evaluated
    result = evaluate(holdout, slot, np.arange(5).reshape(5, 1), ByCandidate(scores), None, ad_id_column=0)
    # Then each mode's SNIPS is its own decision's: 1 for A's click, 0 for B
    assert result.by_mode.keys() == {"personalised", "contextual"}
    assert result.by_mode["personalised"].new_policy.snips == pytest.approx(1.0)
    assert result.by_mode["contextual"].new_policy.snips == pytest.approx(0.0)
    assert (result.by_mode["personalised"].decisions, result.by_mode["contextual"].logging_observed) == (1, 0.0)
    assert "contextual: 1 decisions" in render(result)


def test_cross_fitted_folds_replay_each_decision_by_its_own_fit_at_the_latest_folds_exploration() -> None:
    # Given decision A (epsilon 0.2, logged #0 at 0.5, clicked) in a fold whose fit prefers #1, and decision B
    # (epsilon 0.3, the latest, logged #1 at 0.25, no click) in a fold whose fit scores as the hand computation
    slot, scores = two_decisions()
    slot = SlotOne(**(vars(slot) | {"candidate_rows": np.arange(5, dtype=np.int32).reshape(5, 1)}))  # ByCandidate's
    first, second = np.array([True, False]), np.array([False, True])
    prefers_one = np.array([0.1, 0.3, 0.1, 0.1, 0.4])
    nobody = HeardAds.count(np.empty(0, dtype=np.int64))
    folds = [
        Fold(slot.select(first), ByCandidate(prefers_one, "fold 1"), nobody),
        Fold(slot.select(second), ByCandidate(scores, "fold 2"), nobody),
    ]
    holdout = slot_examples(slot).select(second)
    # When the new model, which scores every candidate alike, is evaluated with the folds
    flat = ByCandidate(np.full(5, 0.2), "fm-new")
    result = evaluate(holdout, slot.select(second), np.arange(5).reshape(5, 1), flat, None, ad_id_column=0, folds=folds)
    # Then both decisions are estimated, each by its fold's fit, A at B's epsilon of 0.3:
    # A: greedy #1, so #0 has 0.3 / 2 = 0.15 and w = 0.15 / 0.5 = 0.3; B: as by hand, w = 0.1 / 0.25 = 0.4
    assert (result.decisions, result.cross_fitted) == (2, 2)
    assert result.new_policy.snips == pytest.approx(round(0.3 / (0.3 + 0.4), 6))
    assert result.new_policy.ips == pytest.approx(0.3 / 2)
    assert result.new_policy.version == "fm-new"
    # while the holdout's metrics stay the new model's own
    assert result.new.rows == 1
    assert result.to_dict()["off_policy"]["cross_fitted_folds"] == 2
    assert "every fold of 2" in render(result)


def test_cross_fitted_decisions_replay_at_the_setting_that_logged_most_of_the_latest_fold() -> None:
    slot, scores = two_decisions()  # epsilon 0.2 and 0.3
    a, b = slot.select(np.array([True, False])), slot.select(np.array([False, True]))
    # Of equal shares the greatest setting, whatever the decisions' order
    assert prevailing_setting(slot) == prevailing_setting(SlotOne.concatenate([b, a], 8, 1)) == (0, 0.3, 0.0)
    # and of unequal ones the most common, not the latest decision's
    mostly = SlotOne.concatenate([a, a, b], 8, 1)
    assert mostly.decided_at.tolist() == [1.0, 1.0, 2.0]
    assert prevailing_setting(mostly) == (0, 0.2, 0.0)
    # Every decision replayed at it is each decision replayed as if it had been logged so
    replayed = slot_one_terms(slot, scores, scores, replay_at=(0, 0.3, 0.0))
    as_if = SlotOne(**(vars(slot) | {"policy_parameters": np.array([0.3, 0.3])}))
    assert replayed.target_probability.tolist() == slot_one_terms(as_if, scores, scores).target_probability.tolist()
    assert replayed.target_probability.tolist() != slot_one_terms(slot, scores, scores).target_probability.tolist()


def slot_examples(slot: SlotOne) -> Examples:
    """One example per decision of ``slot``: its logged ad, label and time."""
    m = len(slot)
    return Examples(
        indices=np.zeros((m, 13), dtype=np.int32),
        labels=slot.rewards.copy(),
        propensities=slot.logged_propensity.copy(),
        logged_scores=np.full(m, 0.1, dtype=np.float32),
        values=np.ones(m, dtype=np.float32),
        ranks=np.ones(m, dtype=np.int16),
        decided_at=slot.decided_at.copy(),
    )


@dataclass
class ByCandidate:
    """Scores candidate rows by their last index column (the ad table here is the candidate's own number)."""

    scores: np.ndarray
    version: str = "by-candidate"

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores[indices[:, -1]])


def test_expected_calibration_error_by_hand() -> None:
    # Two bins of two rows: |0 - 0.15| and |1 - 0.75|, each weighing one half
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.1, 0.2, 0.6, 0.9])
    assert expected_calibration_error(labels, probs, bins=2) == pytest.approx(0.2)
    assert expected_calibration_error(labels, labels.astype(float), bins=2) == pytest.approx(0.0)


def evaluation(new_snips: float, champion_snips: float | None, *, observed: float = 0.02) -> Evaluation:
    metrics = HoldoutMetrics(rows=100, positives=5, auc=0.7, log_loss=0.2, ece=0.01)
    return Evaluation(
        new=metrics,
        new_policy=PolicyEstimate("fm-new", ips=new_snips, snips=new_snips, dr=new_snips),
        decisions=100,
        logging_observed=observed,
        champion=None if champion_snips is None else metrics,
        champion_policy=None
        if champion_snips is None
        else PolicyEstimate("fm-old", ips=champion_snips, snips=champion_snips, dr=champion_snips),
    )


def test_the_new_model_must_beat_the_champion_by_the_margin() -> None:
    rule = PromotionRule(estimator="snips", margin=0.02)
    assert judge(evaluation(0.0205, 0.0200), rule).promote  # +2.5%
    refused = judge(evaluation(0.0203, 0.0200), rule)  # +1.5%
    assert not refused.promote
    assert refused.baseline == "champion fm-old"
    assert refused.reason == "snips 0.02030 < champion fm-old 0.02000 with a margin of 0.02: 0.02040"


def test_without_a_champion_the_baseline_is_the_logging_policys_observed_rate() -> None:
    rule = PromotionRule(estimator="dr", margin=0.1)
    assert judge(evaluation(0.023, None), rule).promote  # 0.023 >= 0.02 x 1.1
    assert not judge(evaluation(0.021, None), rule).promote


def test_no_holdout_decisions_never_promotes() -> None:
    none = replace(evaluation(float("nan"), 0.02), decisions=0)
    verdict = judge(none, PromotionRule())
    assert not verdict.promote
    assert verdict.reason == "no holdout decisions to estimate the policies on"


def test_decisions_without_an_estimate_never_promote_and_say_so() -> None:
    verdict = judge(evaluation(float("nan"), 0.02), PromotionRule())
    assert not verdict.promote
    assert verdict.reason.startswith("no snips estimate (nan against 0.02): the logged choices' weights sum to 0")


@pytest.mark.parametrize(
    ("new", "champion", "estimator"),
    [
        (0.0, 0.0, "snips"),  # a tie at zero: no click on the decisions judged shows nothing
        (-0.0101, -0.01, "dr"),  # below a negative DR baseline: the margin must not lower the bar
        (float("inf"), float("inf"), "ips"),  # a weight of 1 / 0 from a zero propensity
    ],
)
def test_no_gain_over_the_champion_is_not_promoted(new: float, champion: float, estimator: str) -> None:
    rule = PromotionRule(estimator=estimator, margin=0.02)  # type: ignore[arg-type]
    assert not judge(evaluation(new, champion), rule).promote


def test_a_gain_over_a_negative_baseline_by_the_margin_is_promoted() -> None:
    verdict = judge(evaluation(-0.0097, -0.01), PromotionRule(estimator="dr", margin=0.02))
    assert verdict.promote
    assert verdict.reason == "dr -0.00970 >= champion fm-old -0.01000 with a margin of 0.02: -0.00980"


def test_a_tie_says_it_is_no_gain() -> None:
    verdict = judge(evaluation(0.0, 0.0), PromotionRule())
    assert verdict.reason == "snips 0.00000 ties champion fm-old 0.00000 with a margin of 0.02: 0.00000, no gain"


def test_an_observed_rate_of_zero_is_a_baseline_not_a_missing_one() -> None:
    verdict = judge(evaluation(0.0, None, observed=0.0), PromotionRule())
    assert (verdict.promote, verdict.baseline_value) == (False, 0.0)
    assert "no holdout decisions" not in verdict.reason


def test_the_table_names_every_policy_and_the_verdict() -> None:
    table = render(evaluation(0.0205, 0.02), judge(evaluation(0.0205, 0.02), PromotionRule()))
    for expected in ("new fm-new", "champion fm-old", "logging policy (observed)", "SNIPS", "promotion: yes"):
        assert expected in table


@pytest.mark.parametrize("uniform", [SquareCB(0.0), EpsilonGreedy(1.0)], ids=["squarecb_0", "epsilon_greedy_1"])
def test_decisions_logged_uniformly_replay_each_model_greedy_so_a_better_model_can_be_promoted(
    uniform: ExplorationPolicy,
) -> None:
    # Given four decisions logged uniformly over two candidates (the bootstrap model's round with a gamma scale):
    # candidate #0 was clicked both times it was shown, #1 never
    code = POLICY_NAMES.index(uniform.name)
    slot = SlotOne(
        decided_at=np.arange(4.0),
        policy_codes=np.full(4, code, dtype=np.int8),
        policy_parameters=np.full(4, uniform.parameter),
        policy_optimism=np.zeros(4),
        listener_rows=np.zeros((4, 8), dtype=np.int32),
        offsets=np.arange(0, 9, 2),
        candidate_ads=np.arange(8, dtype=np.int32),
        candidate_rows=np.zeros((8, 1), dtype=np.int32),
        candidate_values=np.ones(8),
        logged_position=np.array([0, 1, 0, 1], dtype=np.int32),
        logged_propensity=np.full(4, 0.5, dtype=np.float32),
        rewards=np.array([1, 0, 1, 0], dtype=np.int8),
        contextual=np.zeros(4, dtype=bool),
    )
    learned = np.tile([0.3, 0.1], 4)  # prefers #0
    # When a model that learned #0 is better and one that learned the opposite are replayed
    good = PolicyEstimate.of("good", slot_one_terms(slot, learned, learned))
    bad = PolicyEstimate.of("bad", slot_one_terms(slot, learned[::-1].copy(), learned))
    # Then each is estimated as its greedy choice (replayed uniformly, both would be the observed 0.5)
    assert (good.snips, bad.snips) == (1.0, 0.0)
    better = Evaluation(
        new=HoldoutMetrics(rows=4, positives=2, auc=None, log_loss=None, ece=None),
        new_policy=good,
        decisions=4,
        logging_observed=0.5,
        champion_policy=bad,
    )
    assert judge(better, PromotionRule()).promote


def logged_distribution(slot: SlotOne, i: int, expected_values: np.ndarray) -> np.ndarray:
    """Decision i's slot-1 distribution under its own logged policy, ranking by `expected_values`."""
    policy = exploration_policy(POLICY_NAMES[slot.policy_codes[i]], float(slot.policy_parameters[i]))
    return policy.slot_probabilities(expected_values, np.ones(expected_values.size, dtype=bool))


WORLD = World(seed=3, n_advertisers=4, campaigns_per_advertiser=1, ads_per_campaign=2, base_ctr=0.04)


def truth_logged(traffic: TrafficConfig) -> tuple[TrainingDataset, SlotOne, np.ndarray]:
    """``WORLD``'s traffic logged by the real serving policy with the truth itself as the logging model (so its
    distribution can be recomputed from the candidates): the dataset, its slot-1 view and each candidate's truth."""

    def logging_model(listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:
        return WORLD.click_probabilities(listeners, ads)

    store = InMemoryLogStore()
    truth = simulate_traffic(store, WORLD, traffic, scorer=logging_model)
    window = timedelta(minutes=30)
    end = START + traffic.span
    dataset = TrainingDataset(store, DatasetConfig(START, end, end + window, reward_window=window))
    spec = dataset.encoder.spec
    slot = SlotOne.concatenate(
        [c.slot_one for c in dataset.chunks()], len(spec.listener_fields), len(spec.candidate_fields)
    )
    return dataset, slot, truth.true_ctr(slot.candidate_indices(dataset.ad_rows))


@pytest.mark.parametrize("logging_policy", [EpsilonGreedy(0.3), SquareCB(20.0)], ids=["epsilon_greedy", "squarecb"])
def test_slot_one_replays_simulated_logs_exactly_and_ips_is_unbiased_for_another_policy(
    logging_policy: ExplorationPolicy,
) -> None:
    # Given logs of the real serving policy (two slots, so slot 1 must be told apart from slot 2) whose
    # logging model is the truth itself
    traffic = TrafficConfig(
        decisions=3_000, span=timedelta(hours=3), candidates=8, max_ads=2, exploration=logging_policy, seed=5
    )
    _, slot, true = truth_logged(traffic)
    assert len(slot) == traffic.decisions
    # Then every logged propensity is the logging policy's slot-1 probability of the ad at logged_position
    logging = np.concatenate(
        [
            logged_distribution(slot, i, true[lo:hi] * slot.candidate_values[lo:hi])
            for i, (lo, hi) in enumerate(zip(slot.offsets[:-1], slot.offsets[1:], strict=True))
        ]
    )
    logged = slot.offsets[:-1] + slot.logged_position
    assert slot.logged_propensity == pytest.approx(logging[logged], rel=1e-5)
    # And the rewards belong to the logged ad (its true CTR explains the click rate)
    assert float(slot.rewards.mean()) == pytest.approx(float(true[logged].mean()), rel=0.15)
    # When a different policy (the truth reversed: it prefers the least clicked ads) is evaluated
    reverse = 1.0 / true
    terms = slot_one_terms(slot, reverse, reverse)
    values = np.add.reduceat(
        np.concatenate(
            [
                logged_distribution(slot, i, reverse[lo:hi] * slot.candidate_values[lo:hi])
                for i, (lo, hi) in enumerate(zip(slot.offsets[:-1], slot.offsets[1:], strict=True))
            ]
        )
        * true,
        slot.offsets[:-1],
    )
    # Then IPS with the expected reward of the logged ad (no click noise) recovers its true value
    expected_reward_ips = float(np.mean(terms.weights * true[logged]))
    assert expected_reward_ips == pytest.approx(float(values.mean()), rel=0.1)
    assert float(values.mean()) < 0.8 * float(true[logged].mean())  # a policy that really differs


def test_decisions_logged_with_optimism_replay_exactly_with_the_logging_models_counts() -> None:
    # Given logs of SquareCB with optimism whose logging model is the truth, and heard a few ads often, one never
    heard = {ad["ad_id"]: float(count) for ad, count in zip(WORLD.ads, [900, 40, 0, 300, 5, 900, 120, 60], strict=True)}
    traffic = TrafficConfig(
        decisions=1_000,
        span=timedelta(hours=3),
        candidates=8,
        max_ads=2,
        exploration=SquareCB(50.0, optimism=1.0),
        heard=heard,
        seed=5,
    )
    dataset, slot, true = truth_logged(traffic)
    encoder = dataset.encoder
    spec = encoder.spec
    # Then every decision names the optimism
    assert slot.policy_optimism.tolist() == [1.0] * traffic.decisions
    # And replaying the logging model, with the counts it logged by, gives back every logged propensity exactly
    column = ad_id_column(spec, in_ad_rows=True)
    counted = HeardAds.count(
        np.repeat([encoder.encode_ad(ad)[column] for ad in WORLD.ads], [int(heard[ad["ad_id"]]) for ad in WORLD.ads])
    )
    model = CountingTruth(counted)
    terms = slot_one_terms(slot, true, true, heard_by_candidate(slot, dataset.ad_rows, model, column))
    assert terms.target_probability == pytest.approx(slot.logged_propensity.astype(np.float64), rel=1e-5)
    # While replayed without the counts (a model that counted nothing: no optimism), they differ
    plain = slot_one_terms(slot, true, true)
    assert plain.target_probability != pytest.approx(slot.logged_propensity.astype(np.float64), rel=1e-3)


@dataclass
class CountingTruth:
    """A trained model that heard ``heard_ads``; only its counts are replayed (the terms take the truth as scores)."""

    heard_ads: HeardAds
    version: str = "truth"
    logged_decisions: int = 1_000

    def predict(self, indices: np.ndarray) -> np.ndarray:
        raise AssertionError("not scored: slot_one_terms is given the truth")


def test_a_model_learned_nothing_from_its_holdout_on_or_after_the_window_it_was_refitted_on() -> None:
    window = {
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-03T00:00:00+00:00",
        "validation_start": "2026-01-02T09:00:00+00:00",
        "holdout_start": "2026-01-02T12:00:00+00:00",
    }
    holdout_start = datetime(2026, 1, 2, 12, tzinfo=UTC).timestamp()
    end = datetime(2026, 1, 3, tzinfo=UTC).timestamp()
    # A fit on the train segment saw nothing of its holdout (the validation segment chose its epochs)
    assert unseen_from({"training_window": window}) == holdout_start
    # A refit learned from every decision of its window, the last one included
    assert unseen_from({"training_window": window, "refit_on_all": {"rows": 10}}) == math.nextafter(end, math.inf)
    # The bootstrap model learned from no logged decision
    assert unseen_from({"version": "bootstrap-0c79ce647124"}) is None
    # And a window a manifest from elsewhere does not give as aware ISO 8601 says nothing (judged on every decision)
    unreadable: list[object] = ["last week", {"holdout_start": "yesterday"}, {"holdout_start": "2026-01-02T12:00"}, []]
    for garbled in unreadable:
        assert unseen_from({"training_window": garbled}) is None


def test_decisions_are_unseen_by_a_model_from_its_time_on_and_all_unseen_by_one_that_does_not_say() -> None:
    @dataclass
    class Refitted:
        unseen_from: float | None
        version: str = "fm-x"

        def predict(self, indices: np.ndarray) -> np.ndarray:
            raise AssertionError("not scored")

    decided_at = np.array([10.0, 20.0, 30.0])
    assert unseen_by(Refitted(20.0), decided_at).tolist() == [False, True, True]
    assert unseen_by(Refitted(None), decided_at).tolist() == [True, True, True]
    assert unseen_by(CountingTruth(HeardAds.count(np.zeros(1, dtype=np.int64))), decided_at).tolist() == [True] * 3
