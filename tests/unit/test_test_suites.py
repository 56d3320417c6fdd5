"""`make check` leaves out the tests marked slow; every end-to-end test must carry that mark."""

import ast
from pathlib import Path

import pytest

E2E = Path(__file__).parents[1] / "e2e"


def _marks_module_slow(module: Path) -> bool:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            return ast.unparse(node.value) == "pytest.mark.slow"
    return False


@pytest.mark.parametrize("module", sorted(E2E.glob("test_*.py")), ids=lambda path: path.name)
def test_every_end_to_end_module_is_marked_slow(module: Path) -> None:
    assert _marks_module_slow(module), f"{module.name} starts processes: add `pytestmark = pytest.mark.slow`"


def test_the_end_to_end_suite_is_found() -> None:
    assert len(list(E2E.glob("test_*.py"))) >= 4
