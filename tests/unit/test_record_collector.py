"""Record keeps what its import allocates out of the cyclic collector's reach, as Decide does: a full
collection, which runs inside some batch, then scans only what batches left, not the environment (the recorder
is built with the collector paused too: ``test_cold_start``)."""

import json
import subprocess
import sys
from pathlib import Path

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
