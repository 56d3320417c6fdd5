"""Figure 3 and its term-by-term breakdown: warm bytecode caches, as Lambda's layers ship them; stable term names."""

from pathlib import Path

from bench import cold_start, cold_terms


def test_the_warm_up_leaves_bytecode_for_the_timed_runs(tmp_path: Path) -> None:
    """Under PYTHONDONTWRITEBYTECODE each timed child would compile our modules from source."""
    (tmp_path / "warmed.py").write_text("VALUE = 1\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    code = f"import warmed; print({cold_start.MARKER!r} + '{{}}')"
    cold_start.spawn(code, [], cold_start.writing_bytecode(env))
    assert list((tmp_path / "__pycache__").glob("warmed.*.pyc"))


def test_cold_terms_name_calls_by_what_stays_the_same_from_run_to_run() -> None:
    measured = {
        "AWS s3.PutObject b61069a4668f9832cfe132ab8056df20dd6bd6595dd33526eaf0965c8ad80e5a.json.gz": 40.0,
        "AWS secretsmanager.GetSecretValue adserve-local-SigningKeySecret-blMVRu": 20.0,
    }
    assert cold_terms.logical_names(measured) == {
        "AWS s3.PutObject <sha256>.json.gz": 40.0,
        "AWS secretsmanager.GetSecretValue SigningKeySecret": 20.0,
    }
