"""The offline replay of the demo: the same loop, measured against the world's truth, checked by the demo's rules."""

import argparse
import copy
import dataclasses
import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.decisions.policy import SquareCB
from adserve.decisions.service import PolicySettings
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC
from adserve.wiring.retrain import scheduled_request
from adserve.wiring.settings import RetrainSettings

from devstack import demo_sweep
from devstack.demo import DemoConfig, fresh_listeners, server_weekday
from devstack.demo_sweep import replay
from devstack.generated_tables import published_table
from devstack.simulated_logs import START


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
    # Given the app plays 70% of the chosen ads, and SquareCB learning from heard ads only, its gamma growing
    config = dataclasses.replace(
        DemoConfig(out_dir=tmp_path),
        rounds=(2_000, 1_500),
        eval_decisions=1_000,
        offline_decisions=2_000,
        play_rate=0.7,
        policy="squarecb",
        examples_from="impressions",
        gamma_scale=3.0,
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
    # And each round explored as Decide serves its model: from the count in the model's manifest (the bootstrap
    # model's 0, uniform; then the first retrain's 2,000 decisions, 3 x sqrt(2,000) = 134)
    assert run["round_exploration"] == pytest.approx([0.0, 3.0 * 2_000**0.5], abs=1e-3)
    assert run["snips_error"] is not None
    # And the estimate's own relative standard error is kept beside its error, as its manifest records it
    relative = run["off_policy_standard_errors"]["snips"] / run["off_policy"]["snips"]
    assert run["snips_relative_standard_error"] == pytest.approx(relative, abs=1e-4)
    assert run["snips_relative_standard_error"] > 0.0
    assert run["auc_gap"] is not None


def committed() -> dict[str, Any]:
    results: dict[str, Any] = json.loads(demo_sweep.RESULTS.read_text())
    return results


def test_the_readme_table_is_the_committed_results() -> None:
    results = committed()
    assert published_table("demo-sweep") == demo_sweep.markdown(results), (
        "run python -m devstack.demo_sweep --docs-only"
    )
    assert demo_sweep.BASELINE in results["summary"]
    assert set(results["summary"]) <= set(demo_sweep.VARIANTS)


def test_a_table_edited_by_hand_is_caught() -> None:
    results = committed()
    edited = copy.deepcopy(results)
    first = next(iter(edited["summary"].values()))
    first["greedy_over_oracle"] -= 0.01
    assert demo_sweep.markdown(edited) != published_table("demo-sweep")


def test_the_readme_checks_table_is_the_committed_results() -> None:
    results = json.loads(demo_sweep.CHECKS_RESULTS.read_text())
    assert published_table("demo-checks") == demo_sweep.checks_markdown(results), (
        "run python -m devstack.demo_sweep --checks --docs-only"
    )
    assert results["settings"]["play_rate"] == DemoConfig().play_rate  # measured as the demo runs
    assert DemoConfig().policy == "squarecb"
    assert "squarecb, heard ads" in {run["variant"] for run in results["runs"]}


@pytest.mark.parametrize(
    ("region", "results_file", "variants"),
    [
        ("refit-on-all", "refit_on_all.json", {"squarecb, heard ads", demo_sweep.REFIT_VARIANT}),
        (
            "capped-refit",
            "capped_refit.json",
            {
                demo_sweep.BASELINE,
                demo_sweep.CAPPED_VARIANT,
                demo_sweep.CAPPED_REFIT_VARIANT,
                demo_sweep.CAPPED_REFIT_WITH_LISTENER_PAIRS_VARIANT,
            },
        ),
        (
            "recipe-days",
            "recipe_days.json",
            {
                demo_sweep.BASELINE,
                demo_sweep.CAPPED_REFIT_WITH_LISTENER_PAIRS_VARIANT,
                demo_sweep.WIDER_RECIPE_VARIANT,
                demo_sweep.SMALL_BATCH_RECIPE_VARIANT,
                demo_sweep.FREQUENT_RECIPE_VARIANT,
                demo_sweep.FREQUENT_CAPPED_VARIANT,
                demo_sweep.OPTIMISTIC_VARIANT,
                demo_sweep.SOONER_VARIANT,
                demo_sweep.CONFIDENT_VARIANT,
            },
        ),
        (
            "recipe-corrected",
            "recipe_corrected.json",
            {demo_sweep.BASELINE, demo_sweep.FREQUENT_RECIPE_VARIANT, demo_sweep.CONFIDENT_VARIANT},
        ),
        (
            "recipe-days-corrected",
            "recipe_days_corrected.json",
            {demo_sweep.BASELINE, demo_sweep.FREQUENT_RECIPE_VARIANT},
        ),
        (
            "recipe-cross-fit",
            "recipe_cross_fit.json",
            {
                demo_sweep.BASELINE,
                demo_sweep.FREQUENT_RECIPE_VARIANT,
                demo_sweep.CROSS_FIT_RECIPE_VARIANT,
                demo_sweep.TEN_FOLD_CROSS_FIT_VARIANT,
            },
        ),
    ],
)
def test_the_readme_tables_of_replayed_variants_are_the_committed_results(
    region: str, results_file: str, variants: set[str]
) -> None:
    results = json.loads((demo_sweep.REPO_ROOT / "bench" / "results" / results_file).read_text())
    assert published_table(region) == demo_sweep.markdown(results), (
        f"run python -m devstack.demo_sweep --region {region} --out bench/results/{results_file} --docs-only"
    )
    assert set(results["summary"]) == variants


def test_the_checks_table_counts_each_check_per_variant_and_names_the_worlds_it_misses() -> None:
    def run(variant: str, seed: int, *passed: bool) -> dict[str, Any]:
        checks = [{"name": name, "passed": ok, "detail": ""} for name, ok in zip(("AUC", "SNIPS"), passed, strict=True)]
        return {
            "variant": variant,
            "seed": seed,
            "checks": checks,
            "greedy_over_oracle": 0.9,
            "run_click_rate": seed / 100,
        }

    results = {
        "settings": {"play_rate": 1.0},
        "runs": [run("a", 1, True, True), run("a", 2, True, False), run("b", 1, False, False), run("b", 2, True, True)],
    }
    rows = demo_sweep.checks_markdown(results).splitlines()[2:]
    assert rows == [
        "| check | a | b |",
        "|---|---:|---:|",
        "| AUC | 2/2 | 1/2 (missed: world 1) |",
        "| SNIPS | 1/2 (missed: world 2) | 1/2 (missed: world 1) |",
        "| all checks | 1/2 (missed: world 2) | 1/2 (missed: world 1) |",
        "| greedy / oracle, mean | 90.0% | 90.0% |",
        "| run click rate, mean | 1.50% | 1.50% |",
    ]


def summarized_run(seed: int, variant: str = demo_sweep.BASELINE, **fields: Any) -> dict[str, Any]:
    """A replay's result with what ``summarize`` reads, each column at a plain value unless *fields* set it."""
    return {
        "variant": variant,
        "seed": seed,
        "run_click_rate": 0.1,
        "greedy_over_oracle": 0.9,
        "auc_gap": 0.01,
        "snips_error": 0.05,
        "dropped_no_impression": 0,
    } | fields


def test_the_run_click_rate_is_compared_with_the_baseline_world_by_world() -> None:
    # Given two worlds where a variant earns 20% and 0% more than the baseline over the run
    def run(variant: str, seed: int, rate: float) -> dict[str, Any]:
        return summarized_run(seed, variant, run_click_rate=rate, snips_error=0.05 if seed == 1 else 0.2)

    other = next(name for name in demo_sweep.VARIANTS if name != demo_sweep.BASELINE)
    runs = [run(demo_sweep.BASELINE, 1, 0.05), run(demo_sweep.BASELINE, 2, 0.10)]
    runs += [run(other, 1, 0.06), run(other, 2, 0.10)]
    # When summarised
    summary = demo_sweep.summarize(runs)
    # Then the lift is the mean of the worlds' ratios (10%), not the ratio of the means (6.7%)
    assert summary[other]["run_vs_baseline"] == pytest.approx(0.10)
    assert summary[demo_sweep.BASELINE]["run_vs_baseline"] == pytest.approx(0.0)
    assert summary[other]["snips_within_10pct"] == "1/2"


def test_snips_is_also_counted_against_the_policys_true_click_rate_where_its_drawn_clicks_miss() -> None:
    # Given a world where SNIPS (0.11) misses the drawn clicks (0.099) by 11% but the true rate (0.104) by 5.8%,
    # and a run from before the true rate was kept
    def run(seed: int, expected: dict[str, float]) -> dict[str, Any]:
        return summarized_run(seed, snips_error=0.111, off_policy={"snips": 0.11}, phases_expected=expected)

    runs = [run(1, {demo_sweep.RETRAINED_PHASE: 0.104}), run(2, {})]
    # When summarised
    row = demo_sweep.summarize(runs)[demo_sweep.BASELINE]
    # Then it misses against the clicks, is within against the true rate, and the older run counts as a miss
    assert demo_sweep.snips_error_of_true_value(runs[0]) == pytest.approx(0.006 / 0.104)
    assert demo_sweep.snips_error_of_true_value(runs[1]) is None
    assert (row["snips_within_10pct"], row["snips_within_10pct_of_true_value"]) == ("0/2", "1/2")


def test_a_round_explores_with_the_policy_decide_derives_for_the_model_serving_it(tmp_path: Path) -> None:
    config = DemoConfig(policy="squarecb", rounds=(1_000, 3_000, 5_000), gamma_scale=2.0)
    world = config.world()
    decide = PolicySettings(exploration=config.exploration(), token_ttl=timedelta(hours=1), gamma_scale=2.0)
    bootstrap = CtrModel.load(demo_sweep.BOOTSTRAP_MODEL, DEFAULT_SPEC)
    folder = tmp_path / "retrained"
    shutil.copytree(demo_sweep.BOOTSTRAP_MODEL, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"version": "retrained", "logged_decisions": 4_000}))
    retrained = CtrModel.load(folder, DEFAULT_SPEC)
    gammas = []
    for number, model in ((1, bootstrap), (3, retrained)):
        traffic = demo_sweep.round_traffic(config, world, number, 1_000, START, logged_decisions=model.logged_decisions)
        assert traffic.exploration == decide.for_model(model).policy
        gammas.append(traffic.exploration.parameter)
    assert gammas == pytest.approx([0.0, 2.0 * 4_000**0.5])  # the bootstrap model's round is uniform
    # Without a scale, every round has the configured gamma, as Decide does
    fixed = dataclasses.replace(config, gamma_scale=0.0)
    assert (
        demo_sweep.round_traffic(fixed, world, 3, 5_000, START, logged_decisions=4_000).exploration.parameter == 200.0
    )


