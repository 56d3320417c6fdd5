"""The readable table printed at the end of a run, and the PASS/MISS check of the budget in docs/performance.md."""

from collections.abc import Sequence
from typing import Any

SQS_MAX_MESSAGE_BYTES = 262_144

Row = Sequence[object]


def table(title: str, headers: Row, rows: Sequence[Row]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(headers))]
    lines = [
        title,
        "  ".join(h.rjust(w) if n else h.ljust(w) for h, w, n in zip(cells[0], widths, numeric, strict=True)),
    ]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)).rstrip()
        for row in cells[1:]
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.1f}"
    return "-" if value is None else str(value)


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "MISS")


def _lat(summary: dict[str, Any]) -> list[float]:
    return [summary["p50_ms"], summary["p99_ms"], summary["mean_ms"]]


def _lat_headers(name: str) -> list[str]:
    return [f"{name} p50", f"{name} p99", f"{name} mean"]


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or not theirs else round(ours / theirs, 3)


TARGETS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    (
        "decide p99 < 5 ms at 50 candidates, in-process (full handler)",
        ("decide_in_process", "sizes", "50", "full_handler", "p99_ms"),
        5.0,
        "ms",
    ),
    (
        # Decide's p99 with pacing on minus off is reported too, but at 50 candidates it is within the noise
        # (tens of us either way); the throttle over 50 paced candidates, timed alone, is what it adds.
        "pacing filter p99 < 20 us over 50 paced candidates (timed alone, same run)",
        ("decide_pacing", "throttle_alone", "p99_ms"),
        0.020,
        "ms",
    ),
    (
        "pacing: no read of the pacing table per decision (Scans and Gets during decisions)",
        ("decide_pacing", "pacing_reads_during_decisions"),
        1.0,
        "reads",
    ),
    (
        # Contextual and personalised decisions have the same 50 candidates and both read the caps; 10 % over
        # is the noise between interleaved blocks on shared cores, not a cost of the mode.
        "contextual decide p99 no slower than personalised at 50 candidates (ratio, interleaved, < 1.1)",
        ("decide_consent", "p99_contextual_to_personalised"),
        1.1,
        "x",
    ),
    (
        "decision record at 1000 candidates < 25% of SQS's 256 KiB (compact, figure 1g)",
        ("decision_record_sizes", "sizes", "1000", "compact_bytes"),
        SQS_MAX_MESSAGE_BYTES / 4,
        "B",
    ),
    (
        "candidates trimmed from a compact record at up to 5000 candidates (figure 1g)",
        ("decision_record_sizes", "most_compact_dropped"),
        1,
        "candidates",
    ),
    ("ONNX predict p99 < 1 ms at 200 rows", ("onnx", "sizes", "200", "onnx_predict", "p99_ms"), 1.0, "ms"),
    ("cold start < 1.5x floor (spawn to first response)", ("cold_start", "ratio_to_floor"), 1.5, "x"),
    ("handler import + init < 650 ms", ("cold_start", "handler_import_and_init_ms"), 650.0, "ms"),
    (
        "function + layers < 200 MB unzipped (largest function)",
        ("layer_size", "largest_function_plus_layers_mb"),
        200.0,
        "MB",
    ),
    (
        "record: own CPU (thread time) per event < 100 us, batches of 10 (handler on fakes, median / 10)",
        ("record_fakes", "sizes", "10", "full_handler", "cpu_us_per_event_p50"),
        100.0,
        "us",
    ),
    (
        "record: own CPU (thread time) per event < 50 us, batches of 100 (handler on fakes, median / 100)",
        ("record_fakes", "sizes", "100", "full_handler", "cpu_us_per_event_p50"),
        50.0,
        "us",
    ),
    (
        "catalog load < 2 s at 10,000 campaigns (parse, validate, encode, index; median)",
        ("scale", "load", "total_ms", "median"),
        2000.0,
        "ms",
    ),
    (
        "catalog refresh at 10,000 campaigns, half repaced and 1% edited, < 0.5x a load from scratch (same run)",
        ("scale", "refresh", "to_cold_load", "repaced_1pct_edited"),
        0.5,
        "x",
    ),
    (
        "pacing step: DynamoDB calls per budgeted campaign, steady state, < 0.2x an exact read each step (10d)",
        ("pacing_step", "steady_to_first_calls"),
        0.2,
        "x",
    ),
    (
        "decide p99 < 10 ms at 10,000 campaigns, 1,000 eligible, in-process (service.decide)",
        ("scale", "decide", "eligible_1000", "p99_ms"),
        10.0,
        "ms",
    ),
    (
        "track beacon p99 < 2 ms in-process, SQS call excluded (full handler)",
        ("track_beacon", "full_handler", "p99_ms"),
        2.0,
        "ms",
    ),
)


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each budget line of docs/performance.md with the measured value; ``passed`` is None when not measured."""
    checks = [(name, _get(figures, *path), limit, unit) for name, path, limit, unit in TARGETS]
    by_size = (_get(figures, "ratios", "decide") or {}).values()
    floor = [r["decide_p99_to_floor_p99"] for r in by_size if r["candidates"] in FLOOR_TARGET_SIZES]
    peer = [r["decide_p99_to_vw_p99"] for r in by_size]
    checks.append(
        (
            "score path p99 below VW p99 at every size (worst ratio, interleaved)",
            _worst([r.get("score_p99_to_vw_p99") for r in by_size]),
            1.0,
            "x",
        )
    )
    checks.append(
        ("decide p99 within 3x the compute floor's p99 at 10-200 candidates (worst)", _worst(floor), 3.0, "x")
    )
    checks.append(("decide p99 below VW predict p99 at every size (worst ratio)", _worst(peer), 1.0, "x"))
    return [
        {
            "target": name,
            "measured": value,
            "limit": limit,
            "unit": unit,
            "passed": None if value is None else value < limit,
        }
        for name, value, limit, unit in checks
    ]


FLOOR_TARGET_SIZES = (10, 50, 200)


def _worst(ratios: list[float | None]) -> float | None:
    known = [r for r in ratios if r is not None]
    return max(known) if len(known) == len(ratios) and known else None


def ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """Decide and Record as ratios to the compute floor, and Decide to VW; Decide's interleaved with both (1c)."""
    decide: dict[str, Any] = {}
    for size, measured in (_get(figures, "compute_floor", "sizes") or {}).items():
        floor, d, h = measured["floor"], measured["service_decide"], measured["full_handler"]
        decide[size] = {
            "candidates": int(size),
            "floor_p50_ms": floor["p50_ms"],
            "floor_p99_ms": floor["p99_ms"],
            "decide_p50_to_floor_p50": _ratio(d["p50_ms"], floor["p50_ms"]),
            "decide_p99_to_floor_p99": _ratio(d["p99_ms"], floor["p99_ms"]),
            "handler_p99_to_floor_p99": _ratio(h["p99_ms"], floor["p99_ms"]),
            "score_p99_to_vw_p99": _ratio(_get(measured, "score_path", "p99_ms"), measured["vw_predict"]["p99_ms"]),
            "decide_p99_to_vw_p99": _ratio(d["p99_ms"], measured["vw_predict"]["p99_ms"]),
            "decide_p50_to_vw_p50": _ratio(d["p50_ms"], measured["vw_predict"]["p50_ms"]),
        }
    floor_10 = _get(figures, "compute_floor", "sizes", "10", "floor", "p50_ms")
    record: dict[str, Any] = {}
    for size, data in (_get(figures, "record_fakes", "sizes") or {}).items():
        per_event = _get(data, "full_handler", "cpu_us_per_event_p50")
        record[size] = {
            "batch_size": int(size),
            "cpu_us_per_event_p50": per_event,
            "to_floor_p50_at_10": _ratio(per_event, floor_10 * 1000 if floor_10 else None),
        }
    return {
        "decide": decide,
        "record": record,
        "note": (
            "decide: interleaved with the floor (1c); record: its own CPU per event (7a, timed in a child process "
            "after the other figures of the same bench run) / the floor's p50 wall time for one 10-candidate decision"
        ),
    }


