"""Figure 3 times cold starts with warm bytecode caches, as Lambda's layers ship them."""

from pathlib import Path

from bench import cold_start


def test_the_warm_up_leaves_bytecode_for_the_timed_runs(tmp_path: Path) -> None:
    """Under PYTHONDONTWRITEBYTECODE each timed child would compile our modules from source."""
    (tmp_path / "warmed.py").write_text("VALUE = 1\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    code = f"import warmed; print({cold_start.MARKER!r} + '{{}}')"
    cold_start.spawn(code, [], cold_start.writing_bytecode(env))
    assert list((tmp_path / "__pycache__").glob("warmed.*.pyc"))
