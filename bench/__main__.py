"""``python -m bench``: every figure of the performance budget in one run; see bench/README.md."""

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    cold_start,
    compute_floor,
    decide_latency,
    environment,
    layer_size,
    model_swap,
    moto_latency,
    onnx_scoring,
    pacing_scale,
    record_throughput,
    report,
    retraining,
    scale,
    sdk_calls,
    tls_connections,
    track_latency,
    vw_peer,
)
from bench.catalogs import REPO_ROOT
from bench.decide_latency import quiet_stdout
from devstack.stack import DEFAULT_TEMPLATE, LocalStack

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.json"
"""A full run's results: committed, and the source of the figures in the docs (``python -m bench.docs``)."""
PARTIAL_OUTPUT = REPO_ROOT / "bench" / "results" / "partial.json"
"""Where --quick, --skip-moto and --only runs go unless --output says otherwise, so they never replace a full
run's."""
FIGURES = (
    "decide",
    "floor",
    "pacing",
    "consent",
    "explain",
    "records",
    "onnx",
    "vw",
    "record",
    "track",
    "retraining",
    "scale",
    "pacing-step",
    "tls",
    "sdk",
    "moto",
    "cold",
    "layers",
)
"""``cold`` is figure 3 alone (on its own moto stack); ``moto`` includes it."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--skip-build", action="store_true", help="do not run `make build` if .aws-sam/build is missing"
    )
    parser.add_argument("--skip-moto", action="store_true", help="skip the figures that need a moto server (1b, 3, 6)")
    parser.add_argument("--quick", action="store_true", help="about a tenth of the iterations: a smoke run")
    parser.add_argument(
        "--retrain-1m", action="store_true", help="figure 9 at 1M rows too (generating its logs once takes ~8 min)"
    )
    parser.add_argument("--cold-runs", type=int, default=9, help="fresh processes per cold-start median")
    parser.add_argument(
        "--output", type=Path, help="where to write the JSON results (default: latest.json, partial.json if partial)"
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        help=f"comma-separated figures to run, of {','.join(FIGURES)} (ratios need decide,floor,vw,record)",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = PARTIAL_OUTPUT if args.quick or args.skip_moto or args.only else DEFAULT_OUTPUT
    return args


def _step(name: str, timings: dict[str, float], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one figure; a failure is recorded (and printed) instead of losing the other figures."""
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        result = work()
    except Exception as error:  # noqa: BLE001 - any failure of one figure must not lose the others
        traceback.print_exc(file=sys.stderr)
        result = {"skipped": f"FAILED: {type(error).__name__}: {error}"}
    timings[name] = round(time.perf_counter() - started, 1)
    print(f"[bench] {name} done in {timings[name]} s", file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    figures: dict[str, Any] = {}
    wanted = args.only or set(FIGURES)
    in_process: tuple[tuple[str, str, str, Callable[[], dict[str, Any]]], ...] = (
        ("decide", "decide_in_process", "1a decide in-process", lambda: decide_latency.run(args.quick)),
        ("floor", "compute_floor", "1c compute floor", lambda: compute_floor.run(args.quick)),
        ("pacing", "decide_pacing", "1d decide with pacing on/off", lambda: decide_latency.run_pacing(args.quick)),
        (
            "consent",
            "decide_consent",
            "1e decide contextual vs personalised",
            lambda: decide_latency.run_consent(args.quick),
        ),
        ("explain", "decide_explain", "1f decide with explain on/off", lambda: decide_latency.run_explain(args.quick)),
        (
            "records",
            "decision_record_sizes",
            "1g decision record size, compact vs inline",
            decide_latency.run_record_sizes,
        ),
        ("onnx", "onnx", "2 onnx scoring", lambda: onnx_scoring.run(args.quick)),
        ("vw", "vw_peer", "5 vw peer", lambda: vw_peer.run(args.quick)),
        ("record", "record_fakes", "7a record on fakes", lambda: record_throughput.run_fakes(args.quick)),
        ("track", "track_beacon", "8 track beacon in-process", lambda: track_latency.run(args.quick)),
        (
            "retraining",
            "retraining",
            "9 retraining throughput",
            lambda: retraining.run(args.quick, large=args.retrain_1m),
        ),
        ("scale", "scale", "10 ten thousand campaigns", lambda: scale.run(args.quick)),
        ("pacing-step", "pacing_step", "10d pacing step per campaign", pacing_scale.run),
        ("tls", "tls_connections", "11 new TLS connections", lambda: tls_connections.run(args.quick)),
        ("sdk", "sdk_calls", "12 per-event AWS calls", lambda: sdk_calls.run(args.quick)),
    )
    for figure, key, name, work in in_process:
        if figure in wanted:
            figures[key] = _step(name, timings, work)
    if "moto" in wanted and args.skip_moto:
        figures["cold_start"] = {"skipped": "--skip-moto"}
        figures["decide_moto"] = {"skipped": "--skip-moto"}
        figures["record_moto"] = {"skipped": "--skip-moto"}
        figures["model_swap"] = {"skipped": "--skip-moto"}
    elif "moto" in wanted:
        # One moto server for both: moto keeps its state per process, so a second stack would find the tables.
        with LocalStack.start(DEFAULT_TEMPLATE) as stack:
            figures["cold_start"] = _step("3 cold start", timings, lambda: cold_start.run(stack, args.cold_runs))
            with quiet_stdout():
                figures["decide_moto"] = _step(
                    "1b decide on moto", timings, lambda: moto_latency.run(stack, args.quick)
                )
                figures["record_moto"] = _step(
                    "7b record on moto", timings, lambda: record_throughput.run_moto(stack, args.quick)
                )
            figures["model_swap"] = _step("6 model swap", timings, lambda: model_swap.run(stack, args.quick))
    elif "cold" in wanted and not args.skip_moto:
        with LocalStack.start(DEFAULT_TEMPLATE) as stack:
            figures["cold_start"] = _step("3 cold start", timings, lambda: cold_start.run(stack, args.cold_runs))
    if "layers" in wanted:
        figures["layer_size"] = _step("4 layer size", timings, lambda: layer_size.run(args.skip_build))
    figures["ratios"] = report.ratios(figures)
    checks = report.targets(figures)
    machine = environment.describe()
    document = {
        "machine": machine,
        "settings": {
            "quick": args.quick,
            "skip_build": args.skip_build,
            "skip_moto": args.skip_moto,
            "only": sorted(wanted),
        },
        "figures": figures,
        "targets": checks,
        "step_seconds": timings,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(report.render(machine, figures, checks))
    print(f"\nwritten {args.output} in {document['total_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
