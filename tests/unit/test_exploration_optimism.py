"""SquareCB's optimism: gaps measured from an upper bound of each ad's value, by the impressions a model heard."""

import json
import math
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.core.errors import ModelLoadError
from adserve.decisions.policy import (
    SquareCB,
    choose_slate,
    logged_policy,
    relative_uncertainty,
    served_exploration,
)
from adserve.decisions.service import PolicySettings
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from adserve.models.heard_ads import HeardAds, ad_id_column
from adserve.outcomes.decision_records import LoggedPolicy
from adserve.training.dataset import Examples, SlotOne
from adserve.training.evaluation import slot_one_terms
from adserve.training.retraining import heard_ads

from devstack.fakes import RecordingDecisionLog
from tests.support.builders import campaign, decision_request
from tests.support.decision_service import in_memory_service

BOOTSTRAP = Path(__file__).resolve().parents[2] / "layers" / "model" / "bootstrap"
ALL = np.ones(4, dtype=bool)


def test_the_gap_is_measured_from_the_upper_bound_and_an_ad_never_heard_is_explored_as_the_best() -> None:
    # Given four ads, the best at 0.10 and the others below it by 20%, 50% and 50%
    values = np.array([0.10, 0.08, 0.05, 0.05])
    uncertainty = np.array([0.1, 0.5, 0.2, np.inf])  # the last: no impression of it was heard
    probabilities = SquareCB(100.0, optimism=1.0).slot_probabilities(values, ALL, uncertainty)
    # Then each gap shrinks by optimism x relative value x uncertainty (0.2 - 0.8 x 0.5 < 0: none left),
    # the unheard ad gets no gap at all, and the best ad keeps the rest
    gaps = [0.0, 0.0, 0.5 - 0.5 * 0.2, 0.0]
    expected = [1 / (4 + 100.0 * gap) for gap in gaps]
    assert probabilities[1:].tolist() == pytest.approx(expected[1:])
    assert probabilities[0] == pytest.approx(1 - sum(expected[1:]))
    assert probabilities.sum() == pytest.approx(1.0)


def test_without_optimism_or_without_uncertainty_it_is_plain_squarecb() -> None:
    values = np.array([0.10, 0.08, 0.05, 0.02])
    plain = SquareCB(100.0).slot_probabilities(values, ALL)
    uncertainty = np.array([0.3, 0.3, np.inf, 0.1])
    assert SquareCB(100.0).slot_probabilities(values, ALL, uncertainty).tolist() == plain.tolist()
    assert SquareCB(100.0, optimism=2.0).slot_probabilities(values, ALL).tolist() == plain.tolist()
    with pytest.raises(ValueError, match="optimism"):
        SquareCB(100.0, optimism=-1.0)


def test_relative_uncertainty_is_a_binomial_estimates_relative_standard_error() -> None:
    scores = np.array([0.05, 0.05, 0.2, 0.1])
    heard = np.array([400.0, 1600.0, 100.0, 0.0])
    assert relative_uncertainty(scores, heard)[:3].tolist() == pytest.approx(
        [math.sqrt(0.95 / 20), math.sqrt(0.95 / 80), math.sqrt(0.8 / 20)]
    )
    assert math.isinf(relative_uncertainty(scores, heard)[3])
    # Four times the impressions halve it
    assert relative_uncertainty(scores, heard)[0] == pytest.approx(2 * relative_uncertainty(scores, heard)[1])


def test_propensities_with_optimism_match_the_empirical_choice_frequencies_with_ties() -> None:
    # Given ties at the top, two ads of one advertiser and one ad never heard
    values = np.array([0.6, 0.1, 0.6, 0.3, 0.3, 0.2])
    uncertainty = np.array([0.1, 0.4, 0.1, 0.9, 0.05, np.inf])
    advertisers = ["a", "b", "c", "d", "d", "e"]
    policy = SquareCB(20.0, optimism=1.0)
    rng = random.Random(5)
    draws = 20_000
    seen: Counter[tuple[int, tuple[int, ...], int]] = Counter()
    contexts: Counter[tuple[int, tuple[int, ...]]] = Counter()
    reported: dict[tuple[int, tuple[int, ...], int], float] = {}
    # When many slates of three are drawn
    for _ in range(draws):
        above: tuple[int, ...] = ()
        for choice in choose_slate(values, advertisers, 3, policy, rng, uncertainty=uncertainty):
            key = (choice.rank, above, choice.index)
            seen[key] += 1
            contexts[choice.rank, above] += 1
            assert reported.setdefault(key, choice.propensity) == choice.propensity
            above = (*above, choice.index)
    # Then in every context seen 400 times each ad's frequency is within 4.5 standard errors of its propensity
    checked = 0
    for (rank, above), n in contexts.items():
        if n < 400:
            continue
        checked += 1
        available = np.ones(len(values), dtype=bool)
        for index in above:
            available &= np.array(advertisers) != advertisers[index]
        exact = policy.slot_probabilities(values, available, uncertainty)
        for index, p in enumerate(exact.tolist()):
            if seen[rank, above, index]:
                assert reported[rank, above, index] == pytest.approx(p, rel=1e-12)
            assert abs(seen[rank, above, index] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n)
    assert checked >= 3


