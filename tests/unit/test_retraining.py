"""The retraining pipeline on simulated logs: OPE against the simulator's truth, publishing, promotion, CLI."""

import argparse
import dataclasses
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.cli.main import main
from adserve.cli.models import (
    EXIT_SKIPPED,
    MAX_CROSS_FIT_FOLDS,
    MAX_REWARD_WINDOW_HOURS,
    add_model_commands,
    run_model_command,
)
from adserve.core.errors import ConfigurationError, ModelStoreUnavailableError
from adserve.decisions.policy import EpsilonGreedy
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC
from adserve.models.registry import ActivePointer
from adserve.training.dataset import DatasetConfig, SlotOne, TrainingDataset
from adserve.training.evaluation import PromotionRule, ips, score_candidates, slot_one_terms, snips
from adserve.training.factorization_machine import TrainingConfig
from adserve.training.retraining import (
    RetrainError,
    RetrainRequest,
    compare_published,
    promote,
    published_models,
    retrain,
)
from adserve.training.simulation import World
from adserve.training.trainer import TrainerConfig, collect, cross_fit, evaluation_set, fit, fold_cuts, refit_on_all
from adserve.wiring.retrain import scheduled_request
from adserve.wiring.settings import RetrainSettings
from annotated_types import Le

from devstack.fakes import InMemoryLogStore, InMemoryModelStore
from devstack.simulated_logs import START, TrafficConfig, Truth, TruthScorer, simulate_traffic
from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template
from tests.support.privacy import pseudonym
from tests.support.published_models import model_files
from tests.support.template_parameters import assert_parameter_feeds_setting

TRAFFIC = TrafficConfig(
    decisions=8000, span=timedelta(hours=48), candidates=5, max_ads=2, exploration=EpsilonGreedy(0.5), seed=7
)
END = START + TRAFFIC.span
AS_OF = END + timedelta(hours=24)
BOOTSTRAP = Path(__file__).parents[2] / "layers" / "model" / "bootstrap"
QUICK = TrainerConfig(fit=TrainingConfig(max_epochs=3, patience=1))


@pytest.fixture(scope="module")
def simulated() -> tuple[InMemoryLogStore, Truth]:
    """8,000 decisions of the real serving policy in a simulated world (epsilon 0.5, 5 candidates)."""
    store = InMemoryLogStore()
    truth = simulate_traffic(store, World(seed=11), TRAFFIC)
    return store, truth


def request(**overrides: Any) -> RetrainRequest:
    defaults: dict[str, Any] = {"start": START, "end": END, "as_of": AS_OF, "trainer": QUICK}
    return RetrainRequest(**(defaults | overrides))


def point_at(models: InMemoryModelStore, champion: str) -> None:
    """Store a pointer naming *champion* (as a promotion of Nov 1 would have), whatever its files are."""
    models.pointer_document = (
        ActivePointer(champion=champion, updated_at=datetime(2026, 11, 1, tzinfo=UTC), updated_by="test")
        .model_dump_json()
        .encode()
    )


def test_off_policy_estimates_of_a_known_policy_are_close_to_its_true_click_rate(
    simulated: tuple[InMemoryLogStore, Truth],
) -> None:
    # Given the logged decisions and a policy whose true CTR the simulator knows: the serving policy
    # driven by the true probabilities (the oracle), not the noisy model that logged the data
    store, truth = simulated
    dataset = TrainingDataset(store, DatasetConfig(START, END, AS_OF))
    slot = SlotOne.concatenate(
        [chunk.slot_one for chunk in dataset.chunks()],
        len(DEFAULT_SPEC.listener_fields),
        len(DEFAULT_SPEC.candidate_fields),
    )
    true_ctr = score_candidates(slot, dataset.ad_rows, TruthScorer(truth))
    terms = slot_one_terms(slot, true_ctr, true_ctr)
    policy_value = float(terms.direct.mean())  # sum_a pi(a|x) p_true(x, a), averaged over the logged contexts
    # When it is estimated from the logs alone
    weighted = terms.weights * terms.rewards
    standard_error = float(weighted.std() / np.sqrt(len(weighted)))
    # Then IPS and SNIPS land within three standard errors and 20% of the truth
    for estimate in (ips(terms), snips(terms)):
        assert abs(estimate - policy_value) <= 3 * standard_error
        assert abs(estimate / policy_value - 1) < 0.2
    assert len(slot) == TRAFFIC.decisions


def test_empty_logs_publish_nothing(tmp_path: Path) -> None:
    models = InMemoryModelStore()
    result = retrain(InMemoryLogStore(), models, request(), work_dir=tmp_path)
    assert result.status == "skipped"
    assert "not enough data" in result.message
    assert "nothing was published" in result.message
    assert (models.files, models.pointer_document) == ({}, None)


def test_a_range_all_younger_than_the_reward_window_says_so_rather_than_print_a_reversed_range(
    tmp_path: Path,
) -> None:
    # Given a range of this morning's hours, all of it younger than the 24 h reward window at as_of
    morning = request(start=AS_OF - timedelta(hours=10), end=AS_OF - timedelta(hours=1))
    # When it is trained
    result = retrain(InMemoryLogStore(), InMemoryModelStore(), morning, work_dir=tmp_path)
    # Then the message says why nothing can be trained on, not a range that ends before it starts
    assert result.status == "skipped"
    assert "is younger than the 24 h reward window (--reward-window-hours)" in result.message
    assert ".." not in result.message