def test_replaying_one_variant_keeps_the_other_variants_runs_only_under_the_same_settings() -> None:
    # Given results of two variants in two worlds
    other = next(name for name in demo_sweep.VARIANTS if name != demo_sweep.BASELINE)
    settings = {"rounds": [1_000], "gamma": 200.0}
    runs = [{"variant": variant, "seed": seed} for variant in (demo_sweep.BASELINE, other) for seed in (1, 2)]
    previous = {"settings": settings, "runs": runs}
    # When only `other` is replayed, the baseline's runs stand and `other`'s are left to be replaced
    kept = demo_sweep.kept_runs(previous, settings, [other])
    assert kept == [{"variant": demo_sweep.BASELINE, "seed": 1}, {"variant": demo_sweep.BASELINE, "seed": 2}]
    # And runs measured under other settings are refused, not mixed into one table
    with pytest.raises(SystemExit, match="settings"):
        demo_sweep.kept_runs(previous, settings | {"gamma": 100.0}, [other])


def test_the_capped_doubling_variant_explores_as_the_doubling_one_until_its_gamma_reaches_the_cap() -> None:
    name = f"{demo_sweep.DOUBLING_VARIANT} up to {demo_sweep.LOGGABLE_GAMMA_CAP:g}"
    capped = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[name])
    doubling = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.DOUBLING_VARIANT])
    assert capped.rounds == doubling.rounds == (1_500, 1_500, 3_000, 6_000, 12_000, 24_000, 32_000)
    learned = [0, 1_500, 3_000, 6_000, 12_000, 24_000, 48_000]  # what the model serving each round learned from
    gammas = [capped.exploration(n).parameter for n in learned]
    assert gammas == pytest.approx([0.0, 116.19, 164.32, 232.38, 300.0, 300.0, 300.0], abs=0.01)
    assert [doubling.exploration(n).parameter for n in learned][:4] == pytest.approx(gammas[:4])
    assert doubling.exploration(48_000).parameter == pytest.approx(657.27, abs=0.01)


