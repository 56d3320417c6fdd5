"""``python -m bench.docs``: the benchmark figures in the docs, written from the committed results file.

Figures copied by hand drift from the results they came from. So every figure in README.md,
bench/README.md and docs/performance.md sits in a marked region::

    <!-- bench:NAME -->
    ...generated from bench/results/latest.json, never edited by hand...
    <!-- /bench -->

``make bench`` rewrites them after a full run; ``--check`` (and tests/unit/test_bench_docs.py) fails when a
region disagrees with the results file. This module imports nothing heavy, so the unit test can use it.
"""

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.report import SQS_MAX_MESSAGE_BYTES

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
DOCUMENTS = ("README.md", "bench/README.md", "docs/performance.md")
SIZES = ("10", "50", "200", "1000")

REGION = re.compile(r"(<!-- bench:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.DOTALL)
OPENING = re.compile(r"<!-- bench:([^ ]*) -->")

Results = dict[str, Any]


def _get(results: Results, *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise KeyError(".".join(path))
        node = node[key]
    return node


def _ms(value: float) -> str:
    """Three significant figures at most, so a table stays readable: 0.0189, 0.82, 14.7, 921."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def _pair(summary: dict[str, Any]) -> str:
    return f"{_ms(summary['p50_ms'])} / {_ms(summary['p99_ms'])}"


def machine(results: Results) -> str:
    m = _get(results, "machine")
    packages = m["packages"]
    return (
        f"Measured on {m['cpu_model']}, {m['cores']} cores, Python {m['python']}, numpy {packages['numpy']}, "
        f"onnxruntime {packages['onnxruntime']}, moto {packages['moto']}, Powertools "
        f"{packages['aws-lambda-powertools']}, at commit {m['git_commit']} on {m['date'][:10]}; "
        f"the run took {results['total_seconds']:.0f} s.\n"
    )


def decide(results: Results) -> str:
    f = _get(results, "figures")
    rows = [
        ("Decide full handler, in-process, DynamoDB/SQS as in-memory fakes", "decide_in_process", "full_handler"),
        ("`DecisionService.decide` alone, same fakes", "decide_in_process", "service_decide"),
        ("Decide full handler against moto server", "decide_moto", "full_handler"),
        ("ONNX `predict` alone", "onnx", "onnx_predict"),
        ("our score path (features, encode, predict, policy)", "onnx", "score_path"),
        ("Vowpal Wabbit `cb_explore_adf` predict (same fields, example text cached per ad)", "vw_peer", "vw_predict"),
    ]
    lines = ["| p50 / p99 ms | 10 | 50 | 200 | 1000 candidates |", "|---|---|---|---|---|"]
    for label, figure, key in rows:
        cells = [_pair(f[figure]["sizes"][size][key]) for size in SIZES]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    moto = [f["decide_moto"]["sizes"][size] for size in SIZES]
    query = " | ".join(_ms(size["moto_caps_query"]["p50_ms"]) for size in moto)
    send = " | ".join(_ms(size["moto_sqs_send_record"]["p50_ms"]) for size in moto)
    lines.append(f"| of which moto's bare caps Query, p50 | {query} |")
    lines.append(f"| of which moto's bare SendMessage of the record, p50 | {send} |")
    records = [f["decide_in_process"]["sizes"][size]["decision_record_bytes"] for size in SIZES]
    shares = " | ".join(f"{size:,} ({size / SQS_MAX_MESSAGE_BYTES:.0%})" for size in records)
    lines.append(f"| decision record, bytes (share of SQS's 256 KiB) | {shares} |")
    ratios = []
    for size in SIZES:
        vw = f["vw_peer"]["sizes"][size]["vw_predict"]["p99_ms"]
        ratios.append(f"{f['onnx']['sizes'][size]['score_path']['p99_ms'] / vw:.2f}")
    lines.append(f"| ratio our score path / VW (p99) | {' | '.join(ratios)} |")
    return "\n".join(lines) + "\n"


def explain(results: Results) -> str:
    """Figure 1e; a results file from before it existed says so instead of failing the docs."""
    figure = _get(results, "figures").get("decide_explain")
    if not isinstance(figure, dict) or "decide" not in figure:
        return "Explain's cost (figure 1e) is not in the committed results yet: `make bench` measures it.\n"
    return (
        f"At {figure['candidates']} candidates, interleaved in one run: Decide p50 / p99 "
        f"{_pair(figure['decide'])} ms without explain, {_pair(figure['explain'])} ms with it "
        f"({figure['p99_ratio']}x at p99; an explain response is {figure['explain_response_bytes']:,} bytes).\n"
    )


def targets(results: Results) -> str:
    lines = ["| target | measured | limit | |", "|---|---:|---:|---|"]
    for check in _get(results, "targets"):
        measured = "not measured" if check["measured"] is None else f"{check['measured']:g} {check['unit']}"
        verdict = {True: "PASS", False: "**MISS**", None: "n/a"}[check["passed"]]
        lines.append(f"| {check['target']} | {measured} | < {check['limit']:g} {check['unit']} | {verdict} |")
    return "\n".join(lines) + "\n"


def cold_start(results: Results) -> str:
    c = _get(results, "figures", "cold_start")
    return (
        f"A fresh process that imports the decide handler and serves its first request (against moto) takes "
        f"{c['handler_spawn_to_response_ms']:.0f} ms, {c['ratio_to_floor']:.1f}x the floor of "
        f"{c['floor_spawn_to_ready_ms']:.0f} ms (a process that only imports numpy, onnxruntime and boto3); "
        f"import {c['handler_import_ms']:.0f} ms, first request {c['handler_first_request_ms']:.0f} ms, "
        f"import + init {c['handler_import_and_init_ms']:.0f} ms (medians of {c['runs']} runs).\n"
    )


def layer_size(results: Results) -> str:
    s = _get(results, "figures", "layer_size")
    layers = s["unzipped_mb"]
    onnx = "an `onnx` package in ModelLayer" if s["onnx_package_in_model_layer"] else "no `onnx` package in any layer"
    return (
        f"Largest function + layers {s['largest_function_plus_layers_mb']:.0f} MB unzipped (SharedLayer "
        f"{layers['SharedLayer']:.1f} MB, ModelLayer {layers['ModelLayer']:.1f} MB), {onnx}.\n"
    )


def model_swap(results: Results) -> str:
    swap = _get(results, "figures", "model_swap")
    steps, during = swap["swap"], swap["decide_during_swaps"]
    return (
        f"Model hot swap on moto, {steps['model_bytes'] / 1e6:.2f} MB model, p50: pointer read "
        f"{_ms(steps['pointer_read']['p50_ms'])} ms, download {_ms(steps['download']['p50_ms'])} ms, verify + load "
        f"{_ms(steps['verify_and_load']['p50_ms'])} ms, the whole refresh including the swap "
        f"{_ms(steps['provider_refresh_with_swap']['p50_ms'])} ms. Across {during['decisions']} decisions at "
        f"{during['candidates']} candidates with a pointer check every {during['checks_every_decisions']} and a new "
        f"model every other check, decide p99 was {_ms(during['all']['p99_ms'])} ms "
        f"({_ms(during['no_check']['p99_ms'])} ms for decisions without a check).\n"
    )


def record(results: Results) -> str:
    fakes = _get(results, "figures", "record_fakes", "sizes")
    moto = _get(results, "figures", "record_moto", "sizes")
    lines = [
        "| Record, per SQS batch (80% capped impressions) | batch | invocation p50 / p99 ms | µs per event (median) |",
        "|---|---:|---|---:|",
    ]
    for label, sizes, key in (
        ("full handler, in-memory fakes (our CPU)", fakes, "full_handler"),
        ("`OutcomeRecorder.process_batch` alone, fakes", fakes, "domain_process_batch"),
        ("full handler against moto server", moto, "full_handler"),
    ):
        for size, data in sizes.items():
            figure = data[key]
            lines.append(f"| {label} | {size} | {_pair(figure)} | {figure['us_per_event_p50']:.0f} |")
    bare = _get(results, "figures", "record_moto", "moto_bare_transaction", "p50_ms")
    lines.append(f"\nmoto's bare three-item TransactWriteItems alone: {_ms(bare)} ms p50.\n")
    return "\n".join(lines)


def track(results: Results) -> str:
    beacon = _get(results, "figures", "track_beacon")
    return (
        f"Track beacon, full handler in-process, SQS call excluded: p50 / p99 {_pair(beacon['full_handler'])} ms "
        f"(`record_beacon` alone {_pair(beacon['service_record_beacon'])} ms).\n"
    )


def retraining(results: Results) -> str:
    lines = [
        "| examples | dataset build | training | evaluation | peak RSS | holdout AUC |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    skipped = []
    for rows, figure in _get(results, "figures", "retraining", "sizes").items():
        if "skipped" in figure:
            skipped.append(f"{int(rows):,} examples: not measured in this run ({figure['skipped']}).")
            continue
        lines.append(
            f"| {int(rows):,} | {figure['build_seconds']:.1f} s ({figure['build_rows_per_s']:,} rows/s) "
            f"| {figure['train_seconds']:.1f} s, {figure['epochs']} epochs "
            f"({figure['train_row_epochs_per_s'] / 1000:,.0f}k row-epochs/s) "
            f"| {figure['evaluate_seconds']:.1f} s ({figure['evaluate_decisions_per_s'] / 1000:,.0f}k decisions/s) "
            f"| {figure['rss_mb']['peak']} MB | {figure['holdout_auc']:.3f} |"
        )
    return "\n".join(lines) + "\n" + "".join(f"\n{line}\n" for line in skipped)


RENDERERS: dict[str, Callable[[Results], str]] = {
    "machine": machine,
    "decide": decide,
    "explain": explain,
    "targets": targets,
    "cold-start": cold_start,
    "layer-size": layer_size,
    "model-swap": model_swap,
    "record": record,
    "track": track,
    "retraining": retraining,
}


def _render(name: str, results: Results) -> str:
    try:
        return RENDERERS[name](results)
    except KeyError as error:
        raise ValueError(f"the results file has no {error} for the {name!r} figures (a partial run?)") from error


def rewrite(text: str, results: Results) -> str:
    """``text`` with every marked region rendered from ``results``; an unknown or unclosed region is an error."""
    names = OPENING.findall(text)
    unknown = sorted(set(names) - set(RENDERERS))
    if unknown:
        raise ValueError(f"unknown bench regions {unknown}; known: {sorted(RENDERERS)}")
    rewritten, count = REGION.subn(lambda m: m.group(1) + _render(m.group("name"), results) + m.group(4), text)
    if count != len(names):
        raise ValueError(f"{len(names) - count} bench region(s) are not closed by <!-- /bench -->")
    return rewritten


def stale(root: Path, results: Results, documents: Iterable[str] = DOCUMENTS) -> list[str]:
    """The documents whose regions disagree with ``results``."""
    return [name for name in documents if rewrite((root / name).read_text(), results) != (root / name).read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report documents that disagree; exit 1 if any")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if args.check:
        out_of_date = stale(REPO_ROOT, results)
        for name in out_of_date:
            print(f"{name}: benchmark figures disagree with {args.results}; run python -m bench.docs")
        return 1 if out_of_date else 0
    for name in DOCUMENTS:
        path = REPO_ROOT / name
        path.write_text(rewrite(path.read_text(), results))
    print(f"benchmark figures in {', '.join(DOCUMENTS)} written from {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
