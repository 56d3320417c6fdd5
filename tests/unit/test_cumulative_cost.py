"""The cumulative cost of learning: every policy serves the same stream, the online learner's click rate is that
of the ads it served and it learns from their rewards, and the docs' table is the committed results file's."""

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adserve.decisions.policy import EpsilonGreedy
from vowpalwabbit import Workspace

from devstack import cumulative_cost, demo_sweep, generated_tables
from devstack.cumulative_cost import VW_COMMON, against_variant, online_world, run_online, stream_of
from devstack.demo import DemoConfig
from devstack.demo_sweep import (
    CAPPED_REFIT_WITH_LISTENER_PAIRS_VARIANT,
    CAPPED_VARIANT,
    CONFIDENT_VARIANT,
    FREQUENT_CAPPED_VARIANT,
    FREQUENT_RECIPE_VARIANT,
    OPTIMISTIC_VARIANT,
    SMALL_BATCH_RECIPE_VARIANT,
    VARIANTS,
    day_seed,
    replay,
    round_traffic,
)
from devstack.fakes import InMemoryLogStore
from devstack.generated_tables import DOCUMENTS, published_table
from devstack.simulated_logs import START, StreamDecision, simulate_traffic

ADS = tuple({"ad_id": f"ad-{i}", "advertiser_id": f"adv-{i}", "category": "food"} for i in range(3))


class FixedLearner:
    """A learner whose pmf is fixed: it remembers what it was taught."""

    def __init__(self, pmf: Sequence[float]) -> None:
        self.pmf = list(pmf)
        self.taught: list[list[str]] = []

    def predict(self, example: list[str]) -> list[float]:
        return self.pmf

    def learn(self, example: list[str]) -> None:
        self.taught.append(example)


def decisions(true_ctrs: Sequence[Sequence[float]]) -> list[StreamDecision]:
    return [StreamDecision({"country": "SE"}, ADS, np.array(ctrs)) for ctrs in true_ctrs]