@pytest.mark.parametrize(
    ("variant", "growth", "first_marks"),
    [
        (demo_sweep.GROWTH_VARIANT, "1.5", [1_500, 2_250, 3_375, 5_063]),
        (demo_sweep.FREQUENT_RECIPE_VARIANT, "1.3", [1_500, 1_950, 2_535, 3_296]),
    ],
)
def test_the_growth_variants_retrain_where_retrain_with_their_growth_would(
    variant: str, growth: str, first_marks: list[int]
) -> None:
    env = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    settings = RetrainSettings.from_env(env | {"RETRAIN_FIRST_DECISIONS": "1500", "RETRAIN_GROWTH": growth})
    schedule = scheduled_request(settings, datetime(2026, 12, 2, tzinfo=UTC)).schedule
    assert schedule is not None
    config = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[variant])
    marks = list(accumulate(config.rounds))[:-1]  # the logged decisions at each retrain; the last round ends the run
    assert sum(config.rounds) == sum(DemoConfig().rounds)  # the demo's 80k decisions, in more rounds
    assert marks[:4] == first_marks
    champion: int | None = None
    for decisions in range(1, sum(config.rounds)):  # Retrain, asked after every decision, is due at the marks only
        if schedule.due(decisions, champion, champion_age=None if champion is None else timedelta(0)):
            assert decisions == marks.pop(0)
            champion = decisions
    assert marks == []
    # and every round explores as the capped doubling variant's rule says for what its model learned from
    capped = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[f"{demo_sweep.DOUBLING_VARIANT} up to 300"])
    learned = [0, *accumulate(config.rounds)][:-1]
    assert [config.exploration(n).parameter for n in learned] == [capped.exploration(n).parameter for n in learned]


