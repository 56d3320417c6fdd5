"""In Lambda's environment (credentials and region in variables, no shared config file) a function resolves its
lean clients from the environment: Decide's cold start, its first request included, never imports botocore's
session (~90 ms), and no handler's import does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import catalogs
from bench.cold_start import HANDLER_CHILD, LAMBDA_INIT, spawn
from bench.handler import DECIDE_APP
from devstack.stack import LocalStack

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def lambda_environment(local_stack: LocalStack, home: Path) -> dict[str, str]:
    """The stack's function variables, as Lambda's runtime sets them: no profile, no config file (a fresh HOME)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in ("AWS_PROFILE", "AWS_CONFIG_FILE") and not name.lower().endswith("_proxy")
    }
    return {**inherited, **local_stack.env, **LAMBDA_INIT, "HOME": str(home)}


def test_decides_cold_start_and_first_request_never_import_botocores_session(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    event = json.dumps(catalogs.api_gateway_event(catalogs.decision_request_document()))
    _, report = spawn(HANDLER_CHILD, [str(DECIDE_APP), event], lambda_environment(local_stack, tmp_path))
    assert report["status"] == 200
    assert report["botocore_session_imported"] is False


@pytest.mark.parametrize("function", sorted(path.name for path in FUNCTIONS.iterdir() if (path / "app.py").is_file()))
def test_no_handlers_import_imports_botocores_session(function: str, local_stack: LocalStack, tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(name for name in sys.modules if name in ('botocore.session', 'boto3')))\n"
    )
    environment = {name: value for name, value in lambda_environment(local_stack, tmp_path).items()}
    environment.pop("AWS_LAMBDA_INITIALIZATION_TYPE")  # the import alone: no first-request reads in it
    child = subprocess.run(
        [sys.executable, "-c", code, str(FUNCTIONS / function / "app.py")],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "[]"
