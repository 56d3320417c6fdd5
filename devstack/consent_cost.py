"""What consent costs the policy: the demo sweep's loop at 0 %, 50 % and 100 % of listeners consenting.

    python -m devstack.consent_cost [--seeds 1-2] [--shares 0,0.5,1] [--workers 2]
    python -m devstack.consent_cost --docs-only     # only rewrite the table in docs/learning.md from the results file

Each world (``--seeds``) is replayed offline (``demo_sweep.replay``: the demo's rounds, the real serving
policy and trainer) once per share of listeners consenting to personalisation. A listener who does not
consent (and every minor, whatever it consents to) is served as Decide serves it: scored and logged with
only ``CONTEXTUAL_FIELDS`` (``simulated_logs.served_view``), and one model, trained on both kinds of rows,
serves both. The final greedy policy is measured on fresh listeners with the same share; its click rate,
and its ratio to the greedy oracle's (which always knows the whole listener), are the cost of consent.

The results go to ``bench/results/consent_cost.json`` (committed), and docs/learning.md's table between
``<!-- consent-cost -->`` and ``<!-- /consent-cost -->`` is rewritten from it;
``tests/unit/test_consent_cost.py`` fails when the two disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.demo import EPSILON_DEMO
from devstack.demo_sweep import replay
from devstack.generated_tables import measurement_arguments, publish, run_replays

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "consent_cost.json"
DEFAULT_SHARES = (0.0, 0.5, 1.0)


def _replay(share: float, seed: int) -> list[dict[str, Any]]:
    run = replay(dataclasses.replace(EPSILON_DEMO, consent_share=share), seed)
    keep = ("seed", "greedy_click_rate", "oracle_click_rate", "greedy_over_oracle", "run_click_rate", "examples")
    return [{"consent_share": share} | {name: run[name] for name in keep}]


def summarize(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per share: the means over worlds of the greedy policy's click rate, the oracle's, and their ratio."""
    rows = []
    for share in sorted({run["consent_share"] for run in runs}):
        mine = [run for run in runs if run["consent_share"] == share]
        rows.append(
            {
                "consent_share": share,
                "worlds": len(mine),
                **{
                    name: round(sum(run[name] for run in mine) / len(mine), 5)
                    for name in ("greedy_click_rate", "oracle_click_rate", "greedy_over_oracle")
                },
            }
        )
    return rows


def markdown(results: Mapping[str, Any]) -> str:
    rows = results["summary"]
    full = next((row for row in rows if row["consent_share"] == 1.0), None)
    lines = [
        f"Offline replays of the demo's loop (`python -m devstack.consent_cost`), means over {rows[0]['worlds']} "
        f"worlds; settings {json.dumps(results['settings'])}.",
        "",
        "| listeners consenting | policy click rate | oracle click rate | policy / oracle | vs 100% consenting |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        relative = "" if full is None else f"{row['greedy_click_rate'] / full['greedy_click_rate']:.1%}"
        lines.append(
            f"| {row['consent_share']:.0%} | {row['greedy_click_rate']:.2%} | {row['oracle_click_rate']:.2%} "
            f"| {row['greedy_over_oracle']:.1%} | {relative} |"
        )
    return "\n".join(lines) + "\n"


def _shares(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        shares = (-1.0,)
    if not all(0.0 <= share <= 1.0 for share in shares):
        raise argparse.ArgumentTypeError(f"expected comma-separated shares from 0 to 1, got {text!r}")
    return shares


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    measurement_arguments(parser, "1-2", RESULTS)
    parser.add_argument("--shares", type=_shares, default=DEFAULT_SHARES, help="consenting shares, e.g. 0,0.5,1")
    args = parser.parse_args(argv)
    results: dict[str, Any] | None = None
    if not args.docs_only:
        config = EPSILON_DEMO
        settings = {"rounds": list(config.rounds), "policy": config.policy, "epsilon": config.epsilon}
        jobs = [(share, seed) for seed in args.seeds for share in args.shares]
        runs = run_replays(_replay, jobs, args.workers)
        results = {"settings": settings, "summary": summarize(runs), "runs": runs}
    print(markdown(publish(results, args.out, "consent-cost", markdown)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
