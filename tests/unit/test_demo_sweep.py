"""The offline replay of the demo: the same loop, measured against the world's truth, checked by the demo's rules."""

import dataclasses
from pathlib import Path

import pytest

from devstack.demo import DemoConfig
from devstack.demo_sweep import replay


def test_a_small_replay_retrains_each_round_and_judges_the_last_model_by_the_demo_checks(tmp_path: Path) -> None:
    config = dataclasses.replace(
        DemoConfig(out_dir=tmp_path), rounds=(2_000, 1_500), eval_decisions=1_000, offline_decisions=2_000
    )

    run = replay(config, seed=3)

    assert run["seed"] == 3
    assert list(run["phases"]) == ["bootstrap model", "retrained model", "oracle (true probabilities)", "random"]
    assert run["phases"]["oracle (true probabilities)"] > run["phases"]["random"]
    names = [check["name"] for check in run["checks"]]
    assert names[0] == "≥ 50k logged decisions"
    assert run["checks"][0]["detail"] == "3,500 logged decisions"  # both rounds, every decision joined
    assert "SNIPS estimate within 10% of measured" in names
    assert 0.5 < run["bayes_auc"] <= 1.0
    assert 0.0 < run["holdout_auc"] <= 1.0
    assert all(value is not None and value > 0 for value in run["off_policy"].values())


def test_unplayed_ads_are_dropped_from_training_and_counted_and_the_sweep_columns_are_measured(
    tmp_path: Path,
) -> None:
    # Given the app plays 70% of the chosen ads, and SquareCB learning from heard ads only
    config = dataclasses.replace(
        DemoConfig(out_dir=tmp_path),
        rounds=(2_000, 1_500),
        eval_decisions=1_000,
        offline_decisions=2_000,
        play_rate=0.7,
        policy="squarecb",
        examples_from="impressions",
    )
    # When the loop is replayed
    run = replay(config, seed=3)
    # Then about 30% of the last retrain's chosen ads were never heard: dropped and counted, not non-clicks
    chosen = run["examples"] + run["dropped_no_impression"]
    dropped = run["dropped_no_impression"] / chosen
    assert abs(dropped - 0.3) <= 4.5 * (0.3 * 0.7 / chosen) ** 0.5
    # And the sweep's columns are measured against the truth
    assert 0.0 < run["run_click_rate"] < 1.0
    first, second = run["round_click_rates"]  # the run's click rate, round by round
    assert (2_000 * first + 1_500 * second) / 3_500 == pytest.approx(run["run_click_rate"], abs=1e-4)
    assert 0.0 < run["greedy_over_oracle"] <= 1.1
    assert run["snips_error"] is not None
    assert run["auc_gap"] is not None