def test_the_frequent_variant_capped_at_500_explores_as_the_one_at_300_until_its_gamma_passes_300() -> None:
    capped_500 = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.FREQUENT_CAPPED_VARIANT])
    capped_300 = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.FREQUENT_RECIPE_VARIANT])
    assert capped_500.rounds == capped_300.rounds
    assert capped_500.trainer == capped_300.trainer
    learned = [0, *accumulate(capped_500.rounds)][:-1]  # what the model serving each round learned from
    gammas = [capped_500.exploration(n).parameter for n in learned]
    assert gammas == pytest.approx([min(500.0, 3.0 * math.sqrt(n)) for n in learned])
    below_300 = [n for n in learned if 3.0 * math.sqrt(n) <= 300.0]  # 3 sqrt(n) reaches 300 at 10k decisions
    assert [capped_300.exploration(n).parameter for n in below_300] == gammas[: len(below_300)]
    assert gammas[-1] == 500.0
    assert capped_300.exploration(learned[-1]).parameter == 300.0


def test_a_gated_replay_serves_each_round_with_the_champion_the_promotion_rule_left(tmp_path: Path) -> None:
    config = DemoConfig(
        policy="squarecb",
        rounds=(1_500, 1_500, 1_500, 1_500),
        gamma_scale=2.0,
        gated=True,
        eval_decisions=1_000,
        offline_decisions=2_000,
        out_dir=tmp_path,
    )

    run = replay(config, seed=5)

    # Each round's gamma is the one Decide derives for the model serving it: the last one promoted
    learned = [1_500, 3_000, 4_500, 6_000]  # the decisions each retrain learned from
    serving = [0]  # the bootstrap model's rounds are uniform
    for decisions, promoted in zip(learned[:-1], run["promoted"][:-1], strict=True):
        serving.append(decisions if promoted else serving[-1])
    assert len(run["promoted"]) == 4
    assert run["round_exploration"] == pytest.approx([2.0 * n**0.5 for n in serving], abs=1e-3)