def test_the_run_click_rate_is_that_of_the_served_ads_and_each_served_ad_is_taught_with_its_reward() -> None:
    # Given a learner that always serves the third ad, and listeners for whom it is rarely the best
    learner = FixedLearner([0.0, 0.0, 1.0])
    stream = decisions([[0.9, 0.5, 0.1], [0.9, 0.5, 0.3], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # When it serves the stream
    run = run_online(learner, stream, np.random.default_rng(1))
    # Then the run's click rate is the third ad's, not the best ad's, and every decision was learned from
    assert run.decisions == 4
    assert run.run_click_rate == pytest.approx((0.1 + 0.3 + 1.0 + 0.0) / 4)
    assert run.learned == 4
    # And each lesson labels the third ad (cost -1 for a click, 0 for none, at the probability it was served with)
    labels = [[line.partition("|")[0].strip() for line in example[1:]] for example in learner.taught]
    assert all(label[:2] == ["", ""] for label in labels)
    assert labels[2][2] == "0:-1.0:1.0"  # true CTR 1: always a click
    assert labels[3][2] == "0:0.0:1.0"  # true CTR 0: never
    assert run.clicks == sum(label[2] == "0:-1.0:1.0" for label in labels)
    assert all(example[0].startswith("shared |Listener country=SE") for example in learner.taught)


def test_the_served_ad_is_drawn_from_the_pmf_and_an_unplayed_one_teaches_nothing() -> None:
    # Given a learner that serves the first two ads half and half, one always clicked and one never
    learner = FixedLearner([0.5, 0.5, 0.0])
    stream = decisions([[1.0, 0.0, 0.7]] * 2_000)
    # When the app plays only 60% of the served ads
    run = run_online(learner, stream, np.random.default_rng(2), play_rate=0.6)
    # Then half the run was clicked in expectation, and only the played ads were learned from
    assert run.run_click_rate == pytest.approx(0.5, abs=4.5 * (0.25 / 2_000) ** 0.5)
    assert run.learned == len(learner.taught)
    assert run.learned / run.decisions == pytest.approx(0.6, abs=4.5 * (0.24 / 2_000) ** 0.5)
    clicked = [example for example in learner.taught if "0:-1.0:0.5 " in example[1]]
    assert run.clicks == len(clicked)  # every click was the first ad's, the one with true CTR 1


def test_vowpal_wabbit_learns_online_on_a_small_stream_and_each_round_is_reported() -> None:
    config = dataclasses.replace(DemoConfig(), rounds=(250, 150))
    stream = stream_of(config, seed=4)
    workspace = Workspace(f"{VW_COMMON} --epsilon 0.1")
    try:
        # online_world's draws for world 4 on the config's day
        run = run_online(workspace, stream, np.random.default_rng([day_seed(dataclasses.replace(config, seed=4)), 23]))
    finally:
        workspace.finish()
    assert run.decisions == run.learned == 400
    assert 0.0 < run.run_click_rate <= float(np.mean([d.true_ctr.max() for d in stream]))

    world = online_world(config, 4, ["--epsilon 0.1"])

    oracle, vw = world["runs"]["oracle"], world["runs"]["vw --epsilon 0.1"]
    assert world["decisions"] == 400
    assert vw["run_click_rate"] == pytest.approx(run.run_click_rate)  # the same stream and draws: the same run
    for result in (oracle, vw):
        first, second = result["round_click_rates"]
        assert (250 * first + 150 * second) / 400 == pytest.approx(result["run_click_rate"], abs=1e-4)
    assert oracle["run_click_rate"] > vw["run_click_rate"]


def test_the_stream_is_the_same_whatever_serves_it_so_every_policy_serves_the_same_listeners() -> None:
    config = dataclasses.replace(DemoConfig(seed=4), rounds=(300, 200))
    world = config.world()

    def random_scores(listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:
        return np.random.default_rng(len(listeners)).random(len(ads))

    served: list[StreamDecision] = []
    end = START
    for number, size in enumerate(config.rounds, start=1):
        traffic = dataclasses.replace(
            round_traffic(config, world, number, size, end), exploration=EpsilonGreedy(0.9), keep_stream=True
        )
        served += simulate_traffic(InMemoryLogStore(), world, traffic, scorer=random_scores).stream
        end += traffic.span

    stream = stream_of(config, seed=4)

    assert len(stream) == len(served) == 500
    for mine, theirs in zip(stream, served, strict=True):
        assert mine.listener == theirs.listener
        assert [ad["ad_id"] for ad in mine.ads] == [ad["ad_id"] for ad in theirs.ads]
        np.testing.assert_array_equal(mine.true_ctr, theirs.true_ctr)


def test_a_sweep_variant_and_vw_are_compared_round_by_round_on_the_stream_of_the_variants_rounds(
    tmp_path: Path,
) -> None:
    # Given a sweep variant (its own settings) replayed in a small run of two rounds
    variant = "squarecb, heard ads"
    config = DemoConfig(
        rounds=(1_500, 1_000), eval_decisions=1_000, offline_decisions=2_000, play_rate=0.8, out_dir=tmp_path
    )
    # When it is compared with VW
    world = against_variant(config, variant, 3, ["--epsilon 0.1"])
    # Then both runs are those their own tools measure on that stream: the variant's replay and VW's online run
    mine = replay(dataclasses.replace(config, **VARIANTS[variant]), 3)
    vw = online_world(dataclasses.replace(config, **VARIANTS[variant]), 3, ["--epsilon 0.1"])["runs"][
        "vw --epsilon 0.1"
    ]
    assert world["rounds"] == [1_500, 1_000]
    assert world["decisions"] == 2_500
    assert world["runs"][variant]["round_click_rates"] == mine["round_click_rates"]
    assert world["runs"]["vw --epsilon 0.1"]["round_click_rates"] == vw["round_click_rates"]
    # And each is reported per round, next to the oracle's
    assert set(world["runs"]) == {"oracle", "vw --epsilon 0.1", variant}
    assert all(len(run["round_click_rates"]) == 2 for run in world["runs"].values())
    # And given that replay (as a demo_sweep results file holds it), VW alone runs and the comparison is the same
    again = against_variant(config, variant, 3, ["--epsilon 0.1"], mine)
    for name, run in world["runs"].items():  # all but VW's wall time
        assert {key: value for key, value in again["runs"][name].items() if key != "seconds"} == {
            key: value for key, value in run.items() if key != "seconds"
        }


def test_replays_are_taken_from_a_sweep_file_by_world_and_day_at_the_against_play_rate(tmp_path: Path) -> None:
    runs = [
        {"variant": "recipe", "seed": 1, "weekday": "4", "run_click_rate": 0.1},
        {"variant": "recipe", "seed": 1, "weekday": "5", "run_click_rate": 0.2},
        {"variant": "other", "seed": 1, "weekday": "4", "run_click_rate": 0.3},
    ]
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"settings": {"play_rate": demo_sweep.PLAY_RATE}, "runs": runs}))
    found = cumulative_cost.sweep_runs(path, "recipe")
    assert {key: run["run_click_rate"] for key, run in found.items()} == {(1, "4"): 0.1, (1, "5"): 0.2}
    path.write_text(json.dumps({"settings": {"play_rate": 1.0}, "runs": runs}))
    with pytest.raises(SystemExit, match="play rate"):
        cumulative_cost.sweep_runs(path, "recipe")


