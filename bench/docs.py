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

from bench.report import REFRESH_ROWS, SQS_MAX_MESSAGE_BYTES

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
DOCUMENTS = ("README.md", "bench/README.md", "docs/performance.md")
SIZES = ("10", "50", "200", "1000")

COMPANIONS = {
    "cold_terms": REPO_ROOT / "bench" / "results" / "cold_terms.json",
    "cost": REPO_ROOT / "bench" / "results" / "cost.json",
}
"""Results files written by other commands (``python -m bench.cold_terms``, ``python -m bench.cost``), read
alongside latest.json under these keys."""

REGION = re.compile(r"(<!-- bench:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.DOTALL)
OPENING = re.compile(r"<!-- bench:([^ ]*) -->")

Results = dict[str, Any]


def load_results(path: Path = RESULTS) -> Results:
    """The bench's results file with each companion results file under its key."""
    results: Results = json.loads(path.read_text())
    for key, companion in COMPANIONS.items():
        if companion.exists():
            results[key] = json.loads(companion.read_text())
    return results


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
        ("Vowpal Wabbit `cb_explore_adf` predict (same fields, ad examples parsed once)", "vw_peer", "vw_predict"),
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
    # a caps read or a record send past its budget is served degraded: timed, but not the path the row names
    degraded = " | ".join(f"{size['handler_errors']['count']:,}" for size in moto)
    lines.append(f"| moto decisions that logged an error (served degraded, still timed) | {degraded} |")
    records = [f["decide_in_process"]["sizes"][size]["decision_record_bytes"] for size in SIZES]
    shares = " | ".join(f"{size:,} ({size / SQS_MAX_MESSAGE_BYTES:.0%})" for size in records)
    lines.append(f"| decision record, bytes (share of SQS's 256 KiB) | {shares} |")
    ratios = " | ".join(f"{f['ratios']['decide'][size]['score_p99_to_vw_p99']:.2f}" for size in SIZES)
    lines.append(f"| ratio our score path / VW (p99, interleaved in one run: 1c) | {ratios} |")
    return "\n".join(lines) + "\n"


def explain(results: Results) -> str:
    """Figure 1e; a results file from before it existed says so instead of failing the docs."""
    figure = _get(results, "figures").get("decide_explain")
    if not isinstance(figure, dict) or "decide" not in figure:
        return "Explain's cost (figure 1f) is not in the committed results yet: `make bench` measures it.\n"
    return (
        f"At {figure['candidates']} candidates, interleaved in one run: Decide p50 / p99 "
        f"{_pair(figure['decide'])} ms without explain, {_pair(figure['explain'])} ms with it "
        f"({figure['p99_ratio']}x at p99; an explain response is {figure['explain_response_bytes']:,} bytes).\n"
    )


def _ratios(pair: dict[str, float]) -> str:
    return f"{pair['p50']:.2f}x / {pair['p99']:.2f}x"


def scale(results: Results) -> str:
    """Figure 10; a results file from before it existed says so instead of failing the docs."""
    figure = _get(results, "figures").get("scale")
    if not isinstance(figure, dict) or "load" not in figure:
        return (
            "10,000 campaigns (figure 10) are not in the committed results yet: `make bench` "
            "(or `python -m bench --only scale`) measures them.\n"
        )
    load, decide, ratios = figure["load"], figure["decide"], figure["ratios"]
    lines = [
        f"Catalog load of {figure['campaigns']:,} campaigns ({load['ads_in_placement']:,} ads in the bench "
        f"placement): {load['total_ms']['median'] / 1000:.2f} s (median; budget "
        f"{figure['load_budget_ms'] / 1000:g} s), of which parse and validate {_ms(load['parse_and_validate_ms'])} ms, "
        f"encoding every ad {_ms(load['encode_ads_ms'])} ms, one placement's index "
        f"{_ms(load['index_one_placement_ms'])} ms; pre-ranking's priors, once per model version, "
        f"{_ms(load['prior_scores_one_placement_ms'])} ms. Memory: tracemalloc peak {load['tracemalloc_peak_mb']} MB "
        f"({load['tracemalloc_retained_mb']} MB held by the snapshot), resident set "
        f"+{load['rss_delta_first_load_mb']} MB.",
        "",
        f"| `DecisionService.decide`, interleaved, K = {figure['prerank_top_k']} | p50 / p99 ms |",
        "|---|---|",
        f"| 10,000 campaigns, 1,000 eligible, the top K scored | {_pair(decide['eligible_1000'])} |",
        f"| 10,000 campaigns, 1,000 eligible, all scored | {_pair(decide['eligible_1000_score_all'])} |",
        f"| 10,000 campaigns, 5,000 eligible, the top K scored | {_pair(decide['eligible_5000'])} |",
        f"| 10,000 campaigns, 50 eligible | {_pair(decide['eligible_50'])} |",
        f"| 50 campaigns, 50 eligible (the floor for targeting) | {_pair(decide['catalog_50'])} |",
        "",
        f"Ratios p50 / p99 in the same run: 1,000 / 50 eligible at 10,000 campaigns "
        f"{_ratios(ratios['1000_to_50_eligible'])}; 5,000 / 1,000 eligible "
        f"{_ratios(ratios['5000_to_1000_eligible'])}; 50 eligible among 10,000 / among 50 campaigns "
        f"{_ratios(ratios['50_eligible_10000_to_50_campaigns'])} (what targeting over the whole catalog costs); "
        f"pre-ranked / all scored {_ratios(ratios['prerank_to_score_all'])} (budget: 1,000 eligible under "
        f"{figure['decide_budget_ms']:g} ms at p99).",
    ]
    refresh = figure.get("refresh")
    if refresh is not None:
        ms, to_load = refresh["ms"], refresh["to_cold_load"]
        lines += [
            "",
            f"A refresh reuses what the previous load built for the campaigns unchanged since (figure 10c: "
            f"{refresh['budgeted']:,} of the {refresh['campaigns']:,} campaigns paced, through `CampaignStore` and "
            "`DynamoPacingStore` over in-memory Scan pages, the network not included; median of each, and its ratio "
            "to a load from scratch in the same run):",
            "",
            "| catalog load | ms | x a load from scratch |",
            "|---|---:|---:|",
            *(f"| {label} | {_ms(ms[key])} | {to_load[key]:.2f}x |" for key, label in REFRESH_ROWS),
        ]
    return "\n".join(lines) + "\n"


def record_size(results: Results) -> str:
    """Figure 1g; a results file from before it existed says so instead of failing the docs."""
    figure = _get(results, "figures").get("decision_record_sizes")
    if not isinstance(figure, dict) or "sizes" not in figure:
        return "Record sizes, compact and inline (figure 1g), are not in the committed results yet: `make bench`.\n"
    lines = [
        "| candidates | compact record, bytes (share of SQS's 256 KiB) | trimmed | inline record of the same "
        "decision | trimmed | catalog snapshot, gzip bytes |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, data in figure["sizes"].items():
        compact, inline = data["compact_bytes"], data["inline_bytes"]
        lines.append(
            f"| {int(size):,} | {compact:,} ({compact / SQS_MAX_MESSAGE_BYTES:.0%}) | {data['compact_dropped']:,} "
            f"| {inline:,} ({inline / SQS_MAX_MESSAGE_BYTES:.0%}) | {data['inline_dropped']:,} "
            f"| {data['snapshot_gzip_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


def targets(results: Results) -> str:
    lines = ["| target | measured | limit | |", "|---|---:|---:|---|"]
    for check in _get(results, "targets"):
        measured = "not measured" if check["measured"] is None else f"{check['measured']:g} {check['unit']}"
        verdict = {True: "PASS", False: "**MISS**", None: "n/a"}[check["passed"]]
        lines.append(f"| {check['target']} | {measured} | < {check['limit']:g} {check['unit']} | {verdict} |")
    return "\n".join(lines) + "\n"


def cold_start(results: Results) -> str:
    c = _get(results, "figures", "cold_start")
    measured = (
        f"A fresh process that imports the decide handler and serves its first request (against moto) takes "
        f"{c['handler_spawn_to_response_ms']:.0f} ms, {c['ratio_to_floor']:.2f}x the floor of "
        f"{c['floor_spawn_to_ready_ms']:.0f} ms (a process that only imports numpy, onnxruntime and boto3); "
        f"import {c['handler_import_ms']:.0f} ms, first request {c['handler_first_request_ms']:.0f} ms, "
        f"import + init {c['handler_import_and_init_ms']:.0f} ms (medians of {c['runs']} runs). "
    )
    sdk = (
        "imported botocore's session"
        if c["botocore_session_imported"]
        else "imported neither boto3 nor botocore's session (its lean clients resolved from Lambda's environment)"
    )
    return (
        f"{measured}The handler {sdk}: against a floor without boto3 "
        f"({c['floor_without_sdk_spawn_to_ready_ms']:.0f} ms, numpy and onnxruntime alone) it is "
        f"{c['ratio_to_floor_without_sdk']:.2f}x.\n"
    )


def cold_terms(results: Results) -> str:
    """The largest terms of a Decide cold start, before and after issue 13's work (bench/cold_terms.py)."""
    runs = {label: _get(results, "cold_terms", label) for label in ("before", "after")}
    lines = [
        f"Medians of {runs['after']['runs']} fresh processes each, before (at {runs['before']['commit']}, measured "
        f"{runs['before']['date']}) and after (at {runs['after']['commit']}, {runs['after']['date']}): import "
        f"{runs['before']['import_ms']:.0f} -> {runs['after']['import_ms']:.0f} ms, first request "
        f"{runs['before']['first_request_ms']:.0f} -> {runs['after']['first_request_ms']:.0f} ms (under "
        "`-X importtime` and the timing wrappers, so larger than figure 3's). Figure 3's ratio to the import floor, "
        f"run {len(runs['after']['figure_3_ratios'])} times right after: before "
        f"{min(runs['before']['figure_3_ratios']):.2f}-{max(runs['before']['figure_3_ratios']):.2f}x, after "
        f"{min(runs['after']['figure_3_ratios']):.2f}-{max(runs['after']['figure_3_ratios']):.2f}x (target 1.5x).",
        "",
        "| import, self time per package (ms) | before | after |",
        "|---|---:|---:|",
    ]
    for section, key, count in (
        ("import", "import_terms_ms", 8),
        ("first request: each call, wall time in its own thread (ms)", "first_request_terms_ms", 14),
    ):
        if section != "import":
            lines += ["", f"| {section} | before | after |", "|---|---:|---:|"]
        before, after = runs["before"][key], runs["after"][key]
        names = sorted(  # ties by name: a set's order changes from one process to the next
            set(before) | set(after), key=lambda name: (-max(before.get(name, 0.0), after.get(name, 0.0)), name)
        )
        for name in [name for name in names if name != "other"][:count]:
            lines.append(f"| {name} | {before.get(name, 0.0):.0f} | {after.get(name, 0.0):.0f} |")
    return "\n".join(lines) + "\n"


def _traffic(cost: dict[str, Any]) -> str:
    t = cost["traffic_assumed"]
    return (
        f"{t['decisions_per_second']:,.0f} decisions/s, {t['ads_per_decision']:g} ads a decision, "
        f"{t['impression_rate']:.0%} of them impressions, {t['events_per_impression']:g} event an impression, "
        f"Record batches of {t['record_batch_size']}, {t['budgeted_campaigns']:,} budgeted campaigns paced"
    )


def _capacity(c: dict[str, Any]) -> str:
    """What the priced traffic needs of the template's default limits, said when they do not carry it."""
    capacity = c.get("capacity")
    if capacity is None or capacity["carried_by_the_defaults"]:
        return ""
    needed, deployed = capacity["needed"], capacity["deployed"]
    return (
        f" This traffic is more than template.yaml's defaults carry, and the figure prices a deployment with them "
        f"raised: Record needs {needed['record_concurrency']:.0f} concurrent environments (`RecordMaximumConcurrency` "
        f"{deployed['record_maximum_concurrency']:.0f}: past it the queue's backlog grows without end), and the beacon "
        f"route {needed['beacon_route_requests_per_second']:,.0f} requests a second, the decision route "
        f"{needed['decision_route_requests_per_second']:,.0f} (the HTTP API's per-route limit "
        f"{deployed['api_route_rate_limit']:,.0f}: past it API Gateway answers 429, and a beacon refused is an "
        "impression not counted)."
    )


def cost(results: Results) -> str:
    """The cost per million decisions (bench/cost.py), its terms and what would cut the largest."""
    c = _get(results, "cost")
    lines = [
        f"**${c['usd_per_million_decisions']:.2f} per million decisions** (${c['monthly_usd']:,.0f} a month) at "
        f"{_traffic(c)}; usage measured at {c['commit']} on {c['date']}, list prices (us-east-1) read "
        f"{c['prices_retrieved']} (`bench/prices.py` names each source).{_capacity(c)}",
        "",
        "| term | service | units a month | $ per million decisions | price |",
        "|---|---|---:|---:|---|",
    ]
    for item in c["items"]:
        price = c["prices"][item["price"]]
        flag = " (assumed)" if price["assumption"] else ""
        usd = f"${price['usd'] * 1e6:.3g} per million" if price["usd"] < 1e-3 else f"${price['usd']:.3g} per"
        tiers = "".join(
            f"; ${t_usd * 1e6:.3g} per million from {start / 1e6:,.0f} million a month"
            for start, t_usd in price["tiers"]
        )
        lines.append(
            f"| {item['what']} | {item['service']} | {item['quantity']:,.3g} | "
            f"{item['usd_per_million_decisions']:.3f} | {usd} {price['unit']}{tiers}{flag} |"
        )
    lines += ["", "The three largest terms, and what would cut each:", ""]
    by_key = {item["key"]: item for item in c["items"]}
    for rank, key in enumerate(c["largest"], 1):
        item = by_key[key]
        lines.append(
            f"{rank}. {item['what']} ({item['service']}, ${item['usd_per_million_decisions']:.2f}): {c['cuts'][key]}."
        )
    return "\n".join(lines) + "\n"


def snapstart(results: Results) -> str:
    c = _get(results, "cost")
    s, prices = c["snapstart"], c["prices"]
    cache, restore = prices["snapstart_cache_gb_second"], prices["snapstart_restore_gb"]
    return (
        f"Read {c['prices_retrieved']}: ${cache['usd']:.10f} per {cache['unit']}, ${restore['usd']:.10f} per "
        f"{restore['unit']} (source: {restore['source']}). For Decide at {s['memory_gb']:.2f} GB: "
        f"${s['cache_usd_month_per_version']:.2f} "
        f"a month per published version kept cached (every alias target and canary version counts), "
        f"${s['restore_usd_each']:.6f} a restore; at the cost model's traffic and assumed environment lifetime "
        f"({s['restores_per_month']:,.0f} cold starts a month) ${s['restore_usd_month']:.2f} a month of restores, "
        f"${s['usd_per_million_decisions']:.4f} per million decisions with one cached version. On-demand "
        "duration and requests are billed as before; the init runs once per version instead of once per cold "
        "start.\n"
    )


def cost_summary(results: Results) -> str:
    c = _get(results, "cost")
    by_key = {item["key"]: item for item in c["items"]}
    largest = ", ".join(
        f"{by_key[key]['what']} ${by_key[key]['usd_per_million_decisions']:.2f}" for key in c["largest"]
    )
    return (
        f"About ${c['usd_per_million_decisions']:.2f} per million decisions at {_traffic(c)} (`make cost`; "
        f"largest: {largest}; docs/performance.md#cost-per-million-decisions).\n"
    )


def layer_size(results: Results) -> str:
    s = _get(results, "figures", "layer_size")
    layers = s["unzipped_mb"]
    onnx = "an `onnx` package in ModelLayer" if s["onnx_package_in_model_layer"] else "no `onnx` package in any layer"
    largest = s.get("largest_function_plus_layers_mb")
    if largest is None:
        return f"Not every function and layer was built ({', '.join(s['missing'])} missing): `make build`.\n"
    return (
        f"Largest function + layers {largest:.0f} MB unzipped ({s['largest_function']}; SharedLayer "
        f"{layers['SharedLayer']:.1f} MB, ModelLayer {layers['ModelLayer']:.1f} MB), {onnx}.\n"
    )


def tls(results: Results) -> str:
    """Figure 11; a results file from before it existed says so instead of failing the docs."""
    tls = _get(results, "figures").get("tls_connections")
    if tls is None or "skipped" in tls:
        return "Figure 11 (new TLS connections) is not in this results file: run `make bench`.\n"
    botocores, shared = tls["botocore_session"], tls["shared_ca_session"]
    text = (
        f"A call on a new HTTPS connection (local TLS server, {tls['ca_bundle_bytes'] / 1000:.0f} KB CA bundle, "
        f"{tls['openssl']}), CPU of the calling thread, median of {tls['calls']}: botocore's session "
        f"{_ms(botocores['cpu_p50_ms'])} ms, adserve's (the bundle loaded once) {_ms(shared['cpu_p50_ms'])} ms "
        f"({tls['cpu_ratio_shared_to_botocore']:.2f}x; wall {_ms(botocores['wall_p50_ms'])} -> "
        f"{_ms(shared['wall_p50_ms'])} ms). The one connection that loads the bundle: "
        f"{_ms(tls['shared_first_connection_cpu_ms'])} ms."
    )
    connections = results.get("cold_terms", {}).get("after", {}).get("connections_opened")
    if connections:
        saved = (connections - 1) * tls["cpu_saved_per_connection_ms"]
        text += (
            f" A Decide cold start opens {connections:g} connections (`bench.cold_terms`): on Lambda, over TLS, "
            f"about {saved:.0f} ms of CPU less per cold start (all but the first connection's load of the bundle)."
        )
    return text + "\n"


def sdk_calls(results: Results) -> str:
    """Figure 12; a results file from before it existed says so instead of failing the docs."""
    sdk = _get(results, "figures").get("sdk_calls")
    if sdk is None or "skipped" in sdk:
        return "Figure 12 (Decide's two AWS calls) is not in this results file: run `make bench`.\n"
    if "impression_lean_over_botocore" not in sdk:
        return "Figure 12 in this results file predates the lean JSON clients: run `make bench`.\n"
    return (
        f"CPU of the calling thread per call, median of {sdk['calls']}, against a local server that answers at once"
        f" (Decide's caps Query with {sdk['counters']} counters back and its record's SendMessage,"
        f" {sdk['record_bytes']:,} bytes; Record's TransactWriteItems of an impression, its marker and two"
        " counters):\n\n"
        "| client | caps Query, us | SendMessage, us | Decide's two / `service.decide` | impression, us |\n"
        "|---|---:|---:|---:|---:|\n"
        f"| adserve's lean JSON clients (the functions') | {sdk['lean_caps_query_cpu_us']:.0f} | "
        f"{sdk['lean_record_send_cpu_us']:.0f} | {sdk['lean_calls_over_decide']:.2f}x | "
        f"{sdk['lean_impression_count_cpu_us']:.0f} |\n"
        f"| botocore's, as `botocore_session` makes them | {sdk['botocore_caps_query_cpu_us']:.0f} | "
        f"{sdk['botocore_record_send_cpu_us']:.0f} | {sdk['botocore_calls_over_decide']:.2f}x | "
        f"{sdk['botocore_impression_count_cpu_us']:.0f} |\n\n"
        f"The lean clients take {sdk['lean_over_botocore']:.2f}x botocore's CPU for Decide's two calls and "
        f"{sdk['impression_lean_over_botocore']:.2f}x for an impression's transaction; `service.decide` at "
        f"{sdk['candidates']} candidates, same run: {sdk['service_decide_cpu_us']:.0f} us.\n"
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
    # Results since the CPU clock was added carry the handler's own CPU per event beside the wall time.
    with_cpu = any("cpu_us_per_event_p50" in data["full_handler"] for data in fakes.values())
    per_event = "µs per event, median (wall / own CPU)" if with_cpu else "µs per event (median)"
    lines = [
        f"| Record, per SQS batch (80% capped impressions) | batch | invocation p50 / p99 ms | {per_event} |",
        "|---|---:|---|---:|",
    ]
    for label, sizes, key in (
        ("full handler, in-memory fakes (our CPU)", fakes, "full_handler"),
        ("`OutcomeRecorder.process_batch` alone, fakes", fakes, "domain_process_batch"),
        ("full handler against moto server", moto, "full_handler"),
    ):
        for size, data in sizes.items():
            figure = data[key]
            cpu = figure.get("cpu_us_per_event_p50")
            cell = f"{figure['us_per_event_p50']:.0f}" + (f" / {cpu:.0f}" if cpu is not None else "")
            lines.append(f"| {label} | {size} | {_pair(figure)} | {cell} |")
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


def decide_consent(results: Results) -> str:
    """1e; a results file from before the figure existed says so instead of failing."""
    figure = _get(results, "figures").get("decide_consent")
    if figure is None:
        return "Contextual vs personalised: not in this results file yet (`make bench` measures it).\n"
    personalised, contextual = figure["decide_personalised"], figure["decide_contextual"]
    return (
        f"At {figure['candidates']} candidates (the same eligible ones in both modes, caps read in both), "
        f"`DecisionService.decide` takes {_pair(personalised)} ms (p50 / p99) personalised and "
        f"{_pair(contextual)} ms contextual, interleaved in one run: contextual / personalised p99 = "
        f"{figure['p99_contextual_to_personalised']:.2f}.\n"
    )


def pacing_step(results: Results) -> str:
    """Figure 10d; a results file from before it existed says so instead of failing the docs."""
    step = _get(results, "figures").get("pacing_step")
    if not isinstance(step, dict) or "first_step" not in step:
        return "Figure 10d (the pacing step per campaign) is not in this results file: run `make bench`.\n"
    first, capacity = step["first_step"], step["campaigns_per_step"]
    first_calls = sum(first["calls_per_campaign"].values())
    return (
        f"Figure 10d ({step['campaigns']:,} budgeted campaigns through `DynamoDeliveryStore` and `DynamoPacingStore` "
        f"over an in-memory table that counts the calls): a step that reads every campaign's today hour by hour "
        f"(a step with no checkpoints: the first of this release, as every step was before it) costs "
        f"{first_calls:.1f} DynamoDB calls and {first['cpu_ms_per_campaign']:.2f} ms of our CPU a campaign; the "
        f"{step['steps'] - 1} steps after it "
        f"{step['steady_calls_per_campaign_total']:.2f} calls ({step['steady_to_first_calls']:.3f}x; "
        f"{step['busiest_steady_step_calls_per_campaign']:.2f} in the busiest) and "
        f"{step['steady_cpu_ms_per_campaign']:.2f} ms. At the calls' assumed latencies (`bench/cost_model.py`), "
        f"{step['parallel_reads']} campaigns at a time, a step's {step['step_seconds']:g} s pace about "
        f"{capacity['exact_every_step']:,} campaigns read exactly each step and {capacity['checkpointed']:,} "
        f"with checkpoints (on CPU alone, at the {step['vcpus']:g} vCPU the function's memory buys: "
        f"{capacity['checkpointed_cpu_bound']:,}).\n"
    )


RENDERERS: dict[str, Callable[[Results], str]] = {
    "machine": machine,
    "decide": decide,
    "decide-consent": decide_consent,
    "explain": explain,
    "scale": scale,
    "pacing-step": pacing_step,
    "record-size": record_size,
    "targets": targets,
    "cold-start": cold_start,
    "cold-terms": cold_terms,
    "cost": cost,
    "cost-summary": cost_summary,
    "snapstart": snapstart,
    "layer-size": layer_size,
    "model-swap": model_swap,
    "tls": tls,
    "sdk-calls": sdk_calls,
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
    results = load_results(args.results)
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