def _ratio_tables(figures: dict[str, Any]) -> list[str]:
    out = []
    rows = [
        [
            r["candidates"],
            r["floor_p50_ms"],
            r["floor_p99_ms"],
            r["decide_p50_to_floor_p50"],
            r["decide_p99_to_floor_p99"],
            r["handler_p99_to_floor_p99"],
            r.get("score_p99_to_vw_p99"),
            r["decide_p99_to_vw_p99"],
            r["decide_p50_to_vw_p50"],
        ]
        for r in (_get(figures, "ratios", "decide") or {}).values()
    ]
    if rows:
        out.append(
            table(
                "1c. Compute floor (validate, hash, LR ONNX, top 3), with Decide, score path, VW interleaved: ratios",
                [
                    "cands",
                    "floor p50",
                    "floor p99",
                    "decide/floor p50",
                    "decide/floor p99",
                    "handler/floor p99",
                    "score/VW p99",
                    "decide/VW p99",
                    "decide/VW p50",
                ],
                rows,
            )
        )
    rows = [
        [r["batch_size"], r["cpu_us_per_event_p50"], r["to_floor_p50_at_10"]]
        for r in (_get(figures, "ratios", "record") or {}).values()
    ]
    if rows:
        out.append(
            table(
                "7c. Record own CPU per event (handler on fakes) as a ratio to one 10-candidate floor decision",
                ["batch", "CPU us/event p50", "/ floor p50 @10"],
                rows,
            )
        )
    return out


