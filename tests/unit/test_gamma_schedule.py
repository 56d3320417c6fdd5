"""SquareCB's gamma per served model: derived once from the decisions its manifest says it learned from."""

import json
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.core.errors import ConfigurationError, ModelLoadError
from adserve.decisions.policy import EpsilonGreedy, SquareCB, served_exploration
from adserve.decisions.service import PolicySettings
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC
from adserve.models.heard_ads import HeardAds
from adserve.outcomes.decision_records import LoggedPolicy
from adserve.wiring.settings import DecideSettings

from devstack.fakes import ConstantScorer, RecordingDecisionLog
from tests.support.builders import campaign, decision_request
from tests.support.decision_service import in_memory_service
from tests.support.privacy import PSEUDONYMS
from tests.support.template_parameters import DECIDE_REQUIRED, assert_parameter_feeds_setting

BOOTSTRAP = Path(__file__).resolve().parents[2] / "layers" / "model" / "bootstrap"


def model_with(tmp_path: Path, version: str, **manifest_changes: Any) -> CtrModel:
    """The bootstrap model under another version, its manifest changed (the sha256 covers the graph only)."""
    folder = tmp_path / version
    shutil.copytree(BOOTSTRAP, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version=version, **manifest_changes)
    manifest = {name: value for name, value in manifest.items() if value is not None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return CtrModel.load(folder, DEFAULT_SPEC)


def settings(gamma_scale: float, gamma: float = 200.0) -> PolicySettings:
    return PolicySettings(exploration=SquareCB(gamma), token_ttl=timedelta(hours=1), gamma_scale=gamma_scale)


def test_with_a_scale_gamma_grows_as_the_square_root_of_the_logged_decisions_up_to_the_configured_gamma() -> None:
    assert served_exploration(SquareCB(200.0), 1.5, 10_000, heard_counted=False) == SquareCB(150.0)
    assert served_exploration(SquareCB(200.0), 1.5, 40_000, heard_counted=False) == SquareCB(200.0)  # 300, capped
    # no logs of this deployment: uniform
    assert served_exploration(SquareCB(200.0), 1.5, 0, heard_counted=False) == SquareCB(0.0)


def test_without_a_scale_or_a_count_or_for_epsilon_greedy_the_configured_policy_serves() -> None:
    assert served_exploration(SquareCB(200.0), 0.0, 10_000, heard_counted=False) == SquareCB(200.0)
    # a manifest from before the count
    assert served_exploration(SquareCB(200.0), 1.5, None, heard_counted=False) == SquareCB(200.0)
    assert served_exploration(EpsilonGreedy(0.1), 1.5, 10_000, heard_counted=False) == EpsilonGreedy(0.1)


def test_a_model_serves_with_the_gamma_derived_from_its_manifest(tmp_path: Path) -> None:
    trained = model_with(tmp_path, "trained", logged_decisions=10_000)
    assert trained.logged_decisions == 10_000
    served = settings(1.5).for_model(trained)
    assert served.policy == SquareCB(150.0)
    assert served.logged == LoggedPolicy(name="squarecb", gamma=150.0)  # what its records carry


def test_the_bootstrap_model_explores_uniformly_and_a_model_without_a_count_at_the_configured_gamma(
    tmp_path: Path,
) -> None:
    policies = settings(1.5)
    bootstrap = CtrModel.load(BOOTSTRAP, DEFAULT_SPEC)
    assert bootstrap.logged_decisions == 0  # trained on a simulated world, none of this deployment's logs
    assert policies.for_model(bootstrap).policy == SquareCB(0.0)
    older = model_with(tmp_path, "older", logged_decisions=None)
    assert older.logged_decisions is None
    assert policies.for_model(older).policy == SquareCB(200.0)
    # A scorer that is not a trained model (a test double) has no count either
    assert policies.for_model(ConstantScorer()).policy == SquareCB(200.0)


def test_the_default_scale_serves_every_model_with_the_configured_gamma(tmp_path: Path) -> None:
    policies = settings(0.0)
    for model in (CtrModel.load(BOOTSTRAP, DEFAULT_SPEC), model_with(tmp_path, "trained", logged_decisions=10_000)):
        assert policies.for_model(model).policy == SquareCB(200.0)


def test_the_policy_is_derived_once_per_model_version_and_names_the_records_of_that_version(tmp_path: Path) -> None:
    policies = settings(1.0)
    small, large = (
        model_with(tmp_path, "small", logged_decisions=100),
        model_with(tmp_path, "large", logged_decisions=90_000),
    )
    first = policies.for_model(small)
    assert policies.for_model(small) is first
    assert policies.for_model(large).policy == SquareCB(200.0)
    assert policies.logged_for("small") == LoggedPolicy(name="squarecb", gamma=10.0)
    assert policies.logged_for("large") == LoggedPolicy(name="squarecb", gamma=200.0)


@pytest.mark.parametrize("count", [-1, 1.5, "100", True])
def test_a_manifest_with_an_invalid_count_is_refused_at_load(tmp_path: Path, count: object) -> None:
    with pytest.raises(ModelLoadError, match="logged_decisions"):
        model_with(tmp_path, "invalid", logged_decisions=count)


@pytest.mark.parametrize(
    ("field_name", "too_large"), [("exploration_gamma_scale", "20000"), ("exploration_optimism", "101")]
)
def test_the_setting_is_off_by_default_and_validated_from_the_environment(field_name: str, too_large: str) -> None:
    variable = field_name.upper()
    assert getattr(DecideSettings.from_env(DECIDE_REQUIRED), field_name) == 0.0
    assert getattr(DecideSettings.from_env(DECIDE_REQUIRED | {variable: "1.5"}), field_name) == 1.5
    for bad in ("-1", "abc", too_large, "nan"):
        with pytest.raises(ConfigurationError, match=variable):
            DecideSettings.from_env(DECIDE_REQUIRED | {variable: bad})


@pytest.mark.parametrize(
    ("parameter_name", "field_name"),
    [("ExplorationGammaScale", "exploration_gamma_scale"), ("ExplorationOptimism", "exploration_optimism")],
)
def test_the_template_parameter_reaches_decide_with_the_settings_default_and_bounds(
    parameter_name: str, field_name: str
) -> None:
    assert_parameter_feeds_setting("DecideFunction", parameter_name, DecideSettings, field_name)


@dataclass
class CountedScorer:
    """A trained model of ``logged_decisions``, scoring ads by their index so the gaps are not zero."""

    version: str
    logged_decisions: int
    heard_ads: HeardAds | None = None

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return np.linspace(0.02, 0.08, len(indices), dtype=np.float32)


def test_each_decision_is_chosen_and_logged_with_the_gamma_of_the_model_that_served_it() -> None:
    # Given a champion of 10,000 logged decisions and a challenger of 100, each serving some listeners
    champion, challenger = CountedScorer("champion", 10_000), CountedScorer("challenger", 100)
    log = RecordingDecisionLog()
    campaigns = [campaign(campaign_id=f"c{n}", advertiser_id=f"a{n}", value_cpm=5.0 + n) for n in range(4)]
    decider = in_memory_service(*campaigns, log=log)
    decider.scorer = lambda pseudonym: challenger if pseudonym < PSEUDONYMS.listener("middle") else champion
    decider.policy = settings(1.0)
    # When both serve decisions
    for n in range(40):
        decider.decide(decision_request(listener={"id": f"listener-{n}", "country": "SE", "device": "mobile"}), "")
    # Then each record names its model's gamma and its first ad's propensity is SquareCB's at that gamma
    gammas = {"champion": 100.0, "challenger": 10.0}
    assert {record.model_version for record in log.records} == set(gammas)
    for record in log.records:
        gamma = gammas[record.model_version]
        assert record.policy == LoggedPolicy(name="squarecb", gamma=gamma)
        candidates = record.inline_candidates
        values = np.array([c.score * c.value_cpm for c in candidates])
        probabilities = SquareCB(gamma).slot_probabilities(values, np.ones(len(values), dtype=bool))
        [first] = [choice for choice in record.chosen if choice.rank == 1]
        position = [c.ad_id for c in candidates].index(first.ad_id)
        assert first.propensity == pytest.approx(float(probabilities[position]))
