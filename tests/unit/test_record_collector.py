"""Record keeps what its import and its recorder allocate out of the cyclic collector's reach, as Decide does:
a full collection, which runs inside some batch, then scans only what batches left, not the environment."""

import gc
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

RECORD_APP = Path(__file__).parents[2] / "functions" / "record" / "app.py"


def test_importing_the_record_handler_freezes_what_it_kept_and_collects_again() -> None:
    code = (
        "import gc, importlib.util, json\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(RECORD_APP)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps({'collecting': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["collecting"] is True
    assert state["frozen"] > 10_000, "the import's modules, classes and schemas"


def test_the_recorder_is_built_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("record_app_under_test", RECORD_APP)
    assert spec is not None
    assert spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    seen: list[bool] = []

    def build(_: object) -> str:
        seen.append(gc.isenabled())
        return "recorder"

    monkeypatch.setattr(app, "outcome_recorder", build)
    monkeypatch.setattr(app.RecordSettings, "from_env", staticmethod(lambda: None))
    assert app.recorder() == "recorder"
    assert seen == [False]
    assert gc.isenabled()
