"""The cost of consent, measured offline: non-consenting listeners and minors are logged and scored contextually,
and the docs' table is the committed results file's."""

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from adserve.decisions.policy import EpsilonGreedy
from adserve.models.features import CONTEXTUAL_FIELDS, FeatureEncoder
from adserve.outcomes.logs import read_decisions
from adserve.training.simulation import World

from devstack import consent_cost
from devstack.demo import decision_body, offline_phase
from devstack.fakes import InMemoryLogStore
from devstack.generated_tables import published_table
from devstack.simulated_logs import START, TrafficConfig, simulate_traffic

WORLD = World(5, n_advertisers=4)


def logged_records(share: float | None) -> list[Any]:
    store = InMemoryLogStore()
    config = TrafficConfig(decisions=600, candidates=4, max_ads=1, seed=9, consent_share=share)
    simulate_traffic(store, WORLD, config, encoder=FeatureEncoder())
    return list(read_decisions(store, START, START + config.span + config.span))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_only_consenting_adults_are_personalised_and_the_others_are_logged_with_contextual_fields_only(
    share: float,
) -> None:
    records = logged_records(share)
    assert len(records) == 600
    for record in records:
        if record.mode == "contextual":
            assert set(record.listener_features) <= set(CONTEXTUAL_FIELDS), record.listener_features
        else:
            assert {"device", "age_bucket"} <= set(record.listener_features)
            assert record.listener_features["age_bucket"] != "13-17"
    personalised = sum(record.mode == "personalised" for record in records) / len(records)
    minors = 0.08  # the world's share of 13-17 year olds: never personalised
    assert personalised == pytest.approx(share * (1 - minors), abs=0.06)


def test_without_a_consent_share_every_listener_is_personalised_as_before() -> None:
    records = logged_records(None)
    assert {record.mode for record in records} == {"personalised"}
    assert any(record.listener_features["age_bucket"] == "13-17" for record in records)


def test_the_model_scores_non_consenting_listeners_by_their_contextual_fields_and_the_oracle_sees_everyone() -> None:
    seen: list[Mapping[str, str]] = []

    def scorer(listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:
        seen.extend(listeners)
        return np.full(len(ads), 0.1)

    offline_phase(
        WORLD, "contextual", 50, EpsilonGreedy(0.0), np.random.default_rng(1), scorer=scorer, consent_share=0.0
    )
    assert seen
    assert all(set(listener) <= set(CONTEXTUAL_FIELDS) for listener in seen)


def test_the_demo_sends_full_consent_or_refuses_only_personalisation() -> None:
    listener = WORLD.sample_listeners(1, np.random.default_rng(2))[0]
    assert json.loads(decision_body("l-1", listener))["consent"] == {
        "personalise": True,
        "cap_frequency": True,
        "measure": True,
    }
    assert json.loads(decision_body("l-1", listener, consents=False))["consent"] == {
        "personalise": False,
        "cap_frequency": True,
        "measure": True,
    }


def test_the_table_is_the_committed_results() -> None:
    results = json.loads(consent_cost.RESULTS.read_text())
    assert published_table("consent-cost") == consent_cost.markdown(results), (
        "run python -m devstack.consent_cost --docs-only"
    )
    assert {row["consent_share"] for row in results["summary"]} == {0.0, 0.5, 1.0}


def test_a_table_edited_by_hand_is_caught() -> None:
    results = json.loads(consent_cost.RESULTS.read_text())
    edited = copy.deepcopy(results)
    edited["summary"][0]["greedy_click_rate"] += 0.01
    assert consent_cost.markdown(edited) != published_table("consent-cost")