def test_a_fixed_day_of_week_serves_every_round_and_every_fresh_listener_on_that_day() -> None:
    # Given a replay fixed to Saturday and one on the clock's day
    saturday, clock = DemoConfig(weekday="5"), DemoConfig()
    world = saturday.world()
    # When a round's traffic and the offline phases' listeners are made
    traffic = demo_sweep.round_traffic(saturday, world, 2, 1_000, START)
    listeners = fresh_listeners(world, 50, np.random.default_rng(1), saturday.weekday)
    # Then both are on Saturday, whatever the clock says; unfixed, both take the clock's day as Decide does
    assert traffic.day_of_week == "5"
    assert {listener["day_of_week"] for listener in listeners} == {"5"}
    today = str(datetime.now(UTC).weekday())
    assert demo_sweep.round_traffic(clock, world, 2, 1_000, START).day_of_week in {today, server_weekday()}


def test_weekdays_are_days_zero_to_six_and_each_replay_is_compared_with_the_baseline_of_its_world_and_day() -> None:
    assert demo_sweep.weekday_range("2-5") == ["2", "3", "4", "5"]
    with pytest.raises(argparse.ArgumentTypeError, match="0 \\(Monday\\) to 6"):
        demo_sweep.weekday_range("5-7")

    # Given one world replayed on Wednesday and Saturday, the baseline earning 5% and 10%
    def run(variant: str, weekday: str, rate: float) -> dict[str, Any]:
        return {
            "variant": variant,
            "seed": 1,
            "weekday": weekday,
            "run_click_rate": rate,
            "greedy_over_oracle": 0.9,
            "auc_gap": 0.01,
            "snips_error": 0.05,
            "dropped_no_impression": 0,
            "checks": [{"name": "SNIPS", "passed": weekday == "2", "detail": ""}],
        }

    other = next(name for name in demo_sweep.VARIANTS if name != demo_sweep.BASELINE)
    runs = [run(demo_sweep.BASELINE, "2", 0.05), run(demo_sweep.BASELINE, "5", 0.10)]
    runs += [run(other, "2", 0.06), run(other, "5", 0.10)]
    summary = demo_sweep.summarize(runs)
    results = {"settings": {"weekdays": ["2", "5"]}, "runs": runs, "summary": summary}
    # Then each day's lift is against that day's baseline (20% and 0%), and the tables say what was replayed
    assert summary[other]["run_vs_baseline"] == pytest.approx(0.10)
    assert summary[other]["worlds"] == 2
    assert "means over 1 worlds (1-1) x 2 days of week (Wed, Sat);" in demo_sweep.markdown(results)
    checks = demo_sweep.checks_markdown(results)
    assert "1 worlds (1-1) x 2 days of week (Wed, Sat);" in checks
    assert "| SNIPS | 1/2 (missed: world 1 (Sat)) | 1/2 (missed: world 1 (Sat)) |" in checks


def test_the_optimistic_variant_is_the_capped_one_exploring_by_what_each_model_heard(tmp_path: Path) -> None:
    optimistic = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.OPTIMISTIC_VARIANT])
    capped = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.FREQUENT_CAPPED_VARIANT])
    assert dataclasses.replace(optimistic, optimism=0.0) == capped
    # A model that counted what it heard serves with the optimism; the bootstrap, which counted nothing, without
    assert optimistic.exploration(10_000, heard_counted=True) == SquareCB(300.0, optimism=demo_sweep.OPTIMISM)
    assert optimistic.exploration(0, heard_counted=False) == SquareCB(0.0)
    # And a small replay of it runs: the first round uniform, the second at the first model's gamma
    config = dataclasses.replace(
        optimistic, out_dir=tmp_path, rounds=(2_000, 1_500), eval_decisions=1_000, offline_decisions=2_000
    )
    run = replay(config, seed=3)
    assert run["round_exploration"] == pytest.approx([0.0, 3.0 * 2_000**0.5], abs=1e-3)
    assert run["snips_error"] is not None


