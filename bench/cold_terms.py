"""``python -m bench.cold_terms --label before|after``: where a Decide cold start goes, term by term.

Figure 3 gives the cold start's total; this breaks it down so each term can be removed on purpose. A fresh process
imports the Decide handler under ``python -X importtime`` (its import time summed per top-level package, self time
only, so the terms add up to the whole import) and serves one first request against the bench's moto stack with each
step of the first request timed by wall clock, in whichever thread it runs: every AWS call (the lean clients',
all of Decide's since none is botocore's), client settings and creation, settings, model load (and the ONNX session
inside it), the catalog's build, and the handler's parts; and it counts the connections the first request opens
(each a TLS handshake on Lambda; the CA bundle is loaded once, figure 11). The terms of an overlapped init sum to more
than the wall time it took, which is the point. Its child is not told it is a Lambda init, so it builds the service
on the first request (on Lambda the import overlaps the build, ``adserve.wiring.init_build``), where each term can
be timed; figure 3's ratios below are a Lambda init.

Results go to ``bench/results/cold_terms.json`` under the label, so a *before* and an *after* run sit side
by side; ``python -m bench.docs`` renders the largest terms of each into docs/performance.md. The child is a
benchmark: it wraps functions of its own fresh process to time them; nothing of it runs in tests or Lambda.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from bench import catalogs, cold_start, environment
from bench.catalogs import REPO_ROOT
from bench.cold_start import CAMPAIGNS, MARKER
from bench.handler import DECIDE_APP
from bench.moto_latency import put_campaigns
from devstack.stack import DEFAULT_TEMPLATE, LocalStack

RESULTS = REPO_ROOT / "bench" / "results" / "cold_terms.json"

CHILD = f"""
import time
started = time.perf_counter_ns()
import importlib.util, inspect, json, sys, threading, types
from collections import defaultdict
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter_ns()

terms = defaultdict(float)
lock = threading.Lock()

def add(name, nanoseconds):
    with lock:
        terms[name] += nanoseconds / 1e6

def timed(owner, attribute, name):
    original = getattr(owner, attribute)
    def wrapper(*args, **kwargs):
        begun = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            add(name, time.perf_counter_ns() - begun)
    is_classmethod = isinstance(inspect.getattr_static(owner, attribute), classmethod)
    setattr(owner, attribute, classmethod(lambda cls, *a, **k: wrapper(*a, **k)) if is_classmethod else wrapper)

import onnxruntime
from adserve.dal import aws_clients, aws_http, json_clients, s3_rest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.service import DecisionService
from adserve.models.ctr_model import CtrModel
from adserve.wiring.settings import DecideSettings

timed(aws_clients, "resolve", "client settings (environment, else botocore's session)")
timed(aws_http.AwsHttpClient, "__init__", "lean client creation")
timed(onnxruntime.InferenceSession, "__init__", "ONNX session creation (in model load)")
timed(CtrModel, "load", "model load: read, sha256, verify, ONNX session")
timed(CampaignCatalog, "_build", "catalog build: parse, encode, index")
timed(DecisionService, "decide", "decide() incl. its reads and sends")
timed(module, "decision_service", "service build (settings excluded)")
timed(module.app, "resolve", "resolver: validation, decide, serialisation")
timed(DecideSettings, "from_env", "settings from the environment")

def short(name):
    return name.rsplit("/", 1)[-1].rsplit(":", 1)[-1]

lean_call = json_clients.JsonClient.call
def timed_lean_call(client, operation, params):
    name = client.service + "." + operation
    for key in ("TableName", "SecretId"):
        if key in params:
            name += " " + short(params[key])
    begun = time.perf_counter_ns()
    try:
        return lean_call(client, operation, params)
    finally:
        add("AWS " + name, time.perf_counter_ns() - begun)
json_clients.JsonClient.call = timed_lean_call

object_call = s3_rest.S3RestClient._object_call
def timed_object_call(client, operation, method, *, bucket, key, headers, body):
    begun = time.perf_counter_ns()
    try:
        return object_call(client, operation, method, bucket=bucket, key=key, headers=headers, body=body)
    finally:
        add("AWS s3." + operation + " " + short(key), time.perf_counter_ns() - begun)
s3_rest.S3RestClient._object_call = timed_object_call

opened = []
lean_connect = aws_http.AwsHttpClient._connect
def counted_lean_connection(client, host):
    opened.append(host)
    return lean_connect(client, host)
