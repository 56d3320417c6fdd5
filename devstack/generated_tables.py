"""What the offline measurements (demo_sweep, consent_cost, cumulative_cost, fatigue_cost, position_cost) share:
seed ranges and the other common options on the command line, replays on a process pool, and tables rendered from
a committed results file between ``<!-- NAME -->`` markers, in README.md or docs/learning.md (``DOCUMENTS``)."""

import argparse
import json
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "learning.md")
"""Where the tables live: README holds the demo's own, docs/learning.md those of the levers measured on the way."""


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
    parser.add_argument("--docs-only", action="store_true", help="only rewrite the docs' table from --out")


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


def _region(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(name)} -->\n)(.*?)(<!-- /{re.escape(name)} -->)", re.DOTALL)


def document_with(region: str) -> Path:
    """The one document of ``DOCUMENTS`` that holds region ``region`` once."""
    holding = [path for path in DOCUMENTS if len(_region(region).findall(path.read_text())) == 1]
    if len(holding) != 1:
        raise ValueError(f"expected one document with a <!-- {region} --> region, found {len(holding)}")
    return holding[0]


def published_table(region: str) -> str:
    """What region ``region`` of its document holds now, between its markers."""
    match = _region(region).search(document_with(region).read_text())
    assert match is not None  # document_with found it
    return match.group(2)


def publish(
    results: Mapping[str, Any] | None, out: Path, region: str, render: Callable[[Mapping[str, Any]], str]
) -> Mapping[str, Any]:
    """Write *results* to *out* (unless None: ``--docs-only``), then rewrite region *region* of its document with
    ``render`` of what *out* holds, so the table always says what the committed file says."""
    if results is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    written: Mapping[str, Any] = json.loads(out.read_text())
    document = document_with(region)
    body = render(written)
    document.write_text(_region(region).sub(lambda match: match.group(1) + body + match.group(3), document.read_text()))
    return written
