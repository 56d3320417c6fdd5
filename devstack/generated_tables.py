"""What the offline measurements (demo_sweep, consent_cost, cumulative_cost, fatigue_cost, position_cost) share:
seed ranges on the command line, and README tables rendered from a committed results file between
``<!-- NAME -->`` markers."""

import argparse
import json
import re
from collections.abc import Callable, Mapping
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
