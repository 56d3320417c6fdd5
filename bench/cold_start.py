"""Figure 3: cold start. A fresh interpreter imports the Decide handler and serves its first request.

Timed in this process from just before spawning the child to the moment its result line arrives (so
interpreter start-up is included, exit is not). The floor is a fresh interpreter that only imports numpy,
onnxruntime and boto3, timed the same way: the part of the cold start no code of ours can remove, as issue 13
defines it. The handler no longer imports boto3 (nor botocore's session: ``aws_clients``), so a second floor without
boto3 is timed beside it, and the ratio to it is reported too.
The child also reports its CPU time on its result line (on shared cores, less distorted by load than the
wall clock) and, with its own clock, the handler module import and the first request (service build:
settings, boto3 clients, model load, catalog Scan, secret read; then the decision itself). The child's
environment says it is an on-demand Lambda init (``AWS_LAMBDA_INITIALIZATION_TYPE``, which Lambda sets), so the
handler builds its service during the import, as it does on Lambda: the import's figure then holds the build.
Both are timed with the bytecode caches warm, as Lambda's layers ship them (their Makefiles compile them), and
the handler with botocore's models prepared as the SharedLayer ships them (``layer_sdk_models``).
"""

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import botocore
from adserve.dal.sdk_models import prepare

from bench import catalogs
from bench.handler import DECIDE_APP
from bench.moto_latency import put_campaigns
from devstack.stack import LocalStack

MARKER = "BENCH-RESULT "
CAMPAIGNS = 50

HANDLER_CHILD = f"""
import time
started = time.perf_counter_ns()
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter_ns()
context = types.SimpleNamespace(
    function_name="decide", memory_limit_in_mb=1769, aws_request_id="cold-start-1",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:decide",
    get_remaining_time_in_millis=lambda: 3000,
)
response = module.lambda_handler(json.loads(sys.argv[2]), context)
served = time.perf_counter_ns()
print({MARKER!r} + json.dumps({{
    "status": response["statusCode"],
    "import_ms": (imported - started) / 1e6,
    "first_request_ms": (served - imported) / 1e6,
    "cpu_ms": time.process_time() * 1e3,
    "botocore_session_imported": "botocore.session" in sys.modules,
}}), flush=True)
"""

FLOOR_IMPORTS = "numpy, onnxruntime, boto3"
"""The issue's import floor."""
FLOOR_WITHOUT_SDK_IMPORTS = "numpy, onnxruntime"
"""The same without boto3, which the handler no longer imports: a floor its ratio cannot gain on by shedding the SDK."""


def floor_child(modules: str) -> str:
    """A child that only imports ``modules`` and reports as HANDLER_CHILD does."""
    return f"""
import time
started = time.perf_counter_ns()
import {modules}
imported = time.perf_counter_ns()
print({MARKER!r} + '{{"import_ms": ' + str((imported - started) / 1e6) + ', "cpu_ms": '
    + str(time.process_time() * 1e3) + '}}', flush=True)
"""


FLOOR_CHILD = floor_child(FLOOR_IMPORTS)
FLOOR_WITHOUT_SDK_CHILD = floor_child(FLOOR_WITHOUT_SDK_IMPORTS)


def spawn(code: str, args: list[str], env: Mapping[str, str]) -> tuple[float, dict[str, Any]]:
    """Milliseconds from spawn to the child's result line, and what the child reported."""
    started = time.perf_counter_ns()
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env)
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(MARKER):
                elapsed_ms = (time.perf_counter_ns() - started) / 1e6
                report: dict[str, Any] = json.loads(line[len(MARKER) :])
                child.stdout.read()
                _, errors = child.communicate()
                return elapsed_ms, report
        _, errors = child.communicate()
    raise RuntimeError(f"cold-start child exited {child.returncode} without a result: {errors[-2000:]}")


