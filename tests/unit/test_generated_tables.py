"""The pieces every offline measurement shares: replays on a process pool and the common options."""

import argparse
from pathlib import Path
from typing import Any

import pytest

from devstack.generated_tables import measurement_arguments, run_replays


def _two_runs(level: float, seed: int) -> list[dict[str, Any]]:
    return [{"level": level, "seed": seed, "arm": arm} for arm in ("with", "without")]


def test_replays_run_in_worker_processes_and_come_back_in_job_order(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [(level, seed) for seed in (1, 2) for level in (0.0, 0.4)]
    runs = run_replays(_two_runs, jobs, workers=2)
    assert [(r["seed"], r["level"], r["arm"]) for r in runs] == [
        (seed, level, arm) for seed in (1, 2) for level in (0.0, 0.4) for arm in ("with", "without")
    ]
    assert len(capsys.readouterr().out.splitlines()) == len(runs)  # each run printed as its job ends


def test_the_common_options_default_to_the_measurement_own_seeds_and_results_file() -> None:
    parser = argparse.ArgumentParser()
    measurement_arguments(parser, "1-3", Path("results.json"))
    args = parser.parse_args([])
    assert (args.seeds, args.workers, args.out, args.docs_only) == ([1, 2, 3], 2, Path("results.json"), False)
    assert parser.parse_args(["--seeds", "7", "--docs-only"]).seeds == [7]
