"""What the ``exposure`` feature buys in worlds where listeners tire of an ad: offline replays with and without it.

    python -m devstack.fatigue_cost [--seeds 1-3] [--fatigue 0,0.4] [--workers 2]
    python -m devstack.fatigue_cost --docs-only     # only rewrite the table in docs/learning.md from the results file

Each world is the demo's (``DemoConfig.world`` with each seed) with ``fatigue``: every earlier impression of a
campaign today lowers the listener's click logit by that much (``adserve.training.simulation.World``). Its
listeners come back (an audience of ``AUDIENCE``, ``simulated_logs.TrafficConfig.audience``) and every campaign is
capped per day (``DAILY_CAP``, high enough that it rarely binds), so Decide's caps Query holds each candidate's
count, which the decision record logs (personalised decisions only).

Per world and *variant* (the model's feature spec with ``exposure``, or the same spec without it), the
loop is the demo's: round 1 is served at random (no model yet), the model retrained on every round so far serves
the next one (epsilon-greedy 0.4, one ad, equal values), through the real records, dataset reader
(``adserve.training.dataset``: the variant's encoder reads the logged exposure or ignores it) and trainer. The
last model then serves fresh returning listeners greedily; its click rate, over the greedy oracle's (the true
probabilities, exposure included), is what each variant reaches. A world without fatigue is the control: there
the feature can only cost (a field to learn that means nothing).

The results go to ``bench/results/fatigue_cost.json`` (committed), and docs/learning.md's table between
``<!-- fatigue-cost -->`` and ``<!-- /fatigue-cost -->`` is rewritten from it;
``tests/unit/test_fatigue_cost.py`` fails when the two disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from adserve.decisions.policy import GREEDY
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder, FeatureSpec, candidate_features
from adserve.training.dataset import DatasetConfig, TrainingDataset
from adserve.training.simulation import World
from adserve.training.trainer import collect, fit

from devstack.demo import EPSILON_DEMO, VALUE_CPM, DemoConfig
from devstack.fakes import InMemoryLogStore
from devstack.generated_tables import measurement_arguments, publish, run_replays
from devstack.simulated_logs import START, LoggingScorer, TrafficConfig, Truth, simulate_traffic

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "fatigue_cost.json"
ROUNDS = (20_000, 20_000, 20_000)
EVAL_DECISIONS = 20_000
AUDIENCE = 1_000
"""Listeners per round: 20 decisions each, so the same ad comes back to the same listener."""
DAILY_CAP = 12
DEFAULT_FATIGUE = (0.0, 0.4)
SECONDS_PER_DECISION = 0.1
REWARD_WINDOW = timedelta(hours=1)
VARIANTS: dict[str, FeatureSpec] = {
    "with exposure": DEFAULT_SPEC,
    "without exposure": dataclasses.replace(
        DEFAULT_SPEC, candidate_fields=tuple(f for f in DEFAULT_SPEC.candidate_fields if f != "exposure")
    ),
}


class _Discard:
    def put_object(self, key: str, body: bytes) -> None:
        """The measuring traffic's logs are not needed."""