LAMBDA_INIT = {"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}
"""What Lambda's runtime sets in an on-demand execution environment, for the handler child."""


def writing_bytecode(env: Mapping[str, str]) -> dict[str, str]:
    """*env* for an untimed warm-up run, which leaves the bytecode a timed run reads. Under
    PYTHONDONTWRITEBYTECODE the repository's own modules would be compiled from source on every timed run
    (numpy's and boto3's, installed by pip, never are): ~90 ms of each cold start the deployment does not pay."""
    return {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}


@contextlib.contextmanager
def layer_sdk_models() -> Iterator[dict[str, str]]:
    """Environment for a child that creates its clients from botocore's models as the SharedLayer ships them: a
    copy of this botocore's data, prepared as the layer's build prepares its own (``sdk_models.prepare``), first
    on botocore's search path (AWS_DATA_PATH). Without it the child would parse the JSON the layer's clients do not."""
    with TemporaryDirectory(prefix="adserve-sdk-models-") as directory:
        data = Path(directory) / "data"
        shutil.copytree(Path(botocore.__file__).parent / "data", data)
        prepare(data)
        yield {"AWS_DATA_PATH": str(data)}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 2)


def run(stack: LocalStack, runs: int = 5) -> dict[str, Any]:
    """Run before the warm moto figures, while the stack's catalog holds CAMPAIGNS campaigns."""
    with layer_sdk_models() as sdk_models:
        return _run(stack, runs, sdk_models)


def _run(stack: LocalStack, runs: int, sdk_models: Mapping[str, str]) -> dict[str, Any]:
    put_campaigns(stack, catalogs.campaigns(CAMPAIGNS, datetime.now(UTC)))
    env = {**os.environ, **stack.env}
    handler_env = {**env, **sdk_models, **LAMBDA_INIT}
    event = json.dumps(catalogs.api_gateway_event(catalogs.decision_request_document()))
    handler_args = [str(DECIDE_APP), event]
    spawn(HANDLER_CHILD, handler_args, writing_bytecode(handler_env))  # untimed: page cache and bytecode caches warm
    spawn(FLOOR_CHILD, [], writing_bytecode(env))
    handler_runs: list[dict[str, float]] = []
    floor_runs: list[dict[str, float]] = []
    sdk_free_runs: list[dict[str, float]] = []
    for _ in range(runs):  # interleaved, so drift on the host affects all alike
        elapsed, report = spawn(HANDLER_CHILD, handler_args, handler_env)
        if report.get("status") != 200:
            raise RuntimeError(f"cold-start decision answered {report.get('status')}")
        handler_runs.append({"total_ms": elapsed, **report})
        elapsed, report = spawn(FLOOR_CHILD, [], env)
        floor_runs.append({"total_ms": elapsed, **report})
        elapsed, report = spawn(FLOOR_WITHOUT_SDK_CHILD, [], env)
        sdk_free_runs.append({"total_ms": elapsed, **report})
    handler_total = _median(handler_runs, "total_ms")
    floor_total = _median(floor_runs, "total_ms")
    sdk_free_total = _median(sdk_free_runs, "total_ms")
    return {
        "runs": runs,
        "campaigns": CAMPAIGNS,
        "backend": "moto server (LocalStack from template.yaml)",
        "handler_spawn_to_response_ms": handler_total,
        "handler_import_ms": _median(handler_runs, "import_ms"),
        "handler_first_request_ms": _median(handler_runs, "first_request_ms"),
        "handler_import_and_init_ms": round(
            statistics.median(r["import_ms"] + r["first_request_ms"] for r in handler_runs), 2
        ),
        "floor_spawn_to_ready_ms": floor_total,
        "floor_import_ms": _median(floor_runs, "import_ms"),
        "handler_cpu_ms": _median(handler_runs, "cpu_ms"),
        "floor_cpu_ms": _median(floor_runs, "cpu_ms"),
        "ratio_to_floor": round(handler_total / floor_total, 3),
        "floor_imports": FLOOR_IMPORTS,
        "floor_without_sdk_imports": FLOOR_WITHOUT_SDK_IMPORTS,
        "floor_without_sdk_spawn_to_ready_ms": sdk_free_total,
        "ratio_to_floor_without_sdk": round(handler_total / sdk_free_total, 3),
        "botocore_session_imported": any(run["botocore_session_imported"] for run in handler_runs),
        "handler_runs": handler_runs,
        "floor_runs": floor_runs,
        "floor_without_sdk_runs": sdk_free_runs,
    }