def committed() -> dict[str, Any]:
    results: dict[str, Any] = json.loads(cumulative_cost.RESULTS.read_text())
    return results


def test_the_table_is_the_committed_results() -> None:
    results = committed()
    assert published_table("cumulative-cost") == cumulative_cost.markdown(results), (
        "run python -m devstack.cumulative_cost --docs-only"
    )
    policies = {row["policy"] for row in results["summary"]}
    assert {"oracle", *cumulative_cost.POLICIES} <= policies
    assert {f"vw {setting}" for setting in cumulative_cost.VW_SETTINGS} <= policies


def test_a_table_edited_by_hand_is_caught() -> None:
    results = committed()
    edited = copy.deepcopy(results)
    edited["summary"][0]["run_click_rate"] += 0.01
    assert cumulative_cost.markdown(edited) != published_table("cumulative-cost")


def test_the_against_table_sets_the_variant_beside_vw_per_world_with_their_means() -> None:
    def world(seed: int, oracle: float, mine: float, vw: tuple[float, float]) -> dict[str, Any]:
        runs = {"oracle": oracle, "recipe": mine, "vw --epsilon 0.1": vw[0], "vw --bag 5": vw[1]}
        return {
            "seed": seed,
            "decisions": 80_000,
            "rounds": [1_500, 78_500],
            "runs": {name: {"run_click_rate": rate} for name, rate in runs.items()},
        }

    results = cumulative_cost.against_results(
        "recipe", 0.8, [world(1, 0.2, 0.11, (0.1, 0.09)), world(2, 0.2, 0.08, (0.07, 0.1))], "9.11.9"
    )
    lines = cumulative_cost.against_markdown(results).splitlines()
    assert "(the variant, *recipe*, retrains after rounds of [1500, 78500]" in lines[0]
    assert lines[2] == "| world | oracle | variant | vw --epsilon 0.1 | vw --bag 5 | variant vs VW's best |"
    assert lines[4:] == [
        "| 1 | 20.00% | 11.00% | 10.00% | 9.00% | +10.0% |",  # against the better VW setting of the world
        "| 2 | 20.00% | 8.00% | 7.00% | 10.00% | -20.0% |",
        "| mean | 20.00% | 9.50% | 8.50% | 9.50% | +0.0% |",  # means, then the mean variant over the best mean
    ]


def test_over_several_days_of_week_the_against_table_has_a_row_per_day_and_counts_the_worlds_ahead() -> None:
    def world(seed: int, day: str, mine: float, vw: float) -> dict[str, Any]:
        runs = {"oracle": 0.2, "recipe": mine, "vw --squarecb": vw}
        return {
            "seed": seed,
            "weekday": day,
            "decisions": 80_000,
            "rounds": [1_500, 78_500],
            "runs": {name: {"run_click_rate": rate} for name, rate in runs.items()},
        }

    worlds = [world(1, "2", 0.11, 0.1), world(2, "2", 0.09, 0.1), world(1, "5", 0.12, 0.1), world(2, "5", 0.12, 0.1)]
    lines = cumulative_cost.against_markdown(cumulative_cost.against_results("recipe", 0.8, worlds, "9.11.9"))
    header, *rows = lines.splitlines()[2:]
    assert "decisions, worlds 1-2 on each of 2 days of week (the variant" in lines
    assert header == "| day | oracle | variant | vw --squarecb | variant vs VW's best | variant ahead of VW in |"
    assert rows[1:] == [
        "| Wed | 20.00% | 10.00% | 10.00% | +0.0% | 1 of 2 |",
        "| Sat | 20.00% | 12.00% | 10.00% | +20.0% | 2 of 2 |",
        "| mean | 20.00% | 11.00% | 10.00% | +10.0% | 3 of 4 |",
    ]