def test_a_tiny_dataset_publishes_nothing(simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path) -> None:
    # Given only the first hour of the logs (~170 decisions)
    store, _ = simulated
    models = InMemoryModelStore()
    result = retrain(store, models, request(end=START + timedelta(minutes=59)), work_dir=tmp_path)
    assert result.status == "skipped"
    assert re.search(r"\d+ examples \(minimum 1000\)", result.message)
    assert models.files == {}


def test_the_trained_model_is_published_with_its_manifest_and_loads_for_serving(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    store, _ = simulated
    models = InMemoryModelStore()
    result = retrain(
        store, models, request(promotion="never"), work_dir=tmp_path / "work", fallback_model_dir=BOOTSTRAP
    )
    assert result.status == "registered"
    assert result.version is not None
    assert re.fullmatch(r"fm-\d{8}T\d{4}Z-[0-9a-f]{12}", result.version)
    assert models.versions() == [result.version]
    assert models.pointer_document is None
    model = CtrModel.load(models.download(result.version, tmp_path / "download"), DEFAULT_SPEC)
    manifest = model.manifest
    assert manifest["parent_version"].startswith("bootstrap-")
    assert manifest["label"] == "click"
    assert manifest["training_window"]["end"] == END.isoformat()
    assert manifest["row_counts"]["train"] + manifest["row_counts"]["validation"] + manifest["row_counts"][
        "holdout"
    ] == int(manifest["dataset"]["examples"])
    assert manifest["dataset"]["log_malformed_lines"] == 0
    # the logged decisions it learned from, which Decide's growing gamma is derived from (policy.served_exploration)
    assert model.logged_decisions == manifest["dataset"]["decisions"] > 0
    # and the impressions of each ad it was fitted on (SquareCB's optimism reads them): every train row once
    assert model.heard_ads is not None
    assert int(model.heard_ads.counts.sum()) == manifest["row_counts"]["train"]
    off_policy = manifest["evaluation"]["off_policy"]
    assert off_policy["champion"]["version"] == manifest["parent_version"]
    assert {"ips", "snips", "dr"} <= off_policy["new"].keys()
    # Learned something: a 3-epoch model, judged on ~80 clicks, whose AUC has a standard error of ~0.03 (0.61
    # with the holdout at the last 20% of the clock, 0.60 at the last 20% of the decisions)
    assert 0.55 < manifest["holdout_auc"] < 1.0
    assert result.table is not None
    assert "logging policy (observed)" in result.table


def test_a_refit_on_every_row_is_published_with_the_metrics_of_the_fit_that_was_judged(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given the same logs retrained once as usual and once with refit_on_all
    store, _ = simulated
    plain_models, refit_models = InMemoryModelStore(), InMemoryModelStore()
    refit_trainer = dataclasses.replace(QUICK, refit_on_all=True)
    plain = retrain(store, plain_models, request(promotion="never"), work_dir=tmp_path / "plain")
    refit = retrain(store, refit_models, request(promotion="never", trainer=refit_trainer), work_dir=tmp_path / "refit")
    assert plain.manifest is not None
    assert refit.manifest is not None
    # Then a different model is published, fitted on every row for the epochs early stopping chose
    assert refit.version != plain.version
    assert refit.manifest["sha256"] != plain.manifest["sha256"]
    counts = refit.manifest["row_counts"]
    assert refit.manifest["refit_on_all"]["rows"] == counts["train"] + counts["validation"] + counts["holdout"]
    assert refit.manifest["refit_on_all"]["epochs"] == plain.manifest["fit"]["best_epoch"]
    assert "refit_on_all" not in plain.manifest
    # having heard every row's ad
    assert sum(refit.manifest["heard_ads"]["counts"]) == refit.manifest["refit_on_all"]["rows"]
    # And its metrics and verdict are those of the fit on train alone, the one the holdout could judge
    for key in ("holdout_auc", "evaluation"):
        assert refit.manifest[key] == plain.manifest[key], key
    timeless = [
        {k: v for k, v in m["fit"].items() if k != "training_seconds"} for m in (refit.manifest, plain.manifest)
    ]
    assert timeless[0] == timeless[1]
    served = CtrModel.load(refit_models.download(refit.version or "", tmp_path / "served"), DEFAULT_SPEC)
    assert served.version == refit.version


CROSS_FITTED = dataclasses.replace(QUICK, refit_on_all=True, cross_fit_folds=4)


def test_cross_fitted_estimates_rest_on_every_decision_and_change_nothing_that_serves(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given the same logs retrained with the refit, once with its estimates cross-fitted over 4 folds
    store, _ = simulated
    refit = dataclasses.replace(CROSS_FITTED, cross_fit_folds=0)
    plain = retrain(store, InMemoryModelStore(), request(promotion="never", trainer=refit), work_dir=tmp_path / "a")
    crossed = retrain(
        store, InMemoryModelStore(), request(promotion="never", trainer=CROSS_FITTED), work_dir=tmp_path / "b"
    )
    assert plain.manifest is not None
    assert crossed.manifest is not None
    # Then the same model is published, with the holdout's metrics of the same judged fit
    assert crossed.version == plain.version
    assert crossed.manifest["holdout_auc"] == plain.manifest["holdout_auc"]
    # but its off-policy estimates rest on every decision, not the holdout's alone
    every = collect(TrainingDataset(store, request().dataset_config()), CROSS_FITTED).every_slot_one
    assert every is not None
    off_policy, holdout_only = crossed.manifest["evaluation"]["off_policy"], plain.manifest["evaluation"]["off_policy"]
    assert (off_policy["decisions"], off_policy["cross_fitted_folds"]) == (len(every), 4)
    assert holdout_only["decisions"] == crossed.manifest["row_counts"]["holdout_decisions"] < len(every)
    assert off_policy["new"]["snips"] != holdout_only["new"]["snips"]
    assert off_policy["new"]["standard_errors"]["snips"] < holdout_only["new"]["standard_errors"]["snips"]
    assert "4 cross-fitted folds" in crossed.manifest["refit_on_all"]["estimates_of"]


def test_each_fold_is_replayed_by_the_recipe_fitted_on_every_row_outside_it(
    simulated: tuple[InMemoryLogStore, Truth],
) -> None:
    store, _ = simulated
    data = collect(TrainingDataset(store, request().dataset_config()), CROSS_FITTED)
    trained = fit(data, DEFAULT_SPEC, CROSS_FITTED)
    # When the decisions are cross-fitted over 4 folds
    folds = cross_fit(data, DEFAULT_SPEC, CROSS_FITTED, trained)
    # Then the folds hold every decision once, in time order
    assert data.every_slot_one is not None
    assert [len(fold.slot) for fold in folds]
    assert sum(len(fold.slot) for fold in folds) == len(data.every_slot_one)
    assert len(folds) == 4
    for before, after in itertools.pairwise(folds):
        assert before.slot.decided_at.max() < after.slot.decided_at.min()
    # And each fold's fit is the judged recipe fitted on the rows outside its time range, having heard only those
    everything = data.everything(DEFAULT_SPEC.num_fields)
    none = everything.select(np.zeros(len(everything), dtype=bool))
    probe = everything.indices[:500].astype(np.int64)
    for fold, (start, end) in zip(folds, itertools.pairwise(fold_cuts(everything.decided_at, 4)), strict=True):
        assert start <= fold.slot.decided_at.min()
        assert fold.slot.decided_at.max() < end
        outside = everything.select((everything.decided_at < start) | (everything.decided_at >= end))
        alone = dataclasses.replace(data, train=outside, validation=none, holdout=none)
        expected = refit_on_all(alone, DEFAULT_SPEC, CROSS_FITTED, trained).model
        np.testing.assert_array_equal(fold.model.predict(probe), expected.predict(probe))
        assert int(fold.heard.counts.sum()) == len(outside)


@pytest.mark.parametrize("settings", [{"cross_fit_folds": 3}, {"cross_fit_folds": 1, "refit_on_all": True}])
def test_cross_fitting_needs_two_folds_and_the_refit_they_stand_for(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cross_fit_folds"):
        TrainerConfig(**settings)


def test_a_champion_is_judged_only_on_the_decisions_after_everything_it_learned_from(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    store, _ = simulated
    models = InMemoryModelStore()
    refit = dataclasses.replace(QUICK, refit_on_all=True)
    anyway = PromotionRule(margin=-1.0)
    # Given a champion refitted on every decision of the first 44 of the logs' 48 hours
    learned_until = START + timedelta(hours=44)
    first = retrain(store, models, request(end=learned_until, trainer=refit, rule=anyway), work_dir=tmp_path / "1")
    assert first.status == "promoted"
    # When a model is trained on all 48 hours: its holdout, the latest 20% of the decisions, starts before hour 44
    second = retrain(
        store, models, request(as_of=AS_OF + timedelta(hours=1), trainer=refit, rule=anyway), work_dir=tmp_path / "2"
    )
    assert second.manifest is not None
    data = collect(TrainingDataset(store, request().dataset_config()), QUICK)
    unseen = data.holdout_slot_one.decided_at > learned_until.timestamp()
    assert 0 < unseen.sum() < len(unseen)
    # Then the champion is judged on the holdout decisions after hour 44 alone, rows and decisions
    evaluation = second.manifest["evaluation"]
    assert evaluation["off_policy"]["decisions"] == len(unseen)
    assert evaluation["off_policy"]["champion_decisions"] == unseen.sum()
    assert evaluation["holdout"]["champion"]["rows"] == (data.holdout.decided_at > learned_until.timestamp()).sum()
    # And the new policy is compared with it on those same decisions
    head_to_head = evaluation["off_policy"]["new_on_champion_decisions"]
    assert evaluation["promotion"]["new_value"] == head_to_head["snips"] != evaluation["off_policy"]["new"]["snips"]
    assert f"on its {unseen.sum():,} unseen decisions" in evaluation["promotion"]["baseline"]
    assert second.table is not None
    assert f"champion judged on {unseen.sum():,} of them" in second.table
    # When a third model is trained on the same 48 hours, every one of which its champion was refitted on
    third = retrain(
        store, models, request(as_of=AS_OF + timedelta(hours=2), trainer=refit, rule=anyway), work_dir=tmp_path / "3"
    )
    assert third.manifest is not None
    # Then the champion is not judged at all, and the new model is held against what the logging policy observed
    evaluation = third.manifest["evaluation"]
    assert evaluation["off_policy"]["champion_decisions"] == 0
    assert evaluation["off_policy"]["champion"] is None
    assert evaluation["promotion"]["baseline"] == "logging policy (observed)"
    assert third.status == "promoted", third.message  # the rule (any estimate) judged it against that baseline
    assert third.table is not None
    assert "champion not judged: it learned from every holdout decision" in third.table


def test_published_models_are_compared_on_the_decisions_none_of_them_learned_from(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    store, _ = simulated
    models = InMemoryModelStore()
    # Given a model refitted on every decision of the logs' first 44 hours
    learned_until = (START + timedelta(hours=44)).timestamp()
    refit = dataclasses.replace(QUICK, refit_on_all=True)
    published = retrain(
        store,
        models,
        request(end=START + timedelta(hours=44), trainer=refit, promotion="never"),
        work_dir=tmp_path / "refit",
    )
    assert published.version is not None
    # When it is evaluated on all 48 hours, with the bootstrap model beside it
    config = request().dataset_config()
    models.publish(BOOTSTRAP)
    bootstrap = CtrModel.load(BOOTSTRAP, DEFAULT_SPEC).version
    comparison = compare_published(store, models, config, [bootstrap, published.version], work_dir=tmp_path / "cmp")
    # Then both are rated on the last four hours alone, the rest said to be left out
    examples, slot, _ = evaluation_set(TrainingDataset(store, config))
    unseen = int((slot.decided_at > learned_until).sum())
    assert 0 < unseen < len(slot)
    assert (comparison.decisions, comparison.learned_from) == (unseen, len(slot) - unseen)
    assert [metrics.rows for _, metrics, _ in comparison.rows] == [(examples.decided_at > learned_until).sum()] * 2
    assert f"left out: {len(slot) - unseen:,} decisions of the range that a model learned from" in comparison.render()


def test_promotion_happens_only_when_the_rule_holds(simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path) -> None:
    store, _ = simulated
    models = InMemoryModelStore()
    # Given a first model promoted (any estimate beats a margin of -100%)
    first = retrain(store, models, request(rule=PromotionRule(margin=-1.0)), work_dir=tmp_path / "1")
    assert first.status == "promoted"
    assert "promoted to champion" in first.message
    pointer = models.read_pointer()
    assert pointer is not None
    assert pointer.champion == first.version
    # When a second model must beat the champion by 1000%
    second = retrain(
        store,
        models,
        request(as_of=AS_OF + timedelta(hours=1), rule=PromotionRule(margin=10.0)),
        work_dir=tmp_path / "2",
    )
    # Then it is registered but the champion keeps serving
    assert second.status == "registered"
    assert "not promoted" in second.message
    assert second.version in models.versions()
    assert models.read_pointer() == pointer
    # And a third one that passes with a challenger share becomes the challenger
    third = retrain(
        store,
        models,
        request(as_of=AS_OF + timedelta(hours=2), rule=PromotionRule(margin=-1.0), challenger_share=0.1),
        work_dir=tmp_path / "3",
    )
    assert third.status == "challenger"
    assert "promoted to challenger (10% of listeners)" in third.message
    challenged = models.read_pointer()
    assert challenged is not None
    assert (challenged.champion, challenged.challenger, challenged.challenger_share) == (
        first.version,
        third.version,
        0.1,
    )


def test_a_champion_that_does_not_load_is_replaced_not_paired_with_a_challenger(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given a pointer whose champion lost its model file (Decide serves the bootstrap model meanwhile)
    store, _ = simulated
    models = InMemoryModelStore()
    files = model_files("fm-20261101T0000Z-lost0000aaaa")
    del files["model.onnx"]
    models.files["fm-20261101T0000Z-lost0000aaaa"] = files
    point_at(models, "fm-20261101T0000Z-lost0000aaaa")
    # When a retrain asked to add challengers promotes a model
    result = retrain(store, models, request(rule=PromotionRule(margin=-1.0), challenger_share=0.1), work_dir=tmp_path)
    # Then the model becomes the champion, alone, and the message says why it is not a challenger
    assert result.status == "promoted"
    assert "not challenger: the champion does not load" in result.message
    pointer = models.read_pointer()
    assert pointer is not None
    assert (pointer.champion, pointer.challenger) == (result.version, None)


class UnreadableChampion(InMemoryModelStore):
    """A models bucket that answers the pointer but fails the champion's download (throttled, unreachable)."""

    def download(self, version: str, target_dir: Path) -> Path:
        raise ModelStoreUnavailableError(f"get {version}: SlowDown")


def test_a_champion_the_bucket_cannot_serve_now_fails_the_run_rather_than_promote_blind(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    store, _ = simulated
    models = UnreadableChampion()
    models.files["fm-20261101T0000Z-good0000aaaa"] = model_files("fm-20261101T0000Z-good0000aaaa")
    pointer = ActivePointer(
        champion="fm-20261101T0000Z-good0000aaaa", updated_at=datetime(2026, 11, 1, tzinfo=UTC), updated_by="test"
    )
    models.pointer_document = pointer.model_dump_json().encode()
    with pytest.raises(ModelStoreUnavailableError):
        retrain(store, models, request(rule=PromotionRule(margin=-1.0)), work_dir=tmp_path)
    assert models.read_pointer() == pointer
    assert models.versions() == ["fm-20261101T0000Z-good0000aaaa"]


def test_promote_by_hand_checks_the_version_exists(tmp_path: Path) -> None:
    models = InMemoryModelStore(files={"fm-a": model_files("fm-a"), "fm-b": model_files("fm-b")})
    # Before any promotion, each refusal says how the bootstrap model Decide serves can be named
    with pytest.raises(RetrainError, match=r"no champion yet.*adserve models publish layers/model/bootstrap"):
        promote(models, "fm-b", challenger_share=0.2)
    with pytest.raises(RetrainError, match=r"bootstrap-0c79ce647124 is not a published model version .*publish"):
        promote(models, "bootstrap-0c79ce647124")
    assert promote(models, "fm-a").champion == "fm-a"
    pointer = promote(models, "fm-b", challenger_share=0.2)
    assert (pointer.champion, pointer.challenger, pointer.challenger_share) == ("fm-a", "fm-b", 0.2)
    with pytest.raises(RetrainError, match="not a published model"):
        promote(models, "fm-missing")


def test_a_model_of_another_label_is_registered_not_promoted_over_the_champion(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given a click model serving
    store, _ = simulated
    models = InMemoryModelStore()
    clicks = retrain(store, models, request(rule=PromotionRule(margin=-1.0)), work_dir=tmp_path / "clicks")
    assert clicks.status == "promoted"
    pointer = models.read_pointer()
    # When a completion model passes the rule (an estimate of completions against the champion's of completions)
    completes = retrain(
        store,
        models,
        request(as_of=AS_OF + timedelta(hours=1), label="complete", rule=PromotionRule(margin=-1.0)),
        work_dir=tmp_path / "completes",
    )
    # Then it is registered only: promoted, it would change what Decide ranks by, not how well
    assert completes.status == "registered"
    assert "predicts completes and the champion clicks" in completes.message
    assert models.read_pointer() == pointer
    # And by hand it becomes champion only when the change is asked for, and never a challenger
    assert completes.version is not None
    for share in (None, 0.2):
        with pytest.raises(RetrainError, match="predicts completes and the champion clicks"):
            promote(models, completes.version, challenger_share=share)
    assert models.read_pointer() == pointer
    assert promote(models, completes.version, change_label=True).champion == completes.version


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_champion_that_does_not_load_is_replaced_by_a_model_of_the_label_its_manifest_names(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path, damage: str
) -> None:
    # Given a deployment that trains completions, whose champion's model file is corrupt or gone (its manifest reads)
    store, _ = simulated
    broken = model_files("fm-broken", model_bytes=b"not onnx", label="complete")
    if damage == "missing":
        del broken["model.onnx"]
    models = InMemoryModelStore(files={"fm-broken": broken, "fm-good": model_files("fm-good", label="complete")})
    point_at(models, "fm-broken")
    # When an operator rolls back to a good completion model, by hand, as the runbook says
    assert promote(models, "fm-good").champion == "fm-good"
    # Or a retrain of completions heals it: the broken champion predicted completions too, no label changes
    point_at(models, "fm-broken")
    healed = retrain(
        store, models, request(label="complete", rule=PromotionRule(margin=-1.0)), work_dir=tmp_path / "complete"
    )
    assert healed.status == "promoted", healed.message
    # While a click model is refused in its place: that would change what the deployment optimises
    point_at(models, "fm-broken")
    clicks = retrain(store, models, request(rule=PromotionRule(margin=-1.0)), work_dir=tmp_path / "clicks")
    assert clicks.status == "registered"
    assert "predicts clicks and the champion completes" in clicks.message


def test_promote_replaces_a_pointer_that_is_no_pointer_which_the_list_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a models/active.json that is no pointer (a hand edit that dropped updated_at)
    models = InMemoryModelStore(files={"fm-a": model_files("fm-a"), "fm-b": model_files("fm-b")})
    models.pointer_document = b'{"champion": "fm-a", "challenger_share": 0.5}'
    # When the operator lists the versions to roll back to
    assert run_model_command(parse("models"), models=models) == 0
    # Then they are listed, with what is wrong with the pointer and how to replace it
    captured = capsys.readouterr()
    assert ("fm-a " in captured.out, "fm-b " in captured.out) == (True, True)
    assert ("not a pointer" in captured.err, "adserve promote VERSION" in captured.err) == (True, True)
    # (as JSON, beside no pointer at all: a script must not read it as "nothing promoted yet")
    assert run_model_command(parse("models", "--json"), models=models) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["pointer"], "not a pointer" in listed["pointer_problem"]) == (None, True)
    # And a challenger cannot join it, while a champion replaces it (the runbook's rollback)
    with pytest.raises(RetrainError, match="promote a champion over it"):
        promote(models, "fm-b", challenger_share=0.2)
    assert promote(models, "fm-b").champion == "fm-b"
    pointer = models.read_pointer()
    assert pointer is not None
    assert (pointer.champion, pointer.challenger) == ("fm-b", None)


@pytest.mark.parametrize("label", ["click", "complete"])
def test_promote_refuses_a_challenger_beside_a_champion_that_does_not_load_and_says_what_replaces_it(
    label: str,
) -> None:
    # Given a pointer whose click champion lost its model file (its manifest still says what it predicted): Decide
    # refuses the pointer whole, so a challenger beside it would never serve
    broken = model_files("fm-broken")
    del broken["model.onnx"]
    models = InMemoryModelStore(files={"fm-broken": broken, "fm-good": model_files("fm-good", label=label)})
    point_at(models, "fm-broken")
    before = models.read_pointer()
    # When the operator adds a good version as challenger, it is refused, naming the champion and the command
    # that replaces it: with --change-label when the good one predicts another label
    with pytest.raises(RetrainError, match=r"the champion fm-broken does not load") as refused:
        promote(models, "fm-good", challenger_share=0.1)
    assert models.read_pointer() == before
    [command] = re.findall(r"`adserve promote ([^`]*)`", str(refused.value))
    # And that command replaces the broken champion
    assert command == ("fm-good" if label == "click" else "fm-good --change-label")
    assert promote(models, "fm-good", change_label="--change-label" in command).champion == "fm-good"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"manifest.json": model_files("fm-torn")["manifest.json"]}, "no model.onnx"),
        ({**model_files("fm-torn"), "manifest.json": model_files("fm-torn")["manifest.json"][:40]}, "manifest"),
        (model_files("fm-other"), "names version 'fm-other'"),
    ],
)
def test_promote_refuses_a_version_decide_could_not_serve(files: dict[str, bytes], reason: str) -> None:
    # Given a champion serving, and a version listed (its manifest is there) that Decide could not load
    models = InMemoryModelStore(files={"fm-a": model_files("fm-a"), "fm-torn": files})
    promote(models, "fm-a")
    before = models.read_pointer()
    # When an operator promotes it, as champion or challenger, it is refused and the pointer stays
    for share in (None, 0.5):
        with pytest.raises(RetrainError, match=f"would not serve.*{reason}"):
            promote(models, "fm-torn", challenger_share=share)
    assert models.read_pointer() == before


def test_the_list_shows_a_version_it_cannot_read_next_to_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    models = InMemoryModelStore(
        files={
            "fm-a": model_files("fm-a"),
            "fm-torn": {"manifest.json": model_files("fm-torn", label="complete")["manifest.json"]},
        }
    )
    listed = published_models(models, tmp_path)
    assert [(model.version, model.problem is None) for model in listed] == [("fm-a", True), ("fm-torn", False)]
    assert run_model_command(parse("models"), models=models) == 0
    out = capsys.readouterr().out
    assert "fm-a " in out
    assert "fm-torn cannot be served: model fm-torn has no model.onnx" in out
    # its manifest still reads, and with it the label the promotion rule holds it to
    torn = next(line for line in out.splitlines() if line.startswith("fm-torn "))
    assert torn.split()[1:3] == ["complete", "-"]
    assert torn.endswith("UNREADABLE")


def test_the_list_shows_a_model_whose_manifest_keeps_its_own_json_under_a_key_adserve_train_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a model of ours and an external one whose manifest keeps notes (any JSON, as the contract allows)
    notes: dict[str, Any] = {"evaluation": "AUC 0.71 on last week (offline notebook)", "row_counts": [45_000, 5_000]}
    models = InMemoryModelStore(files={"fm-a": model_files("fm-a"), "ext-1": model_files("ext-1", **notes)})
    # When the models are listed, both are, the notes read as nothing known
    assert run_model_command(parse("models"), models=models) == 0
    out = capsys.readouterr().out
    assert "fm-a " in out
    assert "ext-1 " in out
    assert "cannot be served" not in out


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_commands(parser.add_subparsers(dest="group", required=True), datetime.fromisoformat)
    return parser.parse_args(argv)


@pytest.mark.parametrize(("flag", "value"), [("--margin", "nan"), ("--margin", "-0.5"), ("--challenger-share", "nan")])
def test_train_refuses_a_margin_or_share_out_of_bounds_before_it_runs(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A NaN margin failed both of the promotion rule's comparisons, so any model, a worse one too, was promoted
    window = ["--from", START.isoformat(), "--to", END.isoformat()]
    with pytest.raises(SystemExit) as refused:
        parse("train", *window, flag, value)
    assert refused.value.code == 2
    assert f"{value!r}" in capsys.readouterr().err


def test_train_judges_against_the_bootstrap_model_wherever_it_runs_and_refuses_a_folder_without_one(
    simulated: tuple[InMemoryLogStore, Truth],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = simulated
    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--as-of", AS_OF.isoformat(), "--register-only"]
    # A folder named that holds no model: refused before anything runs (the verdict would have flipped silently)
    models = InMemoryModelStore()
    assert run_model_command(parse("train", *window, "--model-dir", str(tmp_path)), logs=store, models=models) == 2
    assert "holds no model.onnx" in capsys.readouterr().err
    assert models.versions() == []
    # Run from elsewhere without one named: the repository's bootstrap model, which Decide serves, is the baseline
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run_model_command(parse("train", *window, "--batch-size", "256"), logs=store, models=models) == 0
    assert "champion bootstrap-" in capsys.readouterr().out


def test_evaluate_says_why_there_was_nothing_to_judge_on_rather_than_print_a_table_of_dashes(
    simulated: tuple[InMemoryLogStore, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = simulated
    models = InMemoryModelStore(files={"fm-a": model_files("fm-a")})
    promote(models, "fm-a")
    # Every decision of the range younger than the reward window: nothing judged, said so, exit 3
    young = ["--from", START.isoformat(), "--to", END.isoformat(), "--as-of", (START + timedelta(hours=1)).isoformat()]
    assert run_model_command(parse("models", "evaluate", *young), logs=store, models=models) == EXIT_SKIPPED
    printed = capsys.readouterr()
    assert "nothing to evaluate on: every decision from" in printed.err
    assert "evaluated on" not in printed.out
    # A range starting before the logs whose logged decisions are all too young: none logged before those
    early = [*young[:1], (START - timedelta(days=2)).isoformat(), *young[2:]]
    assert run_model_command(parse("models", "evaluate", *early), logs=store, models=models) == EXIT_SKIPPED
    assert "nothing to evaluate on: no decision was logged from" in capsys.readouterr().err
    # The same range once its decisions are old enough: the table
    ripe = ["--from", START.isoformat(), "--to", END.isoformat(), "--as-of", AS_OF.isoformat()]
    assert run_model_command(parse("models", "evaluate", *ripe), logs=store, models=models) == 0
    assert "champion fm-a" in capsys.readouterr().out


def test_a_promotion_rule_refuses_a_margin_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="finite"):
        PromotionRule(margin=float("nan"))


def test_the_cli_trains_lists_and_promotes(
    simulated: tuple[InMemoryLogStore, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = simulated
    models = InMemoryModelStore()
    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--as-of", AS_OF.isoformat()]
    # An empty range: a clear message and its own exit status
    empty = ["--from", "2020-01-01T00:00+00:00", "--to", "2020-01-02T00:00+00:00", "--as-of", AS_OF.isoformat()]
    assert run_model_command(parse("train", *empty), logs=store, models=models) == EXIT_SKIPPED
    assert "not enough data" in capsys.readouterr().err
    assert parse("train", *window, "--refit-on-all").refit_on_all is True
    assert parse("train", *window).refit_on_all is False
    # A real run, registered only
    train = parse("train", *window, "--register-only", "--json", "--batch-size", "256")
    assert run_model_command(train, logs=store, models=models) == 0
    printed = capsys.readouterr()
    assert "SNIPS" in printed.err  # with --json the table goes to stderr and stdout holds the JSON alone
    summary = json.loads(printed.out)
    assert summary["status"] == "registered"
    version = summary["version"]
    assert json.loads(models.files[version]["manifest.json"])["fit"]["batch_size"] == 256
    # Listed, then promoted by hand
    assert run_model_command(parse("models"), models=models) == 0
    assert version in capsys.readouterr().out
    assert run_model_command(parse("promote", version), models=models) == 0
    pointer = models.read_pointer()
    assert isinstance(pointer, ActivePointer)
    assert pointer.champion == version


def test_the_schedule_trains_on_the_last_hours_as_of_now() -> None:
    settings = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model", "TRAINING_HOURS": "72"}
    )
    scheduled = scheduled_request(settings, AS_OF)
    assert (scheduled.start, scheduled.end, scheduled.as_of) == (AS_OF - timedelta(hours=72), AS_OF, AS_OF)
    assert scheduled.reward_window == timedelta(hours=24)
    assert scheduled.rule == PromotionRule("snips", 0.02)
    assert scheduled.dataset_config().erased == frozenset()
    assert scheduled.trainer.pairs == "all"
    listener_pairs = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
        | {"TRAINING_PAIRS": "with_listener"}
    )
    assert scheduled_request(listener_pairs, AS_OF).trainer.pairs == "with_listener"
    assert scheduled.trainer.refit_on_all is False
    refit = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
        | {"TRAINING_REFIT_ON_ALL": "true"}
    )
    assert scheduled_request(refit, AS_OF).trainer.refit_on_all is True
    assert scheduled.trainer.cross_fit_folds == 0
    crossed = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
        | {"TRAINING_REFIT_ON_ALL": "true", "TRAINING_CROSS_FIT_FOLDS": "5"}
    )
    assert scheduled_request(crossed, AS_OF).trainer.cross_fit_folds == 5
    assert scheduled.trainer.l2_factors_grid == ()
    grid = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
        | {"TRAINING_L2_FACTORS_GRID": "1e-4, 1e-3"}
    )
    assert scheduled_request(grid, AS_OF).trainer.l2_factors_grid == (1e-4, 1e-3)
    assert scheduled.trainer.fit.batch_size == 1024
    batches = RetrainSettings.from_env(
        {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
        | {"TRAINING_BATCH_SIZE": "128"}
    )
    assert scheduled_request(batches, AS_OF).trainer.fit.batch_size == 128
    ledger = frozenset({pseudonym("listener-erased")})
    assert scheduled_request(settings, AS_OF, ledger).dataset_config().erased == ledger


@pytest.mark.parametrize(
    ("parameter_name", "field_name"),
    [
        ("RetrainMinRows", "min_rows"),
        ("RetrainMinPositives", "min_positives"),
        ("TrainingCrossFitFolds", "training_cross_fit_folds"),
    ],
)
def test_the_template_parameter_reaches_retrain_with_the_settings_default_and_bounds(
    parameter_name: str, field_name: str
) -> None:
    assert_parameter_feeds_setting("RetrainFunction", parameter_name, RetrainSettings, field_name)


class PromotedMeanwhile(InMemoryModelStore):
    """The registry; while a retrain trains (at its publish), another writer points traffic at ``other``, as a
    second retrain or `adserve promote` may at any time."""

    other: str | None = None

    def publish(self, model_dir: Path) -> str:
        version = super().publish(model_dir)
        if self.other is not None:
            other, self.other = self.other, None
            promote(self, other, updated_by="an operator meanwhile")
        return version


def test_a_retrain_does_not_undo_a_pointer_written_while_it_trained(
    simulated: tuple[InMemoryLogStore, Truth], tmp_path: Path
) -> None:
    # Given a champion, and a promotion of another published model while the next retrain trains
    store, _ = simulated
    models = PromotedMeanwhile()
    first = retrain(store, models, request(rule=PromotionRule(margin=-1.0)), work_dir=tmp_path / "1")
    other = retrain(
        store, models, request(as_of=AS_OF + timedelta(hours=1), promotion="never"), work_dir=tmp_path / "2"
    )
    assert (first.status, other.status, models.read_pointer().champion) == ("promoted", "registered", first.version)  # type: ignore[union-attr]
    models.other = other.version
    # When a retrain that would pass its rule as a challenger finishes
    late = retrain(
        store,
        models,
        request(as_of=AS_OF + timedelta(hours=2), rule=PromotionRule(margin=-1.0), challenger_share=0.1),
        work_dir=tmp_path / "3",
    )
    # Then it is registered only, and the promotion written meanwhile stands
    pointer = models.read_pointer()
    assert pointer is not None
    assert (late.status, pointer.champion, pointer.challenger) == ("registered", other.version, None)
    assert "pointer changed while it trained" in late.message
    assert late.version in models.versions()


@pytest.mark.parametrize(
    ("argument", "value", "says"),
    [
        ("--as-of", "0001-01-01T00", "years 1970-9998"),
        ("--as-of", "9999-12-31T23", "years 1970-9998"),
        ("--reward-window-hours", "1e12", "(0, 168]"),
        ("--reward-window-hours", "nan", "(0, 168]"),
        ("--reward-window-hours", "0", "(0, 168]"),
    ],
)
def test_train_refuses_an_hour_or_window_out_of_range_before_reading_anything(
    capsys: pytest.CaptureFixture[str], argument: str, value: str, says: str
) -> None:
    window = ["--from", "2026-11-18T00", "--to", "2026-11-25T00", "--models-bucket", "b", "--logs-bucket", "l"]
    with pytest.raises(SystemExit) as exited:
        main(["train", *window, argument, value])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    "environ", [{"REWARD_WINDOW_HOURS": "168"}, {"TRAINING_HOURS": "24"}, {"TRAINING_HOURS": "12"}], ids=str
)
def test_a_reward_window_that_leaves_no_decisions_to_train_on_is_refused(environ: dict[str, str]) -> None:
    # A scheduled retrain trains on [now - TRAINING_HOURS, now - REWARD_WINDOW_HOURS]: empty for a window as long
    required = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    with pytest.raises(ConfigurationError, match="REWARD_WINDOW_HOURS"):
        RetrainSettings.from_env(required | environ)
    assert RetrainSettings.from_env(required | {"TRAINING_HOURS": "25"}).reward_window_hours == 24.0


@pytest.mark.parametrize(
    "environ", [{"TRAINING_CROSS_FIT_FOLDS": "5"}, {"TRAINING_CROSS_FIT_FOLDS": "1", "TRAINING_REFIT_ON_ALL": "true"}]
)
def test_cross_fitting_is_refused_without_the_refit_or_with_one_fold(environ: dict[str, str]) -> None:
    required = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    with pytest.raises(ConfigurationError, match="TRAINING_CROSS_FIT_FOLDS"):
        RetrainSettings.from_env(required | environ)


def test_the_cli_cross_fits_only_a_refit_within_the_scheduled_retrains_bounds(
    simulated: tuple[InMemoryLogStore, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--as-of", AS_OF.isoformat()]
    assert parse("train", *window, "--refit-on-all", "--cross-fit-folds", "5").cross_fit_folds == 5
    assert parse("train", *window).cross_fit_folds == 0
    for folds in ("1", "21", "-2", "five"):
        with pytest.raises(SystemExit):
            parse("train", *window, "--refit-on-all", "--cross-fit-folds", folds)
    without_refit = parse("train", *window, "--cross-fit-folds", "5")
    assert run_model_command(without_refit, logs=simulated[0], models=InMemoryModelStore()) == 2
    assert "--cross-fit-folds needs --refit-on-all" in capsys.readouterr().err
    field = RetrainSettings.model_fields["training_cross_fit_folds"]
    assert [bound.le for bound in field.metadata if isinstance(bound, Le)] == [MAX_CROSS_FIT_FOLDS]


def test_the_cli_bounds_the_reward_window_as_the_scheduled_retrain_does() -> None:
    field = RetrainSettings.model_fields["reward_window_hours"]
    assert [bound.le for bound in field.metadata if isinstance(bound, Le)] == [MAX_REWARD_WINDOW_HOURS]


def template_pattern(parameter: str) -> re.Pattern[str]:
    return re.compile(load_template(DEFAULT_TEMPLATE)["Parameters"][parameter]["AllowedPattern"])


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        *[("", True), ("1e-4", True), ("1e-4,1e-3", True), ("0.001,3E+2", True)],
        *[("1.2.3", False), ("1e", False), ("1-2", False), ("1e-4,", False), ("e-4", False)],
    ],
)
def test_an_l2_grid_the_template_accepts_is_one_retrain_reads(value: str, accepted: bool) -> None:
    """Before, a grid such as 1.2.3 deployed and then failed every scheduled retrain at its settings."""
    environment = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    try:
        RetrainSettings.from_env(environment | {"TRAINING_L2_FACTORS_GRID": value})
        readable = True
    except ConfigurationError:
        readable = False
    assert bool(template_pattern("TrainingL2FactorsGrid").fullmatch(value)) == accepted
    assert readable or not accepted


@pytest.mark.parametrize(
    ("schedule", "valid"),
    [
        ("rate(1 hour)", True),
        ("rate(6 hours)", True),
        ("rate(15 minutes)", True),
        ("rate(1 day)", True),
        ("rate(5 minute)", False),  # EventBridge: a singular unit for 1 only, a plural one above
        ("rate(1 hours)", False),
        ("rate(0 hours)", False),
    ],
)
def test_the_retrain_schedule_takes_what_eventbridge_takes(schedule: str, valid: bool) -> None:
    assert bool(template_pattern("RetrainSchedule").fullmatch(schedule)) == valid