def _share(size: int) -> str:
    return f"{size} ({size / SQS_MAX_MESSAGE_BYTES:.0%})"


def _decide_tables(figures: dict[str, Any]) -> list[str]:
    out = []
    sizes = _get(figures, "decide_in_process", "sizes") or {}
    rows = []
    for size, data in sizes.items():
        d, h = data["service_decide"], data["full_handler"]
        record = data["decision_record_bytes"]
        share = f"{record} ({record / SQS_MAX_MESSAGE_BYTES:.0%})"
        rows.append([int(size), d["iterations"], *_lat(d), *_lat(h), h["full_gcs"], share])
    if rows:
        out.append(
            table(
                "1a. Decide warm, in-process, in-memory fakes for DynamoDB/SQS (ms)",
                [
                    "cands",
                    "iters",
                    *_lat_headers("decide"),
                    *_lat_headers("handler"),
                    "full GCs",
                    "record B (% SQS max)",
                ],
                rows,
            )
        )
    explain = _get(figures, "decide_explain") or {}
    if "decide" in explain:
        rows = [[name, explain[name]["iterations"], *_lat(explain[name])] for name in ("decide", "explain")]
        title = (
            f"1f. Decide at {explain['candidates']} candidates without and with explain, interleaved (ms); "
            f"explain p99 = {explain['p99_ratio']}x, response {explain['explain_response_bytes']:,} B"
        )
        out.append(table(title, ["request", "iters", *_lat_headers("decide")], rows))
    sizes_figure = _get(figures, "decision_record_sizes") or {}
    rows = [
        [
            int(size),
            _share(data["compact_bytes"]),
            data["compact_dropped"],
            _share(data["inline_bytes"]),
            data["inline_dropped"],
            data["snapshot_gzip_bytes"],
        ]
        for size, data in (sizes_figure.get("sizes") or {}).items()
    ]
    if rows:
        out.append(
            table(
                "1g. The decision record of one decision: compact (features in the catalog snapshot) vs inline",
                ["cands", "compact B (% SQS max)", "dropped", "inline B (% SQS max)", "dropped", "snapshot gz B"],
                rows,
            )
        )
    moto = _get(figures, "decide_moto") or {}
    rows = []
    for size, data in (moto.get("sizes") or {}).items():
        h, q, s = data["full_handler"], data["moto_caps_query"], data["moto_sqs_send_record"]
        difference = round(h["p50_ms"] - q["p50_ms"] - s["p50_ms"], 3)
        errors = data["handler_errors"]["count"]
        rows.append(
            [int(size), h["iterations"], data["counters"], *_lat(h)[:2], q["p50_ms"], s["p50_ms"], difference, errors]
        )
    if rows:
        out.append(
            table(
                "1b. Decide warm, full handler against moto server (ms), next to bare moto calls",
                [
                    "cands",
                    "iters",
                    "counters",
                    *_lat_headers("handler")[:2],
                    "bare Query p50",
                    "bare Send(record) p50",
                    "p50 - Query - Send",
                    "logged errors",
                ],
                rows,
            )
        )
    elif moto.get("skipped"):
        out.append(f"1b. Decide against moto: skipped ({moto['skipped']})")
    return out