def test_the_sooner_variant_is_the_optimistic_one_retrained_where_retrain_with_its_settings_would() -> None:
    sooner = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.SOONER_VARIANT])
    optimistic = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.OPTIMISTIC_VARIANT])
    defaults = DemoConfig()
    assert (defaults.min_rows, defaults.min_positives) == (
        RetrainSettings.model_fields["min_rows"].default,
        RetrainSettings.model_fields["min_positives"].default,
    )
    replaced = dataclasses.replace(sooner, min_rows=defaults.min_rows, min_positives=defaults.min_positives)
    assert dataclasses.replace(replaced, rounds=optimistic.rounds) == optimistic
    env = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    settings = RetrainSettings.from_env(
        env | {"RETRAIN_FIRST_DECISIONS": "300", "RETRAIN_GROWTH": "1.3", "MIN_ROWS": "200", "MIN_POSITIVES": "10"}
    )
    request = scheduled_request(settings, datetime(2026, 12, 4, tzinfo=UTC))
    assert (request.min_rows, request.min_positives) == (sooner.min_rows, sooner.min_positives)
    assert request.schedule is not None
    marks = list(accumulate(sooner.rounds))[:-1]
    assert marks[:3] == [300, 390, 507]
    assert sum(sooner.rounds) == sum(DemoConfig().rounds)
    champion: int | None = None
    for decisions in range(1, sum(sooner.rounds)):
        if request.schedule.due(decisions, champion, champion_age=None if champion is None else timedelta(0)):
            assert decisions == marks.pop(0)
            champion = decisions
    assert marks == []


def test_the_confident_variant_is_the_optimistic_one_with_gamma_growing_ten_times_the_root() -> None:
    confident = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.CONFIDENT_VARIANT])
    optimistic = dataclasses.replace(DemoConfig(), **demo_sweep.VARIANTS[demo_sweep.OPTIMISTIC_VARIANT])
    assert dataclasses.replace(confident, gamma_scale=optimistic.gamma_scale) == optimistic
    assert confident.exploration(0, heard_counted=False) == SquareCB(0.0)
    assert confident.exploration(1_500, heard_counted=True).parameter == pytest.approx(10.0 * 1_500**0.5)
    # The cap from the third retrained model on (2,535 decisions), where the optimistic variant reaches it at 28k
    third = list(accumulate(confident.rounds))[2]
    assert confident.exploration(third, heard_counted=True) == SquareCB(500.0, optimism=demo_sweep.OPTIMISM)
    assert optimistic.exploration(third, heard_counted=True).parameter < 200.0


def test_a_retrain_with_too_little_data_publishes_nothing_and_the_model_serving_serves_on(tmp_path: Path) -> None:
    config = DemoConfig(
        policy="squarecb",
        gamma_scale=3.0,
        gamma=500.0,
        rounds=(150, 2_000, 1_500),  # the first retrain has ~150 heard ads, under min_rows
        min_rows=500,
        eval_decisions=1_000,
        offline_decisions=2_000,
        out_dir=tmp_path,
    )

    run = replay(config, seed=3)

    # The bootstrap model serves the second round too (uniform), the model of 2,150 decisions the third
    assert run["round_exploration"] == pytest.approx([0.0, 0.0, 3.0 * 2_150**0.5], abs=1e-3)
    assert run["promoted"][0] is False
    assert run["checks"][0]["detail"] == "3,650 logged decisions"


def test_the_snips_count_is_set_beside_what_the_estimates_own_standard_errors_expect() -> None:
    # Given two worlds whose SNIPS has a relative standard error of 5% (within 10% with chance 95.4%) and 20% (38.3%)
    def run(seed: int, relative_standard_error: float | None) -> dict[str, Any]:
        return summarized_run(seed, snips_relative_standard_error=relative_standard_error)

    # When summarised, then the expectation is the sum of the two chances
    assert demo_sweep.summarize([run(1, 0.05), run(2, 0.2)])[demo_sweep.BASELINE]["snips_expected_within_10pct"] == (
        "1.3/2"
    )
    # And a run that recorded no standard error leaves it unknown rather than counted
    assert demo_sweep.expected_within([run(1, 0.05), run(2, None)]) == "-"