def test_the_command_rewrites_either_table_from_its_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given copies of the docs whose tables match the committed results
    copies = tuple(tmp_path / document.name for document in generated_tables.DOCUMENTS)
    for document, copy_of in zip(generated_tables.DOCUMENTS, copies, strict=True):
        copy_of.write_text(document.read_text())
    monkeypatch.setattr(generated_tables, "DOCUMENTS", copies)
    against = cumulative_cost.AGAINST_RESULTS.with_name("vw_against_frequent_capped.json")
    # When the command re-renders the policies' table and an --against table from their files
    assert cumulative_cost.main(["--docs-only"]) == 0
    assert (
        cumulative_cost.main(
            [
                "--against",
                FREQUENT_CAPPED_VARIANT,
                "--docs-only",
                "--out",
                str(against),
                "--region",
                "vw-against-frequent-capped",
            ]
        )
        == 0
    )
    # Then both print their table and leave the docs as they were
    printed = capsys.readouterr().out
    assert "| policy | click rate over the run |" in printed
    assert "| mean |" in printed
    assert [copy_of.read_text() for copy_of in copies] == [document.read_text() for document in DOCUMENTS]


@pytest.mark.parametrize("option", [["--weekdays", "2-5"], ["--replays", "sweep.json"]])
def test_days_and_replays_are_refused_without_against(option: list[str]) -> None:
    with pytest.raises(SystemExit):
        cumulative_cost.main([*option, "--docs-only"])


@pytest.mark.parametrize(
    ("region", "variant"),
    [
        ("vw-against", CAPPED_REFIT_WITH_LISTENER_PAIRS_VARIANT),
        ("vw-against-corrected", CAPPED_VARIANT),
        ("vw-against-confident-corrected", CONFIDENT_VARIANT),
        ("vw-against-frequent-days-corrected", FREQUENT_RECIPE_VARIANT),
        ("vw-against-small-batch", SMALL_BATCH_RECIPE_VARIANT),
        ("vw-against-frequent", FREQUENT_RECIPE_VARIANT),
        ("vw-against-frequent-capped", FREQUENT_CAPPED_VARIANT),
        ("vw-against-optimistic", OPTIMISTIC_VARIANT),
        ("vw-against-confident", CONFIDENT_VARIANT),
    ],
)
def test_the_readme_against_tables_are_the_committed_variants_against_vw(region: str, variant: str) -> None:
    results_file = cumulative_cost.AGAINST_RESULTS.with_name(f"{region.replace('-', '_')}.json")  # region's file
    results = json.loads(results_file.read_text())
    assert published_table(region) == cumulative_cost.against_markdown(results), (
        f"run python -m devstack.cumulative_cost --against {results['variant']!r} --out {results_file} "
        f"--region {region} --docs-only"
    )
    assert results["variant"] == variant
    days = {world.get("weekday") for world in results["worlds"]}  # None: the clock's day, before --weekdays
    assert sorted((world["seed"], world.get("weekday") or "") for world in results["worlds"]) == sorted(
        (seed, day or "") for day in days for seed in range(1, 11)
    )


def test_each_day_of_a_world_is_a_draw_of_its_own_and_each_day_replays_the_same() -> None:
    # Given one world on two days of week (``--weekdays``)
    wednesday, thursday = (dataclasses.replace(DemoConfig(seed=4), rounds=(300,), weekday=day) for day in "23")

    def listeners(config: DemoConfig) -> list[dict[str, str]]:
        return [{k: v for k, v in d.listener.items() if k != "day_of_week"} for d in stream_of(config, seed=4)]

    # Then the days draw other listeners (with the world's seed alone they shared all but the day's effect)
    assert listeners(wednesday) != listeners(thursday)
    # And a day replayed draws the same ones again
    assert listeners(wednesday) == listeners(dataclasses.replace(wednesday))
