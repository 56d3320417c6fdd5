"""The pieces every offline measurement shares: replays on a process pool and the common options."""

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from devstack import generated_tables
from devstack.generated_tables import measurement_arguments, publish, published_table, run_replays


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


@pytest.fixture
def two_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    readme, learning = tmp_path / "README.md", tmp_path / "learning.md"
    readme.write_text("intro\n<!-- first -->\nold\n<!-- /first -->\n")
    learning.write_text("<!-- second -->\nold\n<!-- /second -->\nend\n")
    monkeypatch.setattr(generated_tables, "DOCUMENTS", (readme, learning))
    return readme, learning


def test_a_table_is_published_into_the_document_that_holds_its_region(
    two_documents: tuple[Path, Path], tmp_path: Path
) -> None:
    readme, learning = two_documents
    written = publish({"rows": 2}, tmp_path / "results.json", "second", lambda results: f"{results['rows']} rows\n")
    assert written == {"rows": 2}
    assert json.loads((tmp_path / "results.json").read_text()) == {"rows": 2}
    assert learning.read_text() == "<!-- second -->\n2 rows\n<!-- /second -->\nend\n"
    assert readme.read_text() == "intro\n<!-- first -->\nold\n<!-- /first -->\n"
    assert published_table("second") == "2 rows\n"


@pytest.mark.parametrize("elsewhere", ["", "<!-- first -->\ncopy\n<!-- /first -->\n"])
def test_a_region_in_no_document_or_in_two_is_refused(two_documents: tuple[Path, Path], elsewhere: str) -> None:
    _, learning = two_documents
    learning.write_text(elsewhere)
    region = "first" if elsewhere else "second"
    with pytest.raises(ValueError, match=f"<!-- {region} -->"):
        published_table(region)