def _scoring_tables(figures: dict[str, Any]) -> list[str]:
    out = []
    rows = []
    for size, data in (_get(figures, "onnx", "sizes") or {}).items():
        p, s = data["onnx_predict"], data["score_path"]
        rows.append([int(size), p["iterations"], p["p50_ms"], p["p99_ms"], s["p50_ms"], s["p99_ms"]])
    if rows:
        out.append(
            table(
                "2. ONNX scoring (ms): CtrModel.predict on encoded rows; score path = features+encode+predict+policy",
                ["rows", "iters", "predict p50", "predict p99", "score path p50", "score path p99"],
                rows,
            )
        )
    rows = []
    for size, data in (_get(figures, "vw_peer", "sizes") or {}).items():
        v = data["vw_predict"]
        score_ratio = _get(figures, "ratios", "decide", size, "score_p99_to_vw_p99")
        decide_ratio = _get(figures, "ratios", "decide", size, "decide_p99_to_vw_p99")
        rows.append([int(size), v["iterations"], v["p50_ms"], v["p99_ms"], score_ratio, decide_ratio])
    if rows:
        out.append(
            table(
                f"5. Peer: VW {_get(figures, 'vw_peer', 'args')} (shared line + cached action lines + predict), ms; "
                "our p99 over VW's, interleaved (1c)",
                ["cands", "iters", "VW p50", "VW p99", "score/VW p99", "decide/VW p99"],
                rows,
            )
        )
    return out


def _cold_and_size(figures: dict[str, Any]) -> list[str]:
    out = []
    cold = _get(figures, "cold_start") or {}
    if "ratio_to_floor" in cold:
        out.append(
            table(
                f"3. Cold start, median of {cold['runs']} fresh processes "
                f"({cold['backend']}, {cold['campaigns']} campaigns), ms",
                [
                    "handler spawn->response",
                    "import",
                    "first request",
                    "import+init",
                    "floor spawn->ready",
                    "floor import",
                    "ratio",
                ],
                [
                    [
                        cold["handler_spawn_to_response_ms"],
                        cold["handler_import_ms"],
                        cold["handler_first_request_ms"],
                        cold["handler_import_and_init_ms"],
                        cold["floor_spawn_to_ready_ms"],
                        cold["floor_import_ms"],
                        cold["ratio_to_floor"],
                    ]
                ],
            )
        )
    elif cold.get("skipped"):
        out.append(f"3. Cold start: skipped ({cold['skipped']})")
    size = _get(figures, "layer_size") or {}
    if "unzipped_mb" in size:
        built = " - built by this run" if size.get("built_now") else ""
        rows = [[name, mb] for name, mb in size["unzipped_mb"].items()]
        rows += [[f"{name} + layers", mb] for name, mb in size["function_plus_layers_mb"].items()]
        rows.append(["all artifacts", size["all_artifacts_mb"]])
        out.append(
            table(
                f"4. Unzipped sizes in {size['build_dir']} (MB){built}; "
                f"onnx package in ModelLayer: {size['onnx_package_in_model_layer']}",
                ["artifact", "MB"],
                rows,
            )
        )
    elif size.get("skipped"):
        out.append(f"4. Layer sizes: SKIPPED ({size['skipped']})")
    return out


