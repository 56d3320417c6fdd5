"""What the offline measurements (demo_sweep, consent_cost, cumulative_cost, fatigue_cost, position_cost) share:
seed ranges and the other common options on the command line, replays on a process pool, and README tables
rendered from a committed results file between ``<!-- NAME -->`` markers."""

import argparse
import json
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def seed_range(text: str) -> list[int]:
    """``3`` or ``1-10`` (inclusive), for ``--seeds``."""
    low, _, high = text.partition("-")
    try:
        return list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed or a range like 1-10, got {text!r}") from None


def measurement_arguments(parser: argparse.ArgumentParser, seeds: str, results: Path) -> None:
    """``--seeds`` (default *seeds*), ``--workers``, ``--out`` (default *results*) and ``--docs-only``."""
    parser.add_argument("--seeds", type=seed_range, default=seed_range(seeds), help=f"world seeds, e.g. 7 or {seeds}")
    parser.add_argument("--workers", type=int, default=2, help="replays run in parallel")
    parser.add_argument("--out", type=Path, default=results, help="JSON results")
    parser.add_argument("--docs-only", action="store_true", help="only rewrite README's table from --out")


def run_replays(
    replay: Callable[..., list[dict[str, Any]]], jobs: Iterable[tuple[Any, ...]], workers: int
) -> list[dict[str, Any]]:
    """Every job's runs (``replay(*job)``) from a pool of *workers* processes, each printed as its job ends, so
    a long measurement shows its progress."""
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as pool:
        for job_runs in pool.map(replay, *zip(*jobs, strict=True)):
            for run in job_runs:
                print(json.dumps(run), flush=True)  # noqa: T201
            runs += job_runs
    return runs


def rewrite_region(text: str, name: str, body: str) -> str:
    """``text`` with the region between ``<!-- name -->`` and ``<!-- /name -->`` replaced by ``body``; an
    error unless there is exactly one."""
    region = re.compile(rf"(<!-- {re.escape(name)} -->\n)(.*?)(<!-- /{re.escape(name)} -->)", re.DOTALL)
    rewritten, count = region.subn(lambda match: match.group(1) + body + match.group(3), text)
    if count != 1:
        raise ValueError(f"expected one <!-- {name} --> region, found {count}")
    return rewritten


def publish(
    results: Mapping[str, Any] | None, out: Path, rewrite: Callable[[str, Mapping[str, Any]], str]
) -> Mapping[str, Any]:
    """Write *results* to *out* (unless None: ``--docs-only``), then render README's table from what *out* holds,
    so the table always says what the committed file says."""
    if results is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    written: Mapping[str, Any] = json.loads(out.read_text())
    README.write_text(rewrite(README.read_text(), written))
    return written
