"""Nothing in the repository refers to a file outside it: a clone must be complete on its own."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# Built from parts so that this file does not match itself.
OUTSIDE = ("DESIGN" + ".md", ".." + "/shared", "/work" + "/")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def _references(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return []
    return [reference for reference in OUTSIDE if reference in text]


def test_no_tracked_file_refers_outside_the_repository() -> None:
    found = {str(path.relative_to(ROOT)): refs for path in _tracked_text_files() if (refs := _references(path))}
    assert found == {}


@pytest.mark.parametrize("reference", OUTSIDE)
def test_each_outside_reference_is_caught(tmp_path: Path, reference: str) -> None:
    document = tmp_path / "README.md"
    document.write_text(f"see {reference} for the design\n")
    assert _references(document) == [reference]