def test_the_optimism_is_logged_only_when_there_is_one_and_replays_from_the_log() -> None:
    assert SquareCB(50.0).logged().model_dump_json() == '{"name":"squarecb","epsilon":null,"gamma":50.0}'
    logged = SquareCB(50.0, optimism=1.5).logged()
    assert json.loads(logged.model_dump_json())["optimism"] == 1.5
    assert logged_policy(logged) == SquareCB(50.0, optimism=1.5)
    with pytest.raises(ValueError, match="only a squarecb"):
        LoggedPolicy(name="epsilon_greedy", epsilon=0.1, optimism=1.0)
    with pytest.raises(ValueError, match="greater than 0"):
        LoggedPolicy(name="squarecb", gamma=1.0, optimism=0.0)


def test_heard_ads_count_rows_and_look_up_ads_never_heard_as_zero() -> None:
    heard = HeardAds.count(np.array([7, 3, 7, 7, 11]))
    assert heard.to_manifest() == {"indices": [3, 7, 11], "counts": [1, 3, 1]}
    assert HeardAds.from_manifest(heard.to_manifest()).of(np.array([11, 5, 7, 99, 3])).tolist() == [1, 0, 3, 0, 1]
    assert HeardAds.count(np.array([], dtype=np.int64)).of(np.array([1])).tolist() == [0]
    for bad in ({"indices": [3, 3], "counts": [1, 1]}, {"indices": [1], "counts": [0]}, {"indices": [1]}):
        with pytest.raises(ValueError, match="heard_ads"):
            HeardAds.from_manifest(bad)


def model_with(tmp_path: Path, version: str, **manifest_changes: Any) -> CtrModel:
    folder = tmp_path / version
    shutil.copytree(BOOTSTRAP, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version=version, **manifest_changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return CtrModel.load(folder, DEFAULT_SPEC)


def test_a_manifest_with_malformed_heard_ads_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="heard_ads"):
        model_with(tmp_path, "bad", heard_ads={"indices": [5, 2], "counts": [1, 1]})


def test_a_model_serves_with_optimism_only_when_it_counted_what_it_heard(tmp_path: Path) -> None:
    policies = PolicySettings(exploration=SquareCB(300.0, optimism=1.0), token_ttl=timedelta(hours=1), gamma_scale=3.0)
    counted = model_with(tmp_path, "counted", logged_decisions=10_000, heard_ads={"indices": [1], "counts": [9]})
    assert policies.for_model(counted).policy == SquareCB(300.0, optimism=1.0)
    assert policies.logged_for("counted") == LoggedPolicy(name="squarecb", gamma=300.0, optimism=1.0)
    uncounted = model_with(tmp_path, "uncounted", logged_decisions=10_000)
    assert policies.for_model(uncounted).policy == SquareCB(300.0)
    assert policies.logged_for("uncounted") == LoggedPolicy(name="squarecb", gamma=300.0)
    assert served_exploration(SquareCB(9.0, 1.0), 0.0, None, heard_counted=False) == SquareCB(9.0)


@dataclass
class HeardScorer:
    """A trained model that heard one ad often and never the others; scores ads by their index."""

    version: str
    logged_decisions: int
    heard_ads: HeardAds

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.linspace(0.08, 0.02, len(indices), dtype=np.float32)