def _random_scores(seed: int) -> LoggingScorer:
    rng = np.random.default_rng(seed)

    def score(listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:  # noqa: ARG001
        return np.asarray(rng.random(len(ads)))

    return score


def model_scorer(spec: FeatureSpec, predict: Callable[[np.ndarray], np.ndarray]) -> LoggingScorer:
    """Score candidates as Decide does: the candidate dicts carry the ad's features and its own values."""
    encoder = FeatureEncoder(spec)

    def score(listeners: Sequence[Mapping[str, str]], ads: Sequence[Mapping[str, str]]) -> np.ndarray:
        own = [candidate_features(None) | dict(ad) for ad in ads]
        return np.asarray(predict(encoder.encode_rows(listeners, ads, own)), dtype=np.float64)

    return score


def traffic(seed: int, decisions: int, start: datetime, **changes: Any) -> TrafficConfig:
    """Returning listeners, every campaign capped per day, one ad per decision at equal values."""
    settings: dict[str, Any] = {
        "decisions": decisions,
        "start": start,
        "span": timedelta(seconds=decisions * SECONDS_PER_DECISION),
        "max_ads": 1,
        "exploration": EPSILON_DEMO.exploration(),
        "outcome_delay": timedelta(seconds=5),
        "complete_rate": 0.0,
        "value_cpm": VALUE_CPM,
        "day_of_week": "2",
        "seed": seed,
        "audience": AUDIENCE,
        "daily_cap": DAILY_CAP,
        "keep_truth": False,
    }
    return TrafficConfig(**(settings | changes))


def learn(
    world: World,
    spec: FeatureSpec,
    seed: int,
    make_traffic: Callable[..., TrafficConfig] = traffic,
    rounds: Sequence[int] = ROUNDS,
) -> LoggingScorer:
    """The demo's loop for one variant: random round 1, then each retrained model serves the next round."""
    logs = InMemoryLogStore()
    scorer, end = _random_scores(seed), START
    config = DemoConfig().trainer
    for number, decisions in enumerate(rounds, start=1):
        round_traffic = make_traffic(seed * 100 + number, decisions, end, candidates=len(world.ads))
        simulate_traffic(logs, world, round_traffic, scorer=scorer, encoder=FeatureEncoder(spec))
        end += round_traffic.span
        dataset = TrainingDataset(
            logs, DatasetConfig(START, end, end + REWARD_WINDOW, reward_window=REWARD_WINDOW), FeatureEncoder(spec)
        )
        trained = fit(collect(dataset, config), spec, config)
        scorer = model_scorer(spec, trained.model.predict)
    return scorer


def measure(
    world: World,
    scorer: LoggingScorer | None,
    seed: int,
    make_traffic: Callable[..., TrafficConfig] = traffic,
    decisions: int = EVAL_DECISIONS,
) -> Truth:
    """Fresh listeners served greedily by ``scorer`` (None: the true probabilities, the oracle)."""
    measuring = make_traffic(
        seed * 100 + 99, decisions, START, candidates=len(world.ads), exploration=GREEDY, noise=0.0
    )
    return simulate_traffic(_Discard(), world, measuring, scorer=scorer)


def greedy_click_rate(world: World, scorer: LoggingScorer | None, seed: int) -> float:
    """The expected click rate of serving fresh returning listeners greedily by ``scorer`` (None: the truth)."""
    truth = measure(world, scorer, seed)
    return truth.served_true_ctr / truth.chosen


def _replay(fatigue: float, seed: int) -> list[dict[str, Any]]:
    world = DemoConfig(seed=seed).world(fatigue=fatigue)
    oracle = greedy_click_rate(world, None, seed)
    runs = []
    for variant, spec in VARIANTS.items():
        greedy = greedy_click_rate(world, learn(world, spec, seed), seed)
        runs.append(
            {
                "fatigue": fatigue,
                "variant": variant,
                "seed": seed,
                "greedy_click_rate": round(greedy, 5),
                "oracle_click_rate": round(oracle, 5),
                "greedy_over_oracle": round(greedy / oracle, 5),
            }
        )
    return runs


def summarize(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per fatigue and variant: the means over worlds of the greedy click rate, the oracle's and their ratio."""
    rows = []
    for fatigue in sorted({run["fatigue"] for run in runs}):
        for variant in VARIANTS:
            mine = [run for run in runs if run["fatigue"] == fatigue and run["variant"] == variant]
            if not mine:
                continue
            means = {
                name: round(float(np.mean([run[name] for run in mine])), 5)
                for name in ("greedy_click_rate", "oracle_click_rate", "greedy_over_oracle")
            }
            rows.append({"fatigue": fatigue, "variant": variant, "worlds": len(mine), **means})
    return rows


def markdown(results: Mapping[str, Any]) -> str:
    rows = results["summary"]
    lines = [
        f"Offline replays (`python -m devstack.fatigue_cost`), means over {rows[0]['worlds']} worlds; settings "
        f"{json.dumps(results['settings'])}.",
        "",
        "| fatigue (logit per earlier impression) | model | greedy click rate | oracle click rate | greedy / oracle |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fatigue']:g} | {row['variant']} | {row['greedy_click_rate']:.2%} "
            f"| {row['oracle_click_rate']:.2%} | {row['greedy_over_oracle']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(part) for part in text.split(","))
    except ValueError:
        levels = (-1.0,)
    if not all(level >= 0.0 for level in levels):
        raise argparse.ArgumentTypeError(f"expected comma-separated fatigue levels >= 0, got {text!r}")
    return levels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    measurement_arguments(parser, "1-3", RESULTS)
    parser.add_argument("--fatigue", type=_levels, default=DEFAULT_FATIGUE, help="fatigue levels, e.g. 0,0.4")
    args = parser.parse_args(argv)
    results: dict[str, Any] | None = None
    if not args.docs_only:
        settings = {
            "rounds": list(ROUNDS),
            "eval_decisions": EVAL_DECISIONS,
            "audience": AUDIENCE,
            "daily_cap": DAILY_CAP,
            "epsilon": DemoConfig().epsilon,
        }
        jobs = [(level, seed) for seed in args.seeds for level in args.fatigue]
        runs = run_replays(_replay, jobs, args.workers)
        results = {"settings": settings, "summary": summarize(runs), "runs": runs}
    print(markdown(publish(results, args.out, "fatigue-cost", markdown)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
