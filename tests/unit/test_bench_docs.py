"""The benchmark figures in the docs come from the committed results file and cannot drift from it."""

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import docs


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return docs.load_results()


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for name in docs.DOCUMENTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(docs.REPO_ROOT / name, tmp_path / name)
    return tmp_path


def test_the_figures_in_the_docs_agree_with_the_committed_results(results: dict[str, Any]) -> None:
    assert docs.stale(docs.REPO_ROOT, results) == [], "run `make docs` (or `make bench`) and commit the docs"


def test_every_kind_of_figure_is_shown_somewhere() -> None:
    text = "".join((docs.REPO_ROOT / name).read_text() for name in docs.DOCUMENTS)
    assert set(docs.OPENING.findall(text)) == set(docs.RENDERERS)


def test_a_figure_edited_by_hand_is_caught(results: dict[str, Any], repo_copy: Path) -> None:
    readme = repo_copy / "README.md"
    figure = docs.targets(results).splitlines()[2]
    edited = figure.replace("PASS", "**MISS**") if "PASS" in figure else figure.replace("MISS", "PASS")
    readme.write_text(readme.read_text().replace(figure, edited))
    assert docs.stale(repo_copy, results) == ["README.md"]


def test_a_new_run_makes_the_docs_stale_until_they_are_rewritten(results: dict[str, Any], repo_copy: Path) -> None:
    newer = copy.deepcopy(results)
    newer["machine"]["git_commit"] = "0123abc"
    newer["figures"]["decide_in_process"]["sizes"]["50"]["full_handler"]["p99_ms"] = 4.321
    assert docs.stale(repo_copy, newer) == list(docs.DOCUMENTS)
    for name in docs.DOCUMENTS:
        (repo_copy / name).write_text(docs.rewrite((repo_copy / name).read_text(), newer))
    assert docs.stale(repo_copy, newer) == []
    assert "4.32" in (repo_copy / "README.md").read_text()


def test_rewriting_changes_only_the_regions(results: dict[str, Any]) -> None:
    text = "before\n<!-- bench:track -->\nold figure\n<!-- /bench -->\nafter\n"
    rewritten = docs.rewrite(text, results)
    assert rewritten == f"before\n<!-- bench:track -->\n{docs.track(results)}<!-- /bench -->\nafter\n"
    assert docs.rewrite(rewritten, results) == rewritten


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<!-- bench:no-such-figure -->\n<!-- /bench -->\n", "unknown bench regions"),
        ("<!-- bench:track -->\nnever closed\n", "not closed"),
    ],
)
def test_an_unknown_or_unclosed_region_is_an_error(results: dict[str, Any], text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        docs.rewrite(text, results)


def test_a_partial_results_file_says_which_figure_is_missing(results: dict[str, Any]) -> None:
    partial = copy.deepcopy(results)
    partial["figures"]["cold_start"] = {"skipped": "--skip-moto"}
    with pytest.raises(ValueError, match="no 'handler_spawn_to_response_ms' for the 'cold-start' figures"):
        docs.rewrite("<!-- bench:cold-start -->\n<!-- /bench -->\n", partial)


def test_the_consent_figure_is_rendered_once_measured_and_said_missing_before(results: dict[str, Any]) -> None:
    older = copy.deepcopy(results)
    older["figures"].pop("decide_consent", None)
    assert "not in this results file yet" in docs.decide_consent(older)
    newer = copy.deepcopy(results)
    mode = {"p50_ms": 0.5, "p99_ms": 1.25}
    newer["figures"]["decide_consent"] = {
        "candidates": 50,
        "decide_personalised": mode,
        "decide_contextual": mode | {"p99_ms": 1.2},
        "p99_contextual_to_personalised": 0.96,
    }
    rendered = docs.decide_consent(newer)
    assert "0.5 / 1.25 ms (p50 / p99) personalised" in rendered
    assert "contextual / personalised p99 = 0.96" in rendered


def test_the_record_table_shows_the_handlers_own_cpu_once_measured(results: dict[str, Any]) -> None:
    older = copy.deepcopy(results)
    for data in older["figures"]["record_fakes"]["sizes"].values():
        for path in ("full_handler", "domain_process_batch"):
            data[path].pop("cpu_us_per_event_p50", None)
    assert "own CPU" not in docs.record(older)
    newer = copy.deepcopy(older)
    for data in newer["figures"]["record_fakes"]["sizes"].values():
        for path in ("full_handler", "domain_process_batch"):
            data[path] |= {"us_per_event_p50": 81.6, "cpu_us_per_event_p50": 44.4}
    rendered = docs.record(newer)
    assert "µs per event, median (wall / own CPU)" in rendered
    assert "| 82 / 44 |" in rendered