def test_decide_chooses_and_logs_with_the_uncertainty_of_each_candidate() -> None:
    # Given a model that heard only the first ad (400 times) serving four campaigns with optimism
    encoder = FeatureEncoder()
    column = ad_id_column(encoder.spec, in_ad_rows=True)
    campaigns = [campaign(campaign_id=f"c{n}", advertiser_id=f"a{n}", value_cpm=5.0) for n in range(4)]
    first_ad = encoder.encode_ad({"ad_id": campaigns[0].creatives[0].ad_id})[column]
    model = HeardScorer("heard", 10_000, HeardAds(np.array([first_ad]), np.array([400])))
    log = RecordingDecisionLog()
    decider = in_memory_service(*campaigns, log=log)
    decider.scorer = lambda _pseudonym: model
    decider.policy = PolicySettings(exploration=SquareCB(500.0, optimism=1.0), token_ttl=timedelta(hours=1))
    # When it decides
    for n in range(20):
        decider.decide(decision_request(listener={"id": f"listener-{n}", "country": "SE", "device": "mobile"}), "")
    # Then every record names the optimism, and each first ad's propensity is the policy's with that uncertainty
    for record in log.records:
        assert record.policy == LoggedPolicy(name="squarecb", gamma=500.0, optimism=1.0)
        candidates = record.inline_candidates
        scores = np.array([c.score for c in candidates])
        heard = np.array([400.0 if c.ad_id == campaigns[0].creatives[0].ad_id else 0.0 for c in candidates])
        exact = SquareCB(500.0, optimism=1.0).slot_probabilities(
            scores * 5.0, np.ones(len(candidates), dtype=bool), relative_uncertainty(scores, heard)
        )
        [first] = [choice for choice in record.chosen if choice.rank == 1]
        assert first.propensity == pytest.approx(float(exact[[c.ad_id for c in candidates].index(first.ad_id)]))


def slot_of(optimism: float) -> SlotOne:
    """Two decisions of three candidates each, logged by SquareCB at gamma 100 with *optimism*."""
    return SlotOne(
        decided_at=np.array([1.0, 2.0]),
        policy_codes=np.array([1, 1], dtype=np.int8),
        policy_parameters=np.array([100.0, 100.0]),
        policy_optimism=np.array([optimism, optimism]),
        listener_rows=np.zeros((2, 8), dtype=np.int32),
        offsets=np.array([0, 3, 6]),
        candidate_ads=np.arange(6, dtype=np.int32),
        candidate_rows=np.zeros((6, 1), dtype=np.int32),
        candidate_values=np.ones(6),
        logged_position=np.array([1, 2], dtype=np.int32),
        logged_propensity=np.array([0.2, 0.1], dtype=np.float32),
        rewards=np.array([1, 0], dtype=np.int8),
        contextual=np.zeros(2, dtype=bool),
    )


def test_evaluation_replays_the_optimism_with_the_evaluated_models_own_counts() -> None:
    scores = np.array([0.10, 0.08, 0.05, 0.10, 0.09, 0.02])
    heard = np.array([900.0, 50.0, 0.0, 900.0, 900.0, 10.0])
    terms = slot_one_terms(slot_of(1.0), scores, scores, heard)
    uncertainty = relative_uncertainty(scores, heard)
    policy = SquareCB(100.0, optimism=1.0)
    expected = [
        policy.slot_probabilities(scores[0:3], np.ones(3, dtype=bool), uncertainty[0:3])[1],
        policy.slot_probabilities(scores[3:6], np.ones(3, dtype=bool), uncertainty[3:6])[2],
    ]
    assert terms.target_probability.tolist() == pytest.approx(expected)
    # A model that counted nothing is replayed as Decide serves it: without optimism
    plain = slot_one_terms(slot_of(1.0), scores, scores)
    assert plain.target_probability.tolist() == pytest.approx(
        slot_one_terms(slot_of(0.0), scores, scores).target_probability.tolist()
    )
    assert plain.target_probability.tolist() != pytest.approx(expected)


def test_retraining_counts_the_rows_each_fit_learned_from() -> None:
    column = ad_id_column(DEFAULT_SPEC, in_ad_rows=False)

    def rows(*ad_ids: int) -> Examples:
        indices = np.zeros((len(ad_ids), DEFAULT_SPEC.num_fields), dtype=np.int32)
        indices[:, column] = ad_ids
        n = len(ad_ids)
        zeros = np.zeros(n)
        return Examples(indices, zeros.astype(np.int8), zeros, zeros, zeros, zeros.astype(np.int16), zeros)

    assert heard_ads(DEFAULT_SPEC, rows(4, 4, 9)) == {"indices": [4, 9], "counts": [2, 1]}
    assert heard_ads(DEFAULT_SPEC, rows(4, 4, 9), rows(9), rows(2)) == {"indices": [2, 4, 9], "counts": [1, 2, 2]}
