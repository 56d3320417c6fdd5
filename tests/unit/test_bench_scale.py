"""Figure 10 (10,000 campaigns) renders in the docs and the printed report, and says so when not measured."""

from typing import Any

from bench import docs, report

FIGURE: dict[str, Any] = {
    "campaigns": 10000,
    "prerank_top_k": 500,
    "load": {
        "campaigns": 10000,
        "ads_in_placement": 6294,
        "total_ms": {"median": 456.885, "runs": [431.82, 417.68]},
        "parse_and_validate_ms": 188.4,
        "encode_ads_ms": 52.12,
        "index_one_placement_ms": 68.27,
        "prior_scores_one_placement_ms": 5.6,
        "tracemalloc_peak_mb": 70.5,
        "tracemalloc_retained_mb": 68.5,
        "rss_delta_first_load_mb": 81.5,
    },
    "decide": {
        "eligible_1000": {
            "iterations": 50,
            "mean_ms": 2.753,
            "p50_ms": 2.161,
            "p99_ms": 14.3775,
            "min_ms": 1.565,
            "max_ms": 14.3775,
            "full_gcs": 0,
        },
        "eligible_1000_score_all": {
            "iterations": 50,
            "mean_ms": 2.6942,
            "p50_ms": 2.4071,
            "p99_ms": 5.6281,
            "min_ms": 1.8298,
            "max_ms": 5.6281,
            "full_gcs": 0,
        },
        "eligible_5000": {
            "iterations": 50,
            "mean_ms": 5.1296,
            "p50_ms": 4.967,
            "p99_ms": 9.328,
            "min_ms": 3.4853,
            "max_ms": 9.328,
            "full_gcs": 0,
        },
        "eligible_50": {
            "iterations": 50,
            "mean_ms": 0.5544,
            "p50_ms": 0.5312,
            "p99_ms": 1.2376,
            "min_ms": 0.3242,
            "max_ms": 1.2376,
            "full_gcs": 0,
        },
        "catalog_50": {
            "iterations": 50,
            "mean_ms": 0.5058,
            "p50_ms": 0.4279,
            "p99_ms": 2.4801,
            "min_ms": 0.3448,
            "max_ms": 2.4801,
            "full_gcs": 0,
        },
    },
    "ratios": {
        "1000_to_50_eligible": {"p50": 4.07, "p99": 11.62},
        "5000_to_1000_eligible": {"p50": 2.3, "p99": 0.65},
        "50_eligible_10000_to_50_campaigns": {"p50": 1.24, "p99": 0.5},
        "prerank_to_score_all": {"p50": 0.9, "p99": 2.55},
    },
    "load_budget_ms": 2000.0,
    "decide_budget_ms": 10.0,
    "refresh": {
        "campaigns": 10000,
        "budgeted": 5000,
        "ms": {
            "cold_load": 515.22,
            "unchanged": 119.78,
            "repaced": 128.83,
            "repaced_1_edited": 125.97,
            "repaced_1pct_edited": 140.03,
        },
        "to_cold_load": {
            "cold_load": 1.0,
            "unchanged": 0.232,
            "repaced": 0.25,
            "repaced_1_edited": 0.244,
            "repaced_1pct_edited": 0.272,
        },
    },
}
"""A quick run's figure 10 (``python -m bench --only scale --quick``)."""


def test_the_scale_figure_renders_its_load_decide_rows_and_ratios() -> None:
    text = docs.scale({"figures": {"scale": FIGURE}})
    load = FIGURE["load"]
    assert f"{load['total_ms']['median'] / 1000:.2f} s (median; budget 2 s)" in text
    assert docs._pair(FIGURE["decide"]["eligible_1000"]) in text
    ratio = FIGURE["ratios"]["50_eligible_10000_to_50_campaigns"]
    assert f"{ratio['p50']:.2f}x / {ratio['p99']:.2f}x" in text
    assert "| refresh after a pacing step and 1% of the campaigns edited | 140 | 0.27x |" in text
    printed = "\n".join(report._scale_tables({"scale": FIGURE}))
    assert "10a. Catalog load, 10,000 campaigns" in printed
    assert "10,000 campaigns, 1,000 eligible, all scored" in printed
    assert "10c. Catalog refresh, 10,000 campaigns, 5,000 of them paced" in printed


def test_a_results_file_without_the_figure_says_how_to_measure_it() -> None:
    assert "--only scale" in docs.scale({"figures": {}})
    assert report._scale_tables({}) == []


def test_the_budgets_are_checked_from_the_figure() -> None:
    checks = {c["target"]: c for c in report.targets({"scale": FIGURE})}
    load = next(c for name, c in checks.items() if name.startswith("catalog load < 2 s"))
    decide = next(c for name, c in checks.items() if name.startswith("decide p99 < 10 ms at 10,000"))
    assert load["measured"] == FIGURE["load"]["total_ms"]["median"]
    assert decide["measured"] == FIGURE["decide"]["eligible_1000"]["p99_ms"]
    refresh = next(c for name, c in checks.items() if name.startswith("catalog refresh at 10,000"))
    assert (refresh["measured"], refresh["passed"]) == (0.272, True)
