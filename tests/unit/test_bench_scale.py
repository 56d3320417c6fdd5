"""Figure 10 (10,000 campaigns) renders in the docs and the printed report, and says so when not measured."""

from typing import Any

from bench import docs, report

FIGURE: dict[str, Any] = {
    "campaigns": 10000,
    "prerank_top_k": 500,
    "load": {
        "campaigns": 10000,
        "ads_in_placement": 6294,
        "total_ms": {"median": 421.7, "runs": [427.82, 388.65]},
        "parse_and_validate_ms": 180.19,
        "encode_ads_ms": 38.69,
        "index_one_placement_ms": 48.73,
        "prior_scores_one_placement_ms": 5.13,
        "tracemalloc_peak_mb": 70.5,
        "tracemalloc_retained_mb": 68.5,
        "rss_delta_first_load_mb": 81.4,
    },
    "decide": {
        "eligible_1000": {
            "iterations": 50,
            "mean_ms": 2.6256,
            "p50_ms": 2.4088,
            "p99_ms": 6.105,
            "min_ms": 1.8059,
            "max_ms": 6.105,
            "full_gcs": 0,
        },
        "eligible_1000_score_all": {
            "iterations": 50,
            "mean_ms": 3.617,
            "p50_ms": 3.0896,
            "p99_ms": 8.0575,
            "min_ms": 2.5905,
            "max_ms": 8.0575,
            "full_gcs": 0,
        },
        "eligible_50": {
            "iterations": 50,
            "mean_ms": 0.4095,
            "p50_ms": 0.3789,
            "p99_ms": 0.7189,
            "min_ms": 0.362,
            "max_ms": 0.7189,
            "full_gcs": 0,
        },
        "catalog_50": {
            "iterations": 50,
            "mean_ms": 0.3994,
            "p50_ms": 0.392,
            "p99_ms": 0.5109,
            "min_ms": 0.3695,
            "max_ms": 0.5109,
            "full_gcs": 0,
        },
    },
    "ratios": {
        "1000_to_50_eligible": {"p50": 6.36, "p99": 8.49},
        "50_eligible_10000_to_50_campaigns": {"p50": 0.97, "p99": 1.41},
        "prerank_to_score_all": {"p50": 0.78, "p99": 0.76},
    },
    "load_budget_ms": 2000.0,
    "decide_budget_ms": 10.0,
}
"""A quick run's figure 10 (``python -m bench --only scale --quick``)."""


def test_the_scale_figure_renders_its_load_decide_rows_and_ratios() -> None:
    text = docs.scale({"figures": {"scale": FIGURE}})
    load = FIGURE["load"]
    assert f"{load['total_ms']['median'] / 1000:.2f} s (median; budget 2 s)" in text
    assert docs._pair(FIGURE["decide"]["eligible_1000"]) in text
    ratio = FIGURE["ratios"]["50_eligible_10000_to_50_campaigns"]
    assert f"{ratio['p50']:.2f}x / {ratio['p99']:.2f}x" in text
    printed = "\n".join(report._scale_tables({"scale": FIGURE}))
    assert "10a. Catalog load, 10,000 campaigns" in printed
    assert "10,000 campaigns, 1,000 eligible, all scored" in printed


def test_a_results_file_without_the_figure_says_how_to_measure_it() -> None:
    assert "--only scale" in docs.scale({"figures": {}})
    assert report._scale_tables({}) == []


def test_the_budgets_are_checked_from_the_figure() -> None:
    checks = {c["target"]: c for c in report.targets({"scale": FIGURE})}
    load = next(c for name, c in checks.items() if name.startswith("catalog load < 2 s"))
    decide = next(c for name, c in checks.items() if name.startswith("decide p99 < 10 ms at 10,000"))
    assert load["measured"] == FIGURE["load"]["total_ms"]["median"]
    assert decide["measured"] == FIGURE["decide"]["eligible_1000"]["p99_ms"]
