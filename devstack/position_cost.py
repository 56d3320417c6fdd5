"""What the ``slot`` feature buys when later ads in a break are heard less: offline replays with and without it.

    python -m devstack.position_cost [--seeds 1-3] [--workers 2]
    python -m devstack.position_cost --docs-only     # only rewrite the table in docs/learning.md from the results file

Each world is the demo's (``DemoConfig.world`` with each seed) with ``examination``: the k-th ad of a break clicks
``EXAMINATION[k - 1]`` times as often as it would first (``adserve.training.simulation.World``); a world without
it is the control. Breaks hold ``SLOTS`` ads. Per world and *variant* (the feature spec with ``slot``, or without
it), the loop is ``fatigue_cost.learn``'s: random round 1, then each retrained model serves the next round
(epsilon-greedy 0.4, equal values), through the real records, dataset reader (with ``slot``, each example carries
the rank it was heard at) and trainer. The last model then fills fresh breaks greedily, scoring every candidate in
slot 1 (``SERVING_SLOT``), as Decide does.

Reported per variant: the expected clicks per break over the greedy oracle's (the true probabilities), and, per
slot, the model's estimate of the ads it put there over their true slot-1 click rate. The estimate is of each ad
as a first ad: 100% is an estimate of preference alone; without the slot feature every estimate is pulled
towards the average examination of the slots the ad was logged in.

The results go to ``bench/results/position_cost.json`` (committed), and docs/learning.md's table between
``<!-- position-cost -->`` and ``<!-- /position-cost -->`` is rewritten from it;
``tests/unit/test_position_cost.py`` fails when the two disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from adserve.models.features import DEFAULT_SPEC, FeatureSpec

from devstack.demo import DemoConfig
from devstack.fatigue_cost import learn, measure, traffic
from devstack.generated_tables import measurement_arguments, publish, run_replays
from devstack.simulated_logs import TrafficConfig, Truth

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "position_cost.json"
SLOTS = 3
ROUNDS = (10_000, 10_000, 10_000)
"""Breaks, not ads: three examples each, so as many examples as ``fatigue_cost``'s rounds in half the time."""
EVAL_DECISIONS = 10_000
EXAMINATION = (1.0, 0.6, 0.4)
WORLDS: dict[str, tuple[float, ...]] = {"no position effect": (), "slots examined 1, 0.6, 0.4": EXAMINATION}
VARIANTS: dict[str, FeatureSpec] = {
    "with slot": DEFAULT_SPEC,
    "without slot": dataclasses.replace(
        DEFAULT_SPEC, candidate_fields=tuple(f for f in DEFAULT_SPEC.candidate_fields if f != "slot")
    ),
}


def breaks(seed: int, decisions: int, start: datetime, **changes: Any) -> TrafficConfig:
    """``fatigue_cost.traffic`` with new listeners (no caps) and breaks of ``SLOTS`` ads."""
    return traffic(seed, decisions, start, **({"audience": None, "daily_cap": None, "max_ads": SLOTS} | changes))


def per_slot(truth: Truth) -> list[float]:
    """Per slot: the mean score of the ads chosen for it over their mean true slot-1 click rate."""
    return [
        round(truth.by_rank[rank].scores / truth.by_rank[rank].true_ctr_first, 5)
        for rank in range(1, SLOTS + 1)
        if rank in truth.by_rank
    ]


def _replay(world_name: str, seed: int) -> list[dict[str, Any]]:
    world = DemoConfig(seed=seed).world(examination=WORLDS[world_name])
    oracle = measure(world, None, seed, breaks, EVAL_DECISIONS)
    oracle_rate = oracle.served_true_ctr / (oracle.chosen / SLOTS)
    runs = []
    for variant, spec in VARIANTS.items():
        truth = measure(world, learn(world, spec, seed, breaks, ROUNDS), seed, breaks, EVAL_DECISIONS)
        rate = truth.served_true_ctr / (truth.chosen / SLOTS)
        runs.append(
            {
                "world": world_name,
                "variant": variant,
                "seed": seed,
                "greedy_clicks_per_break": round(rate, 5),
                "oracle_clicks_per_break": round(oracle_rate, 5),
                "greedy_over_oracle": round(rate / oracle_rate, 5),
                "estimate_over_truth_by_slot": per_slot(truth),
            }
        )
    return runs


def summarize(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per world and variant: means over seeds."""
    rows = []
    for world_name in WORLDS:
        for variant in VARIANTS:
            mine = [run for run in runs if run["world"] == world_name and run["variant"] == variant]
            if not mine:
                continue
            means = {
                name: round(float(np.mean([run[name] for run in mine])), 5)
                for name in ("greedy_clicks_per_break", "oracle_clicks_per_break", "greedy_over_oracle")
            }
            by_slot = np.mean([run["estimate_over_truth_by_slot"] for run in mine], axis=0)
            rows.append(
                {
                    "world": world_name,
                    "variant": variant,
                    "worlds": len(mine),
                    **means,
                    "estimate_over_truth_by_slot": [round(float(value), 5) for value in by_slot],
                }
            )
    return rows


def markdown(results: Mapping[str, Any]) -> str:
    rows = results["summary"]
    slots = " | ".join(f"slot {k} estimate / truth" for k in range(1, SLOTS + 1))
    lines = [
        f"Offline replays (`python -m devstack.position_cost`), means over {rows[0]['worlds']} worlds; settings "
        f"{json.dumps(results['settings'])}.",
        "",
        f"| world | model | greedy clicks per break | oracle | greedy / oracle | {slots} |",
        "|---|---|---:|---:|---:|" + "---:|" * SLOTS,
    ]
    for row in rows:
        estimates = " | ".join(f"{value:.1%}" for value in row["estimate_over_truth_by_slot"])
        lines.append(
            f"| {row['world']} | {row['variant']} | {row['greedy_clicks_per_break']:.4f} "
            f"| {row['oracle_clicks_per_break']:.4f} | {row['greedy_over_oracle']:.1%} | {estimates} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    measurement_arguments(parser, "1-3", RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, Any] | None = None
    if not args.docs_only:
        settings = {
            "rounds": list(ROUNDS),
            "eval_decisions": EVAL_DECISIONS,
            "slots": SLOTS,
            "examination": list(EXAMINATION),
            "epsilon": DemoConfig().epsilon,
        }
        jobs = [(world_name, seed) for seed in args.seeds for world_name in WORLDS]
        runs = run_replays(_replay, jobs, args.workers)
        results = {"settings": settings, "summary": summarize(runs), "runs": runs}
    print(markdown(publish(results, args.out, "position-cost", markdown)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