def _swap_tables(figures: dict[str, Any]) -> list[str]:
    swap = _get(figures, "model_swap") or {}
    if swap.get("skipped"):
        return [f"6. Model swap: skipped ({swap['skipped']})"]
    if "swap" not in swap:
        return []
    steps = swap["swap"]
    step_rows = [
        [name, steps[key]["iterations"], *_lat(steps[key])]
        for name, key in (
            ("pointer read", "pointer_read"),
            ("download model + manifest", "download"),
            ("verify sha256/spec + load", "verify_and_load"),
            ("provider refresh incl. swap", "provider_refresh_with_swap"),
        )
    ]
    during = swap["decide_during_swaps"]
    kinds = (("all decisions", "all"), ("no pointer check", "no_check"), ("unchanged pointer", "unchanged_pointer"))
    decide_rows = [
        [name, during[key]["iterations"], *_lat(during[key]), during[key]["max_ms"]]
        for name, key in (*kinds, ("found a new model", "swap"))
        if key in during
    ]
    return [
        table(
            f"6a. Model swap on moto, {steps['model_bytes'] / 1e6:.2f} MB model (ms)",
            ["step", "iters", *_lat_headers("time")],
            step_rows,
        ),
        table(
            f"6b. service.decide at {during['candidates']} candidates while models swap "
            f"(pointer check every {during['checks_every_decisions']} decisions, every other one swaps), ms",
            ["decisions", "iters", *_lat_headers("decide"), "decide max"],
            decide_rows,
        ),
    ]