aws_http.AwsHttpClient._connect = counted_lean_connection

context = types.SimpleNamespace(
    function_name="decide", memory_limit_in_mb=1769, aws_request_id="cold-start-1",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:decide",
    get_remaining_time_in_millis=lambda: 3000,
)
instrumented = time.perf_counter_ns()
response = module.lambda_handler(json.loads(sys.argv[2]), context)
served = time.perf_counter_ns()
print({MARKER!r} + json.dumps({{
    "status": response["statusCode"],
    "import_ms": (imported - started) / 1e6,
    "first_request_ms": (served - instrumented) / 1e6,
    "terms_ms": dict(terms),
    "connections_opened": len(opened),
}}), flush=True)
"""

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
PHYSICAL_NAME = re.compile(r"\badserve-local-([A-Za-z]+)(-[A-Za-z0-9]{6})?\b")
"""The local stack's physical names (``adserve-local-SigningKeySecret-AbC123``) -> the template's logical id."""
CONTENT_HASH = re.compile(r"\b[0-9a-f]{64}\b")
"""A catalog snapshot's object key is its sha256, different in every run: ``<sha256>`` names them all."""


def logical_names(terms: dict[str, float]) -> dict[str, float]:
    return {CONTENT_HASH.sub("<sha256>", PHYSICAL_NAME.sub(r"\1", name)): ms for name, ms in terms.items()}


def import_terms(importtime_stderr: str) -> dict[str, float]:
    """Self time per top-level package in ms: each module's own time counted once, so the terms sum to the total."""
    totals: dict[str, float] = defaultdict(float)
    for line in importtime_stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            totals[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return dict(totals)


def _child(env: dict[str, str], event: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CHILD, str(DECIDE_APP), event],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise RuntimeError(f"cold-terms child exited {done.returncode} without a result: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[0][len(MARKER) :])
    if report["status"] != 200:
        raise RuntimeError(f"cold-terms decision answered {report['status']}")
    report["import_terms_ms"] = import_terms(done.stderr)
    return report


def _medians(runs: list[dict[str, float]], at_least_ms: float = 0.0) -> dict[str, float]:
    """Per term, the median over the runs; terms under *at_least_ms* are summed as ``other``."""
    names = {name for run in runs for name in run}
    medians = {name: statistics.median(run.get(name, 0.0) for run in runs) for name in names}
    kept = {name: round(ms, 1) for name, ms in medians.items() if ms >= at_least_ms}
    if len(kept) < len(medians):
        kept["other"] = round(sum(ms for name, ms in medians.items() if name not in kept), 1)
    return dict(sorted(kept.items(), key=lambda item: -item[1]))


def measure(runs: int, ratio_runs: int) -> dict[str, Any]:
    with LocalStack.start(DEFAULT_TEMPLATE) as stack, cold_start.layer_sdk_models() as sdk_models:
        put_campaigns(stack, catalogs.campaigns(CAMPAIGNS, datetime.now(UTC)))
        env = {**os.environ, **stack.env, **sdk_models}
        event = json.dumps(catalogs.api_gateway_event(catalogs.decision_request_document()))
        _child(cold_start.writing_bytecode(env), event)  # untimed: page cache and bytecode warm
        reports = [_child(env, event) for _ in range(runs)]
        # Figure 3 itself, a few times: on shared cores one run's ratio moves with the neighbours' load
        ratios = [cold_start.run(stack, runs)["ratio_to_floor"] for _ in range(ratio_runs)]
    return {
        "runs": runs,
        "campaigns": CAMPAIGNS,
        "commit": environment.describe()["git_commit"],
        "date": datetime.now(UTC).date().isoformat(),
        "import_ms": round(statistics.median(r["import_ms"] for r in reports), 1),
        "first_request_ms": round(statistics.median(r["first_request_ms"] for r in reports), 1),
        "connections_opened": statistics.median(r["connections_opened"] for r in reports),
        "import_terms_ms": _medians([r["import_terms_ms"] for r in reports], at_least_ms=2.0),
        "first_request_terms_ms": _medians([logical_names(r["terms_ms"]) for r in reports]),
        "figure_3_ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_terms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, choices=("before", "after"))
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per median")
    parser.add_argument("--ratio-runs", type=int, default=3, help="how many times figure 3 runs after the terms")
    args = parser.parse_args(argv)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = measure(args.runs, args.ratio_runs)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results[args.label], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