def _record_rows(figures: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    paths = (("fakes", "domain process_batch", "domain_process_batch"), ("fakes", "full handler", "full_handler"))
    for size, data in (_get(figures, "record_fakes", "sizes") or {}).items():
        rows += [[int(size), name, *_per_event_cells(data[key])] for _, name, key in paths]
    for size, data in (_get(figures, "record_moto", "sizes") or {}).items():
        rows.append([int(size), "handler on moto", *_per_event_cells(data["full_handler"])])
    return rows


def _per_event_cells(d: dict[str, Any]) -> list[object]:
    cpu = d.get("cpu_us_per_event_p50", "-")  # the fakes only: on moto the CPU is mostly the server's
    wall = [d["us_per_event_p50"], d["us_per_event_mean"]]
    return [d["iterations"], d["p50_ms"], d["p99_ms"], *wall, cpu, d["full_gcs"]]


def _outcome_tables(figures: dict[str, Any]) -> list[str]:
    out = []
    rows = _record_rows(figures)
    if rows:
        bare = _get(figures, "record_moto", "moto_bare_transaction", "p50_ms")
        note = f"; bare moto TransactWriteItems p50 {bare} ms" if bare is not None else ""
        out.append(
            table(
                f"7. Record per SQS batch (80% capped impressions): invocation ms, per event us{note}",
                [
                    "batch",
                    "path",
                    "iters",
                    "p50 ms",
                    "p99 ms",
                    "wall us/event p50",
                    "wall us/event mean",
                    "CPU us/event p50",
                    "full GCs",
                ],
                rows,
            )
        )
    moto = _get(figures, "record_moto") or {}
    if moto.get("skipped"):
        out.append(f"7b. Record on moto: skipped ({moto['skipped']})")
    beacon = _get(figures, "track_beacon") or {}
    if "full_handler" in beacon:
        s, h = beacon["service_record_beacon"], beacon["full_handler"]
        out.append(
            table(
                "8. Track beacon in-process, in-memory outcome queue (ms)",
                ["iters", *_lat_headers("service"), *_lat_headers("handler"), "full GCs"],
                [[h["iterations"], *_lat(s), *_lat(h), h["full_gcs"]]],
            )
        )
    return out


def _consent_tables(figures: dict[str, Any]) -> list[str]:
    figure = _get(figures, "decide_consent")
    if not figure or "skipped" in figure:
        return []
    rows = [
        [mode, *_lat(figure[f"decide_{mode}"]), figure[f"decide_{mode}"]["full_gcs"]]
        for mode in ("personalised", "contextual")
    ]
    rows.append(
        [
            "contextual / personalised",
            figure["p50_contextual_to_personalised"],
            figure["p99_contextual_to_personalised"],
            None,
            None,
        ]
    )
    title = f"1e. Decide contextual vs personalised, {figure['candidates']} candidates, interleaved (service.decide)"
    return [table(title, ["mode", *_lat_headers("decide"), "full GCs"], rows)]


def _retraining_tables(figures: dict[str, Any]) -> list[str]:
    sizes = (_get(figures, "retraining") or {}).get("sizes")
    if not sizes:
        return []
    rows = []
    for rows_label, figure in sizes.items():
        if "skipped" in figure:
            rows.append([rows_label, figure["skipped"], *[None] * 7])
            continue
        rows.append(
            [
                rows_label,
                figure["build_rows_per_s"],
                figure["build_seconds"],
                figure["train_row_epochs_per_s"],
                f"{figure['train_seconds']} ({figure['epochs']} ep)",
                figure["evaluate_decisions_per_s"],
                figure["rss_mb"]["after_build"],
                figure["rss_mb"]["peak"],
                figure["holdout_auc"],
            ]
        )
    headers = ["rows", "build rows/s", "build s", "train row-epochs/s", "train s", "OPE dec/s", "RSS build MB"]
    return [
        table(
            "9. Retraining (dataset from gzip logs on disk, FM training, evaluation)",
            [*headers, "peak MB", "AUC"],
            rows,
        )
    ]


SCALE_ROWS = (
    ("eligible_1000", "10,000 campaigns, 1,000 eligible, pre-ranked to the top K"),
    ("eligible_1000_score_all", "10,000 campaigns, 1,000 eligible, all scored"),
    ("eligible_5000", "10,000 campaigns, 5,000 eligible, pre-ranked to the top K"),
    ("eligible_50", "10,000 campaigns, 50 eligible"),
    ("catalog_50", "50 campaigns, 50 eligible (floor)"),
)


REFRESH_ROWS = (
    ("cold_load", "load from scratch (a new environment)"),
    ("unchanged", "refresh, nothing changed"),
    ("repaced", "refresh after a pacing step (every paced campaign's p changed)"),
    ("repaced_1_edited", "refresh after a pacing step and 1 campaign edited"),
    ("repaced_1pct_edited", "refresh after a pacing step and 1% of the campaigns edited"),
)


def _pair_ratio(pair: dict[str, float]) -> str:
    return f"{pair['p50']}x/{pair['p99']}x"


def _scale_tables(figures: dict[str, Any]) -> list[str]:
    scale = _get(figures, "scale") or {}
    if "load" not in scale:
        return []
    load = scale["load"]
    rows = [
        ["total (CampaignCatalog.warm), median", load["total_ms"]["median"]],
        ["parse + validate (model_validate_json per item)", load["parse_and_validate_ms"]],
        ["encode every ad", load["encode_ads_ms"]],
        [f"index one placement ({load['ads_in_placement']} ads)", load["index_one_placement_ms"]],
        ["pre-ranking priors, one placement, per model version", load["prior_scores_one_placement_ms"]],
    ]
    title = (
        f"10a. Catalog load, {scale['campaigns']:,} campaigns (ms); tracemalloc peak {load['tracemalloc_peak_mb']} MB, "
        f"retained {load['tracemalloc_retained_mb']} MB, RSS +{load['rss_delta_first_load_mb']} MB"
    )
    decide, ratios = scale["decide"], scale["ratios"]
    title_b = (
        f"10b. Decide at scale, interleaved (ms); K = {scale['prerank_top_k']}; p50/p99 ratios: "
        f"1,000/50 eligible {_pair_ratio(ratios['1000_to_50_eligible'])}, "
        f"5,000/1,000 eligible {_pair_ratio(ratios['5000_to_1000_eligible'])}, 50 eligible of 10,000/of 50 "
        f"{_pair_ratio(ratios['50_eligible_10000_to_50_campaigns'])}, "
        f"pre-ranked/all scored {_pair_ratio(ratios['prerank_to_score_all'])}"
    )
    decide_rows = [[label, decide[key]["iterations"], *_lat(decide[key])] for key, label in SCALE_ROWS]
    tables = [
        table(title, ["stage", "ms"], rows),
        table(title_b, ["catalog", "iters", *_lat_headers("decide")], decide_rows),
    ]
    refresh = scale.get("refresh")
    if refresh is not None:
        title_c = (
            f"10c. Catalog refresh, {refresh['campaigns']:,} campaigns, {refresh['budgeted']:,} of them paced, through "
            "the stores over in-memory Scan pages (median ms, and the ratio to a load from scratch in the same run)"
        )
        refresh_rows = [[label, refresh["ms"][key], refresh["to_cold_load"][key]] for key, label in REFRESH_ROWS]
        tables.append(table(title_c, ["refresh", "ms", "x load"], refresh_rows))
    return tables


def _pacing_step_tables(figures: dict[str, Any]) -> list[str]:
    step = _get(figures, "pacing_step")
    if not isinstance(step, dict) or "first_step" not in step:
        return []
    first = step["first_step"]
    capacity = step["campaigns_per_step"]
    rows = [
        [
            "every campaign read exactly (no checkpoints: every step before them)",
            sum(first["calls_per_campaign"].values()),
            first["cpu_ms_per_campaign"],
            capacity["exact_every_step"],
        ],
        [
            f"checkpointed, mean of {step['steps'] - 1} steps",
            step["steady_calls_per_campaign_total"],
            step["steady_cpu_ms_per_campaign"],
            capacity["checkpointed"],
        ],
    ]
    title = (
        f"10d. Pacing step per budgeted campaign, {step['campaigns']:,} campaigns through the stores over a counting "
        f"table; campaigns a step paces in {step['step_seconds']:g} s at the assumed call latencies, "
        f"{step['parallel_reads']} at a time (on CPU at {step['vcpus']} vCPU: {capacity['checkpointed_cpu_bound']:,})"
    )
    return [table(title, ["step", "calls", "cpu ms", "campaigns/step"], rows)]


def render(machine: dict[str, Any], figures: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    packages = ", ".join(f"{name} {v}" for name, v in machine["packages"].items())
    header = (
        f"adserve bench  {machine['date']}  commit {machine['git_commit']}\n"
        f"{machine['cpu_model']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"Python {machine['python']}, OPENBLAS_CORETYPE={machine['OPENBLAS_CORETYPE'] or 'unset'}\n{packages}"
    )
    target_rows = [[_verdict(c["passed"]), c["target"], c["measured"], f"< {c['limit']} {c['unit']}"] for c in checks]
    failed = [
        f"{key}: {figures[key]['skipped']}"
        for key in (
            "decide_in_process",
            "decide_consent",
            "compute_floor",
            "onnx",
            "vw_peer",
            "record_fakes",
            "track_beacon",
            "record_moto",
            "scale",
        )
        if isinstance(figures.get(key), dict) and "skipped" in figures[key]
    ]
    sections = [
        header,
        *[f"NOT MEASURED {line}" for line in failed],
        *_decide_tables(figures),
        *_consent_tables(figures),
        *_ratio_tables(figures),
        *_scoring_tables(figures),
        *_cold_and_size(figures),
        *_swap_tables(figures),
        *_retraining_tables(figures),
        *_scale_tables(figures),
        *_pacing_step_tables(figures),
        *_outcome_tables(figures),
        table("Targets (docs/performance.md)", ["", "target", "measured", "limit"], target_rows),
    ]
    return "\n\n".join(sections)
